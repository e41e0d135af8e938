"""Contract fixtures: every contract is deployed once per session from ``contracts/*.vy``, and
every test runs inside an EVM snapshot (``boa.env.anchor``) that is rolled back afterwards.

titanoboa's own pytest plugin is disabled for the whole suite (see ``pyproject.toml``), so
this file does the isolation it would otherwise do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boa
import pytest
from chain_signing import account
from contracts_support import INITIAL_FUNDS, PROVIDER_ID, WITHDRAW_DELAY, System, load

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _evm_snapshot() -> Iterator[None]:
    """Roll back every state change of the test (session deployments stay)."""
    with boa.env.anchor():
        yield


@pytest.fixture(scope="session")
def system() -> System:
    owner = boa.env.eoa
    operator = boa.env.generate_address("operator")
    settler = boa.env.generate_address("settler")
    provider_admin = boa.env.generate_address("provider-admin")
    provider_signer = boa.env.generate_address("provider-signer")
    payout = boa.env.generate_address("payout")
    tenants = tuple(account(f"tenant-{i}") for i in range(3))

    stablecoin = load("test_stablecoin")
    credit = load("credit_token")
    registry = load("provider_registry")
    vault = load(
        "credit_vault", stablecoin.address, credit.address, WITHDRAW_DELAY, registry.address
    )
    credit.set_vault(vault.address)
    vault.set_operator(operator, True)
    vault.set_settler(settler)
    with boa.env.prank(provider_admin):
        registry.register(PROVIDER_ID, provider_signer, payout)
    for tenant in tenants:
        stablecoin.mint(tenant.address, INITIAL_FUNDS)
        with boa.env.prank(tenant.address):
            stablecoin.approve(vault.address, 2**256 - 1)
    return System(
        owner=owner,
        operator=operator,
        settler=settler,
        provider_admin=provider_admin,
        provider_signer=provider_signer,
        payout=payout,
        tenants=tenants,
        stablecoin=stablecoin,
        credit=credit,
        registry=registry,
        vault=vault,
    )


@pytest.fixture(scope="session")
def capability_authority() -> Any:
    return load("capability_authority")


@pytest.fixture(scope="session")
def malicious_token_deployer() -> Any:
    return boa.load_partial(str(HERE / "malicious_token.vy"))


@pytest.fixture(scope="session")
def stranger() -> str:
    return boa.env.generate_address("stranger")
