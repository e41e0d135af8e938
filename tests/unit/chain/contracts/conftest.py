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
from contracts_support import INITIAL_FUNDS, MICRO, PROVIDER_ID, WITHDRAW_DELAY, System, load
from oracle_signing import (
    DISPUTE_WINDOW,
    LinesTree,
    OracleKey,
    Settled,
    aggregate_signature,
    oracle_key,
)

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


@pytest.fixture(scope="session")
def oracle_keys() -> tuple[OracleKey, ...]:
    return tuple(oracle_key(f"oracle-{i}") for i in range(4))


@pytest.fixture(scope="session")
def receipts(oracle_keys: tuple[OracleKey, ...]) -> Any:
    """Usage receipts with oracles 0, 1 and 2 registered (three pairings) and threshold 2."""
    contract = load("usage_receipts", DISPUTE_WINDOW)
    for key in oracle_keys[:3]:
        contract.register_oracle(key.public_key, key.pop)
    contract.set_threshold(2)
    return contract


@pytest.fixture(scope="session")
def settled(system: System, oracle_keys: tuple[OracleKey, ...]) -> Settled:
    """Other usage receipts (one oracle, threshold 1) holding epoch 1, whose lines charge the
    system's tenants, and a settlement treasury over them (two pairings)."""
    contract = load("usage_receipts", DISPUTE_WINDOW)
    key = oracle_keys[3]
    contract.register_oracle(key.public_key, key.pop)
    contract.set_threshold(1)
    a, b = (t.address for t in system.tenants[:2])
    lines = (
        (1, a, PROVIDER_ID, 5 * MICRO, 50_000),
        (1, b, PROVIDER_ID, 2 * MICRO, 0),
        (1, a, b"unregistered".ljust(32, b"\0"), MICRO, 0),
    )
    tree = LinesTree.of(list(lines))
    header = (1, b"\x0e" * 32, tree.root, len(lines), sum(line[3] for line in lines))
    signature = aggregate_signature([key], contract.epoch_message(*header))
    contract.submit_epoch(*header, 1, key.public_key, signature)
    (logged,) = (log for log in contract.get_logs() if type(log).__name__ == "EpochSubmitted")
    record = (logged.events_root, logged.lines_root, logged.line_count, logged.total_micro,
              logged.submitted_at, logged.signers)  # fmt: skip
    fee_recipient = boa.env.generate_address("fee-recipient")
    treasury = load(
        "settlement_treasury",
        contract.address,
        system.vault.address,
        system.registry.address,
        fee_recipient,
        DISPUTE_WINDOW,
    )
    return Settled(contract, treasury, fee_recipient, lines, tree, record)
