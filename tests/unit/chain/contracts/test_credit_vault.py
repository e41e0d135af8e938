"""credit_vault.vy: deposits (plain, permit, EIP-3009), job locks, withdrawals, settlement and
roles. Each path has a test that it works and tests that the wrong caller or input is refused."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from chain_signing import account, sign_authorization, sign_cancel, sign_permit
from contracts_support import (
    INITIAL_FUNDS,
    MICRO,
    PROVIDER_ID,
    WITHDRAW_DELAY,
    ZERO_ADDRESS,
    System,
    events,
    job_id,
    load,
    now,
)
from eth_utils import keccak

DEPOSIT = 100 * MICRO
JOB = job_id("job-1")
NONCE = keccak(text="deposit-nonce")


@pytest.fixture
def s(system: System) -> System:
    return system


@pytest.fixture
def tenant(s: System) -> str:
    return str(s.tenants[0].address)


@pytest.fixture
def other_tenant(s: System) -> str:
    return str(s.tenants[1].address)


@pytest.fixture
def funded(s: System, tenant: str) -> System:
    with boa.env.prank(tenant):
        s.vault.deposit(tenant, DEPOSIT)
    return s


@pytest.fixture
def locked(funded: System, tenant: str) -> System:
    with boa.env.prank(tenant):
        funded.vault.lock(JOB, 40 * MICRO, now() + 600, PROVIDER_ID)
    return funded


def _stable(s: System, who: str) -> int:
    return int(s.stablecoin.balanceOf(who))


# construction and roles


def test_constructor_wires_the_system(s: System) -> None:
    assert s.vault.stablecoin() == s.stablecoin.address
    assert s.vault.credit() == s.credit.address
    assert s.vault.registry() == s.registry.address
    assert s.vault.withdraw_delay() == WITHDRAW_DELAY
    assert s.vault.owner() == s.owner
    assert s.vault.is_operator(s.operator)
    assert s.vault.settler() == s.settler


def test_constructor_rejects_zero_addresses(s: System) -> None:
    good = (s.stablecoin.address, s.credit.address, 0, s.registry.address)
    for index, message in [(0, "stablecoin"), (1, "credit"), (3, "registry")]:
        args = list(good)
        args[index] = ZERO_ADDRESS
        with boa.reverts(f"credit_vault: {message} is the zero address"):
            load("credit_vault", *args)


def test_owner_sets_operator(s: System, stranger: str) -> None:
    s.vault.set_operator(stranger, True)
    [changed] = events(s.vault, "OperatorChanged")
    assert (changed.operator, changed.enabled) == (stranger, True)
    assert s.vault.is_operator(stranger)
    s.vault.set_operator(stranger, False)
    assert not s.vault.is_operator(stranger)


def test_set_operator_rejects_stranger_and_zero(s: System, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        s.vault.set_operator(stranger, True)
    with boa.reverts("credit_vault: operator is the zero address"):
        s.vault.set_operator(ZERO_ADDRESS, True)


def test_owner_sets_settler(s: System, stranger: str) -> None:
    s.vault.set_settler(stranger)
    [changed] = events(s.vault, "SettlerChanged")
    assert (changed.previous_settler, changed.new_settler) == (s.settler, stranger)
    assert s.vault.settler() == stranger


def test_stranger_cannot_set_settler(s: System, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        s.vault.set_settler(stranger)


def test_transfer_ownership(s: System, stranger: str) -> None:
    s.vault.transfer_ownership(stranger)
    assert s.vault.owner() == stranger
    with boa.reverts("ownable: caller is not the owner"):
        s.vault.set_settler(stranger)


def test_stranger_cannot_transfer_ownership(s: System, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        s.vault.transfer_ownership(stranger)


# deposit


def test_deposit_mints_credits(s: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        s.vault.deposit(tenant, DEPOSIT)
    [deposit] = events(s.vault, "Deposit")
    assert (deposit.tenant, deposit.payer, deposit.amount) == (tenant, tenant, DEPOSIT)
    assert s.credit.balanceOf(tenant) == DEPOSIT
    assert s.vault.available(tenant) == DEPOSIT
    assert _stable(s, s.vault.address) == DEPOSIT
    assert _stable(s, tenant) == INITIAL_FUNDS - DEPOSIT


def test_deposit_for_another_tenant(s: System, tenant: str, other_tenant: str) -> None:
    with boa.env.prank(tenant):
        s.vault.deposit(other_tenant, DEPOSIT)
    [deposit] = events(s.vault, "Deposit")
    assert (deposit.tenant, deposit.payer) == (other_tenant, tenant)
    assert s.credit.balanceOf(other_tenant) == DEPOSIT
    assert s.credit.balanceOf(tenant) == 0


def test_deposit_rejects_zero_and_unfunded(s: System, tenant: str, stranger: str) -> None:
    with boa.env.prank(tenant):
        with boa.reverts("credit_vault: amount is zero"):
            s.vault.deposit(tenant, 0)
        with boa.reverts("credit_vault: tenant is the zero address"):
            s.vault.deposit(ZERO_ADDRESS, DEPOSIT)
    with boa.env.prank(stranger), boa.reverts("erc20: insufficient allowance"):
        s.vault.deposit(stranger, DEPOSIT)


def test_deposit_with_permit(s: System, stranger: str) -> None:
    payer = account("permit-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    deadline = now() + 600
    v, r, sig_s = sign_permit(payer, s.stablecoin, s.vault.address, DEPOSIT, 0, deadline)
    with boa.env.prank(payer.address):
        s.vault.deposit_with_permit(stranger, DEPOSIT, deadline, v, r, sig_s)
        [deposit] = events(s.vault, "Deposit")
        assert (deposit.tenant, deposit.payer) == (stranger, payer.address)
        assert s.credit.balanceOf(stranger) == DEPOSIT
        with boa.reverts("erc20: invalid signature"):  # replay
            s.vault.deposit_with_permit(stranger, DEPOSIT, deadline, v, r, sig_s)


def test_deposit_with_permit_rejects_expired_and_foreign_signatures(s: System) -> None:
    payer = account("permit-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    expired = now() - 1
    v, r, sig_s = sign_permit(payer, s.stablecoin, s.vault.address, DEPOSIT, 0, expired)
    with boa.env.prank(payer.address), boa.reverts("erc20: expired deadline"):
        s.vault.deposit_with_permit(payer.address, DEPOSIT, expired, v, r, sig_s)
    # A permit signed by the payer is useless to anyone else: the vault uses msg.sender.
    deadline = now() + 600
    v, r, sig_s = sign_permit(payer, s.stablecoin, s.vault.address, DEPOSIT, 0, deadline)
    thief = account("thief")
    with boa.env.prank(thief.address), boa.reverts("erc20: invalid signature"):
        s.vault.deposit_with_permit(thief.address, DEPOSIT, deadline, v, r, sig_s)


def _receive_args(
    s: System,
    payer: Any,
    *,
    amount: int = DEPOSIT,
    valid_after: int = 0,
    valid_before: int | None = None,
    signer: Any = None,
) -> tuple[Any, ...]:
    valid_before = now() + 600 if valid_before is None else valid_before
    v, r, sig_s = sign_authorization(
        signer or payer,
        s.stablecoin,
        to=s.vault.address,
        value=amount,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=NONCE,
        receive=True,
    )
    return (payer.address, amount, valid_after, valid_before, NONCE, v, r, sig_s)


def test_relayed_deposit_with_authorization_credits_the_payer(s: System, stranger: str) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    with boa.env.prank(stranger):  # a gas-paying relayer
        s.vault.deposit_with_authorization(payer.address, *_receive_args(s, payer))
    [deposit] = events(s.vault, "Deposit")
    assert (deposit.tenant, deposit.payer, deposit.amount) == (
        payer.address,
        payer.address,
        DEPOSIT,
    )
    assert s.credit.balanceOf(payer.address) == DEPOSIT
    assert s.stablecoin.authorizationState(payer.address, NONCE)


def test_payer_deposits_with_authorization_for_another_tenant(s: System, stranger: str) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    with boa.env.prank(payer.address):
        s.vault.deposit_with_authorization(stranger, *_receive_args(s, payer))
    assert s.credit.balanceOf(stranger) == DEPOSIT


def test_relayer_cannot_redirect_an_authorization(s: System, stranger: str) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    with (
        boa.env.prank(stranger),
        boa.reverts("credit_vault: relayed deposit must credit the payer"),
    ):
        s.vault.deposit_with_authorization(stranger, *_receive_args(s, payer))


def test_deposit_with_authorization_replay_reverts(s: System) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, 2 * DEPOSIT)
    args = _receive_args(s, payer)
    s.vault.deposit_with_authorization(payer.address, *args)
    with boa.reverts("test_stablecoin: authorization is used or canceled"):
        s.vault.deposit_with_authorization(payer.address, *args)


def test_deposit_with_authorization_rejects_time_window(s: System) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    with boa.reverts("test_stablecoin: authorization is expired"):
        s.vault.deposit_with_authorization(
            payer.address, *_receive_args(s, payer, valid_before=now())
        )
    with boa.reverts("test_stablecoin: authorization is not yet valid"):
        s.vault.deposit_with_authorization(
            payer.address, *_receive_args(s, payer, valid_after=now())
        )


def test_deposit_with_authorization_rejects_wrong_signer(s: System) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    args = _receive_args(s, payer, signer=account("not-the-payer"))
    with boa.reverts("test_stablecoin: invalid signature"):
        s.vault.deposit_with_authorization(payer.address, *args)


def test_deposit_with_cancelled_authorization_reverts(s: System) -> None:
    payer = account("3009-payer")
    s.stablecoin.mint(payer.address, DEPOSIT)
    args = _receive_args(s, payer)
    s.stablecoin.cancelAuthorization(payer.address, NONCE, *sign_cancel(payer, s.stablecoin, NONCE))
    with boa.reverts("test_stablecoin: authorization is used or canceled"):
        s.vault.deposit_with_authorization(payer.address, *args)


def test_deposit_with_authorization_rejects_zero_amount(s: System) -> None:
    payer = account("3009-payer")
    with boa.reverts("credit_vault: amount is zero"):
        s.vault.deposit_with_authorization(payer.address, *_receive_args(s, payer, amount=0))


# lock


def test_lock_reserves_credits(funded: System, tenant: str) -> None:
    expires_at = now() + 600
    with boa.env.prank(tenant):
        funded.vault.lock(JOB, 40 * MICRO, expires_at, PROVIDER_ID)
    [lock] = events(funded.vault, "Locked")
    assert (lock.job_id, lock.tenant, lock.provider_id) == (JOB, tenant, PROVIDER_ID)
    assert (lock.amount, lock.expires_at) == (40 * MICRO, expires_at)
    assert funded.vault.locked(tenant) == 40 * MICRO
    assert funded.vault.available(tenant) == 60 * MICRO
    assert funded.vault.jobs(JOB) == (tenant, PROVIDER_ID, 40 * MICRO, expires_at, 1)


def test_lock_rejects_bad_input(locked: System, tenant: str) -> None:
    vault = locked.vault
    later = now() + 600
    with boa.env.prank(tenant):
        with boa.reverts("credit_vault: insufficient available credits"):
            vault.lock(job_id("job-2"), 60 * MICRO + 1, later, PROVIDER_ID)
        with boa.reverts("credit_vault: amount is zero"):
            vault.lock(job_id("job-2"), 0, later, PROVIDER_ID)
        with boa.reverts("credit_vault: expiry is not in the future"):
            vault.lock(job_id("job-2"), 1, now(), PROVIDER_ID)
        with boa.reverts("credit_vault: job id already used"):
            vault.lock(JOB, 1, later, PROVIDER_ID)
        with boa.reverts("credit_vault: job id is zero"):
            vault.lock(b"\0" * 32, 1, later, PROVIDER_ID)
        with boa.reverts("credit_vault: provider is not active"):
            vault.lock(job_id("job-2"), 1, later, job_id("unknown-provider"))


def test_lock_rejects_suspended_provider(funded: System, tenant: str) -> None:
    funded.registry.set_status(PROVIDER_ID, 2)
    with boa.env.prank(tenant), boa.reverts("credit_vault: provider is not active"):
        funded.vault.lock(JOB, 1, now() + 600, PROVIDER_ID)


def test_tenant_cannot_lock_credits_it_does_not_have(funded: System, other_tenant: str) -> None:
    with boa.env.prank(other_tenant), boa.reverts("credit_vault: insufficient available credits"):
        funded.vault.lock(JOB, 1, now() + 600, PROVIDER_ID)


# consume


def test_operator_consumes_part_of_a_lock(locked: System, tenant: str) -> None:
    with boa.env.prank(locked.operator):
        locked.vault.consume(JOB, 15 * MICRO)
    [consumed] = events(locked.vault, "Consumed")
    assert (consumed.job_id, consumed.tenant) == (JOB, tenant)
    assert (consumed.amount, consumed.refunded) == (15 * MICRO, 25 * MICRO)
    assert _stable(locked, locked.payout) == 15 * MICRO
    assert locked.credit.balanceOf(tenant) == 85 * MICRO
    assert locked.vault.locked(tenant) == 0
    assert locked.vault.available(tenant) == 85 * MICRO
    assert locked.vault.jobs(JOB)[4] == 2
    assert _stable(locked, locked.vault.address) == locked.credit.totalSupply()


@pytest.mark.parametrize("amount", [0, 40 * MICRO])
def test_operator_consumes_nothing_or_everything(locked: System, tenant: str, amount: int) -> None:
    with boa.env.prank(locked.operator):
        locked.vault.consume(JOB, amount)
    assert events(locked.vault, "Consumed")[0].refunded == 40 * MICRO - amount
    assert locked.credit.balanceOf(tenant) == DEPOSIT - amount
    assert _stable(locked, locked.payout) == amount


def test_consume_rejects_non_operator(locked: System, tenant: str, stranger: str) -> None:
    for caller in (tenant, stranger, locked.settler, locked.owner):
        with boa.env.prank(caller), boa.reverts("credit_vault: caller is not an operator"):
            locked.vault.consume(JOB, 1)


def test_disabled_operator_cannot_consume(locked: System) -> None:
    locked.vault.set_operator(locked.operator, False)
    with boa.env.prank(locked.operator), boa.reverts("credit_vault: caller is not an operator"):
        locked.vault.consume(JOB, 1)


def test_consume_rejects_more_than_locked(locked: System) -> None:
    with boa.env.prank(locked.operator), boa.reverts("credit_vault: amount exceeds lock"):
        locked.vault.consume(JOB, 40 * MICRO + 1)


def test_consume_after_close_reverts(locked: System) -> None:
    with boa.env.prank(locked.operator):
        locked.vault.consume(JOB, 1)
        with boa.reverts("credit_vault: job is not locked"):
            locked.vault.consume(JOB, 1)
        with boa.reverts("credit_vault: job is not locked"):
            locked.vault.refund(JOB)
        with boa.reverts("credit_vault: job is not locked"):
            locked.vault.consume(job_id("never-locked"), 0)


def test_consume_after_expiry_reverts(locked: System, tenant: str) -> None:
    boa.env.time_travel(seconds=600)
    with boa.env.prank(locked.operator), boa.reverts("credit_vault: lock expired"):
        locked.vault.consume(JOB, 1)


def test_consume_for_suspended_provider_reverts_and_refund_still_works(locked: System) -> None:
    locked.registry.set_status(PROVIDER_ID, 2)
    with boa.env.prank(locked.operator):
        with boa.reverts("credit_vault: provider is not active"):
            locked.vault.consume(JOB, 1)
        locked.vault.refund(JOB)


def test_consume_pays_the_current_payout_address(locked: System) -> None:
    new_payout = boa.env.generate_address("new-payout")
    with boa.env.prank(locked.provider_admin):
        locked.registry.set_payout(PROVIDER_ID, new_payout)
    with boa.env.prank(locked.operator):
        locked.vault.consume(JOB, 5)
    assert _stable(locked, new_payout) == 5


# refund


def test_operator_refunds_before_expiry(locked: System, tenant: str) -> None:
    with boa.env.prank(locked.operator):
        locked.vault.refund(JOB)
    [refunded] = events(locked.vault, "Refunded")
    assert (refunded.job_id, refunded.tenant, refunded.amount) == (JOB, tenant, 40 * MICRO)
    assert locked.vault.locked(tenant) == 0
    assert locked.vault.available(tenant) == DEPOSIT
    assert locked.vault.jobs(JOB)[4] == 3
    with boa.env.prank(locked.operator), boa.reverts("credit_vault: job is not locked"):
        locked.vault.consume(JOB, 1)


def test_tenant_cannot_refund_before_expiry(locked: System, tenant: str) -> None:
    boa.env.time_travel(seconds=599)
    with boa.env.prank(tenant), boa.reverts("credit_vault: lock not expired"):
        locked.vault.refund(JOB)


def test_tenant_reclaims_after_expiry(locked: System, tenant: str) -> None:
    boa.env.time_travel(seconds=600)
    with boa.env.prank(tenant):
        locked.vault.refund(JOB)
        assert events(locked.vault, "Refunded")[0].amount == 40 * MICRO
        with boa.reverts("credit_vault: job is not locked"):
            locked.vault.refund(JOB)
    assert locked.vault.available(tenant) == DEPOSIT


def test_stranger_cannot_refund_even_after_expiry(
    locked: System, other_tenant: str, stranger: str
) -> None:
    boa.env.time_travel(seconds=601)
    for caller in (other_tenant, stranger, locked.settler):
        with (
            boa.env.prank(caller),
            boa.reverts("credit_vault: caller is not the operator or tenant"),
        ):
            locked.vault.refund(JOB)


# withdrawal


def test_request_withdrawal_reserves_credits(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(30 * MICRO)
    [requested] = events(funded.vault, "WithdrawalRequested")
    assert (requested.tenant, requested.amount) == (tenant, 30 * MICRO)
    assert requested.available_at == now() + WITHDRAW_DELAY
    assert funded.vault.pending_withdrawal(tenant) == 30 * MICRO
    assert funded.vault.available(tenant) == 70 * MICRO


def test_request_withdrawal_rejects_bad_amounts(locked: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        with boa.reverts("credit_vault: insufficient available credits"):
            locked.vault.request_withdrawal(60 * MICRO + 1)  # 40 are locked
        with boa.reverts("credit_vault: amount is zero"):
            locked.vault.request_withdrawal(0)
        locked.vault.request_withdrawal(10 * MICRO)
        with boa.reverts("credit_vault: withdrawal already pending"):
            locked.vault.request_withdrawal(10 * MICRO)


def test_reserved_credits_cannot_be_locked(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(DEPOSIT)
        with boa.reverts("credit_vault: insufficient available credits"):
            funded.vault.lock(JOB, 1, now() + 600, PROVIDER_ID)


def test_withdraw_after_delay(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(30 * MICRO)
        boa.env.time_travel(seconds=WITHDRAW_DELAY)
        funded.vault.withdraw()
        [withdrawn] = events(funded.vault, "Withdraw")
        assert (withdrawn.tenant, withdrawn.amount) == (tenant, 30 * MICRO)
    assert _stable(funded, tenant) == INITIAL_FUNDS - 70 * MICRO
    assert funded.credit.balanceOf(tenant) == 70 * MICRO
    assert funded.vault.pending_withdrawal(tenant) == 0
    assert _stable(funded, funded.vault.address) == funded.credit.totalSupply()


def test_withdraw_before_delay_reverts(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(30 * MICRO)
        boa.env.time_travel(seconds=WITHDRAW_DELAY - 1)
        with boa.reverts("credit_vault: withdrawal delay not passed"):
            funded.vault.withdraw()


def test_withdraw_without_request_reverts(funded: System, tenant: str, other_tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(30 * MICRO)
    boa.env.time_travel(seconds=WITHDRAW_DELAY)
    # Another tenant cannot take the request: withdraw() only pays the caller's own.
    with boa.env.prank(other_tenant), boa.reverts("credit_vault: no pending withdrawal"):
        funded.vault.withdraw()


def test_cancel_withdrawal(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(30 * MICRO)
        funded.vault.cancel_withdrawal()
        [canceled] = events(funded.vault, "WithdrawalCanceled")
        assert (canceled.tenant, canceled.amount) == (tenant, 30 * MICRO)
        assert funded.vault.available(tenant) == DEPOSIT
        boa.env.time_travel(seconds=WITHDRAW_DELAY)
        with boa.reverts("credit_vault: no pending withdrawal"):
            funded.vault.withdraw()


def test_cancel_without_request_reverts(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant), boa.reverts("credit_vault: no pending withdrawal"):
        funded.vault.cancel_withdrawal()


# settle


def test_settler_settles_with_fee(funded: System, tenant: str) -> None:
    fee_recipient = boa.env.generate_address("fees")
    with boa.env.prank(funded.settler):
        funded.vault.settle(tenant, 10 * MICRO, funded.payout, MICRO, fee_recipient)
    [settled] = events(funded.vault, "Settled")
    assert (settled.tenant, settled.payout) == (tenant, funded.payout)
    assert (settled.amount, settled.fee) == (10 * MICRO, MICRO)
    assert _stable(funded, funded.payout) == 9 * MICRO
    assert _stable(funded, fee_recipient) == MICRO
    assert funded.credit.balanceOf(tenant) == 90 * MICRO
    assert _stable(funded, funded.vault.address) == funded.credit.totalSupply()


@pytest.mark.parametrize("fee", [0, 10 * MICRO])
def test_settle_without_fee_or_all_fee(funded: System, tenant: str, fee: int) -> None:
    with boa.env.prank(funded.settler):
        funded.vault.settle(
            tenant, 10 * MICRO, funded.payout, fee, ZERO_ADDRESS if fee == 0 else funded.owner
        )
    assert _stable(funded, funded.payout) == 10 * MICRO - fee


def test_settle_rejects_non_settler(funded: System, tenant: str, stranger: str) -> None:
    for caller in (tenant, stranger, funded.operator, funded.owner):
        with boa.env.prank(caller), boa.reverts("credit_vault: caller is not the settler"):
            funded.vault.settle(tenant, 1, funded.payout, 0, ZERO_ADDRESS)


def test_settle_rejects_bad_input(funded: System, tenant: str) -> None:
    payout = funded.payout
    with boa.env.prank(funded.settler):
        with boa.reverts("credit_vault: amount is zero"):
            funded.vault.settle(tenant, 0, payout, 0, ZERO_ADDRESS)
        with boa.reverts("credit_vault: fee exceeds amount"):
            funded.vault.settle(tenant, 1, payout, 2, payout)
        with boa.reverts("credit_vault: payout is the zero address"):
            funded.vault.settle(tenant, 1, ZERO_ADDRESS, 0, ZERO_ADDRESS)
        with boa.reverts("credit_vault: fee recipient is the zero address"):
            funded.vault.settle(tenant, 2, payout, 1, ZERO_ADDRESS)
        with boa.reverts("credit_vault: insufficient available credits"):
            funded.vault.settle(tenant, DEPOSIT + 1, payout, 0, ZERO_ADDRESS)


def test_settle_never_touches_on_chain_locks(locked: System, tenant: str) -> None:
    with boa.env.prank(locked.settler):
        with boa.reverts("credit_vault: insufficient available credits"):
            locked.vault.settle(tenant, 60 * MICRO + 1, locked.payout, 0, ZERO_ADDRESS)
        locked.vault.settle(tenant, 60 * MICRO, locked.payout, 0, ZERO_ADDRESS)
    assert locked.vault.locked(tenant) == 40 * MICRO


def test_settle_takes_the_shortfall_from_a_pending_withdrawal(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(80 * MICRO)
    with boa.env.prank(funded.settler):
        funded.vault.settle(tenant, 30 * MICRO, funded.payout, 0, ZERO_ADDRESS)
    [reduced] = events(funded.vault, "WithdrawalReduced")
    assert (reduced.tenant, reduced.amount, reduced.remaining) == (tenant, 10 * MICRO, 70 * MICRO)
    assert funded.vault.pending_withdrawal(tenant) == 70 * MICRO
    assert funded.vault.available(tenant) == 0
    boa.env.time_travel(seconds=WITHDRAW_DELAY)
    with boa.env.prank(tenant):
        funded.vault.withdraw()
    assert _stable(funded, tenant) == INITIAL_FUNDS - 30 * MICRO
    assert funded.credit.balanceOf(tenant) == 0


def test_settle_of_the_whole_pending_withdrawal_clears_it(funded: System, tenant: str) -> None:
    with boa.env.prank(tenant):
        funded.vault.request_withdrawal(DEPOSIT)
    with boa.env.prank(funded.settler):
        funded.vault.settle(tenant, DEPOSIT, funded.payout, 0, ZERO_ADDRESS)
    assert funded.vault.withdrawal_available_at(tenant) == 0
    with boa.env.prank(tenant), boa.reverts("credit_vault: no pending withdrawal"):
        funded.vault.withdraw()
