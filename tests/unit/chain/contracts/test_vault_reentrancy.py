"""A stablecoin that calls back into the vault from ``transfer``/``transferFrom``: every
re-entry into a state-changing vault function fails and the outer call pays exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boa
import pytest
from contracts_support import MICRO, PROVIDER_ID, System, job_id, load, now

AMOUNT = 50 * MICRO
DELAY = 3600


@dataclass(frozen=True)
class Rig:
    token: Any  # the malicious stablecoin, which is also a tenant and may hold roles
    credit: Any
    vault: Any
    tenant: str
    payout: str


@pytest.fixture
def rig(system: System, malicious_token_deployer: Any) -> Rig:
    token = malicious_token_deployer.deploy()
    credit = load("credit_token")
    vault = load("credit_vault", token.address, credit.address, DELAY, system.registry.address)
    credit.set_vault(vault.address)
    tenant = boa.env.generate_address("reentrancy-tenant")
    token.mint(tenant, 10 * AMOUNT)
    with boa.env.prank(tenant):
        token.approve(vault.address, 2**256 - 1)
    # The token is a funded tenant of its own vault too.
    token.mint(token.address, 10 * AMOUNT)
    token.execute(token.address, token.approve.prepare_calldata(vault.address, 2**256 - 1))
    return Rig(token, credit, vault, tenant, system.payout)


def _assert_blocked(rig: Rig) -> None:
    assert rig.token.reentry_attempts() == 1
    assert not rig.token.reentry_succeeded()


def test_harness_reenters_when_nothing_blocks_it(rig: Rig) -> None:
    rig.token.arm(rig.vault.address, rig.vault.available.prepare_calldata(rig.tenant))
    with boa.env.prank(rig.tenant):
        rig.vault.deposit(rig.tenant, AMOUNT)
    assert rig.token.reentry_attempts() == 1
    assert rig.token.reentry_succeeded()  # a view call is not guarded, and harmless


def test_reentering_deposit_from_transfer_from_fails(rig: Rig) -> None:
    rig.token.arm(rig.vault.address, rig.vault.deposit.prepare_calldata(rig.token.address, AMOUNT))
    with boa.env.prank(rig.tenant):
        rig.vault.deposit(rig.tenant, AMOUNT)
    _assert_blocked(rig)
    assert rig.credit.balanceOf(rig.tenant) == AMOUNT
    assert rig.credit.balanceOf(rig.token.address) == 0
    assert rig.credit.totalSupply() == rig.token.balanceOf(rig.vault.address) == AMOUNT


def test_reentering_withdraw_from_transfer_fails(rig: Rig) -> None:
    vault, token = rig.vault, rig.token
    token.execute(vault.address, vault.deposit.prepare_calldata(token.address, AMOUNT))
    token.execute(vault.address, vault.request_withdrawal.prepare_calldata(AMOUNT))
    boa.env.time_travel(seconds=DELAY)
    token.arm(vault.address, vault.withdraw.prepare_calldata())
    token.execute(vault.address, vault.withdraw.prepare_calldata())
    _assert_blocked(rig)
    assert token.balanceOf(token.address) == 10 * AMOUNT  # paid back once, not twice
    assert rig.credit.balanceOf(token.address) == 0
    assert token.balanceOf(vault.address) == 0


def test_reentering_consume_from_transfer_fails(rig: Rig) -> None:
    vault, token = rig.vault, rig.token
    vault.set_operator(token.address, True)  # so that the re-entry is otherwise authorised
    expires_at = now() + 600
    with boa.env.prank(rig.tenant):
        vault.deposit(rig.tenant, 2 * AMOUNT)
        vault.lock(job_id("a"), AMOUNT, expires_at, PROVIDER_ID)
        vault.lock(job_id("b"), AMOUNT, expires_at, PROVIDER_ID)
    token.arm(vault.address, vault.consume.prepare_calldata(job_id("b"), AMOUNT))
    token.execute(vault.address, vault.consume.prepare_calldata(job_id("a"), AMOUNT))
    _assert_blocked(rig)
    assert vault.jobs(job_id("b"))[4] == 1  # still locked
    assert token.balanceOf(rig.payout) == AMOUNT
    assert rig.credit.balanceOf(rig.tenant) == AMOUNT


def test_reentering_settle_from_transfer_fails(rig: Rig) -> None:
    vault, token = rig.vault, rig.token
    vault.set_settler(token.address)
    with boa.env.prank(rig.tenant):
        vault.deposit(rig.tenant, 2 * AMOUNT)
    call = vault.settle.prepare_calldata(rig.tenant, AMOUNT, rig.payout, 0, rig.payout)
    token.arm(vault.address, call)
    token.execute(vault.address, call)
    _assert_blocked(rig)
    assert token.balanceOf(rig.payout) == AMOUNT
    assert rig.credit.balanceOf(rig.tenant) == AMOUNT


def test_reentering_lock_from_transfer_from_fails(rig: Rig) -> None:
    vault, token = rig.vault, rig.token
    token.execute(vault.address, vault.deposit.prepare_calldata(token.address, AMOUNT))
    token.arm(vault.address, vault.lock.prepare_calldata(job_id("c"), 1, now() + 600, PROVIDER_ID))
    with boa.env.prank(rig.tenant):
        vault.deposit(rig.tenant, AMOUNT)
    _assert_blocked(rig)
    assert vault.jobs(job_id("c"))[4] == 0
