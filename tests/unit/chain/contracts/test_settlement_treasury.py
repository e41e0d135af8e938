"""settlement_treasury.vy: paying the lines of a threshold-signed receipt after its dispute
window, once each, with a Merkle proof and the epoch's record (checked against the receipt's
commitment); voided epochs, tampered records, inactive providers, tampered lines and admin
changes are refused. Epoch 1 comes from the session's ``settled`` fixture."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from contracts_support import MICRO, PROVIDER_ID, ZERO_ADDRESS, System, events, load, now
from eth_utils import keccak
from oracle_signing import DISPUTE_WINDOW, LinesTree, Settled, line_leaf

DEPOSIT = 20 * MICRO
NO_MATCH = "settlement_treasury: epoch record does not match the receipt"


@pytest.fixture
def s(system: System, settled: Settled) -> Settled:
    """The treasury is the vault's settler and both tenants hold `DEPOSIT` credits."""
    system.vault.set_settler(settled.treasury.address)
    for tenant in system.tenants[:2]:
        with boa.env.prank(tenant.address):
            system.vault.deposit(tenant.address, DEPOSIT)
    return settled


@pytest.fixture
def after_window(s: Settled) -> Settled:
    boa.env.time_travel(seconds=s.submitted_at + DISPUTE_WINDOW - now())
    return s


def execute(s: Settled, index: int, **changes: Any) -> None:
    epoch, tenant, provider_id, amount, fee = s.lines[index]
    line = {"epoch": epoch, "record": s.record, "tenant": tenant, "provider_id": provider_id,
            "amount": amount, "fee": fee, "proof": s.tree.proof(index)} | changes  # fmt: skip
    s.treasury.execute_line(*line.values())


def tampered(record: tuple[Any, ...], field: int, value: Any) -> tuple[Any, ...]:
    changed = list(record)
    changed[field] = value
    return tuple(changed)


def test_a_line_pays_the_provider_and_burns_the_credits(
    system: System, after_window: Settled, stranger: str
) -> None:
    s = after_window
    epoch, tenant, provider_id, amount, fee = s.lines[0]
    vault_before = system.stablecoin.balanceOf(system.vault.address)
    with boa.env.prank(stranger):  # anyone may execute
        execute(s, 0)
    (logged,) = events(s.treasury, "LineExecuted")
    assert (logged.epoch, logged.tenant, logged.provider_id) == (epoch, tenant, provider_id)
    assert (logged.amount, logged.fee) == (amount, fee)
    assert system.credit.balanceOf(tenant) == DEPOSIT - amount
    assert system.vault.available(tenant) == DEPOSIT - amount
    assert system.stablecoin.balanceOf(system.payout) == amount - fee
    assert system.stablecoin.balanceOf(s.fee_recipient) == fee
    assert system.stablecoin.balanceOf(system.vault.address) == vault_before - amount
    assert s.treasury.executed(line_leaf(s.lines[0])) is True
    assert s.treasury.line_leaf(*s.lines[0]) == line_leaf(s.lines[0])

    with boa.reverts("settlement_treasury: line already executed"):
        execute(s, 0)
    execute(s, 1)
    assert system.stablecoin.balanceOf(system.payout) == amount - fee + s.lines[1][3]


def test_a_batch_pays_every_line_or_none(system: System, after_window: Settled) -> None:
    s = after_window
    batch = [line[1:] for line in s.lines[:2]]
    proofs = [s.tree.proof(0), s.tree.proof(1)]
    with boa.reverts("settlement_treasury: one proof per line"):
        s.treasury.execute_lines(1, s.record, batch, proofs[:1])
    with boa.reverts("settlement_treasury: invalid proof"):
        s.treasury.execute_lines(1, s.record, batch, proofs[::-1])
    with boa.reverts("settlement_treasury: line already executed"):
        s.treasury.execute_lines(1, s.record, [batch[0], batch[0]], [proofs[0], proofs[0]])
    with boa.reverts(NO_MATCH):
        s.treasury.execute_lines(1, tampered(s.record, 5, 0b11), batch, proofs)
    s.treasury.execute_lines(1, s.record, batch, proofs)
    assert [log.tenant for log in events(s.treasury, "LineExecuted")] == [b[0] for b in batch]
    paid = sum(amount - fee for _, _, amount, fee in batch)
    assert system.stablecoin.balanceOf(system.payout) == paid
    with boa.reverts("settlement_treasury: line already executed"):
        execute(s, 1)


def test_a_batch_checks_the_epoch(s: Settled) -> None:
    with boa.reverts("settlement_treasury: dispute window not passed"):
        s.treasury.execute_lines(1, s.record, [s.lines[0][1:]], [s.tree.proof(0)])
    boa.env.time_travel(seconds=DISPUTE_WINDOW)
    with boa.reverts("settlement_treasury: epoch not submitted"):
        s.treasury.execute_lines(2, s.record, [], [])


def test_no_line_is_paid_during_the_dispute_window(s: Settled) -> None:
    boa.env.time_travel(seconds=s.submitted_at + DISPUTE_WINDOW - now() - 1)
    with boa.reverts("settlement_treasury: dispute window not passed"):
        execute(s, 0)


def test_an_earlier_submitted_at_does_not_shorten_the_window(s: Settled) -> None:
    early = tampered(s.record, 4, now() - DISPUTE_WINDOW)
    with boa.reverts(NO_MATCH):
        execute(s, 0, record=early)
    with boa.reverts(NO_MATCH):
        s.treasury.execute_lines(1, early, [s.lines[0][1:]], [s.tree.proof(0)])


def test_a_record_with_another_lines_root_cannot_pay_forged_lines(
    system: System, after_window: Settled
) -> None:
    s = after_window
    tenant = system.tenants[0].address
    forged = [(1, tenant, PROVIDER_ID, DEPOSIT, 0), (1, tenant, PROVIDER_ID, 1, 0)]
    tree = LinesTree.of(forged)
    record = tampered(s.record, 1, tree.root)
    with boa.reverts(NO_MATCH):
        s.treasury.execute_line(*forged[0][:1], record, *forged[0][1:], tree.proof(0))
    with boa.reverts(NO_MATCH):
        s.treasury.execute_lines(1, record, [line[1:] for line in forged],
                                 [tree.proof(0), tree.proof(1)])  # fmt: skip
    assert system.credit.balanceOf(tenant) == DEPOSIT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (0, keccak(text="other events")),  # events_root
        (2, 4),  # line_count
        (3, 1),  # total_micro
        (5, 0b11),  # signers
        (5, 0),
    ],
)
def test_a_record_differing_in_any_field_is_refused(
    after_window: Settled, field: int, value: Any
) -> None:
    with boa.reverts(NO_MATCH):
        execute(after_window, 0, record=tampered(after_window.record, field, value))


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": 5 * MICRO + 1},
        {"fee": 0},
        {"tenant": ZERO_ADDRESS},
        {"epoch": 1, "proof": []},
        {"proof": [b"\x01" * 32, b"\x02" * 32]},
    ],
)
def test_a_tampered_line_or_proof_is_refused(after_window: Settled, changes: Any) -> None:
    with boa.reverts("settlement_treasury: invalid proof"):
        execute(after_window, 0, **changes)


def test_a_line_of_another_epoch_is_refused(after_window: Settled) -> None:
    with boa.reverts("settlement_treasury: epoch not submitted"):
        execute(after_window, 0, epoch=2)


def test_a_void_epoch_pays_nothing(s: Settled) -> None:
    s.receipts.void_epoch(1, s.record)
    boa.env.time_travel(seconds=DISPUTE_WINDOW)
    with boa.reverts("settlement_treasury: epoch is void"):
        execute(s, 0)
    with boa.reverts("settlement_treasury: epoch is void"):
        s.treasury.execute_lines(1, s.record, [s.lines[0][1:]], [s.tree.proof(0)])
    with boa.reverts("settlement_treasury: epoch is void"):  # whatever record is offered
        execute(s, 0, record=tampered(s.record, 4, 0))


def test_an_inactive_provider_is_not_paid(system: System, after_window: Settled) -> None:
    with boa.reverts("settlement_treasury: provider is not active"):
        execute(after_window, 2)  # never registered
    system.registry.set_status(PROVIDER_ID, 2)  # suspended
    with boa.reverts("settlement_treasury: provider is not active"):
        execute(after_window, 0)


def test_the_vault_refuses_a_treasury_that_is_not_its_settler(
    system: System, after_window: Settled
) -> None:
    system.vault.set_settler(system.settler)
    with boa.reverts("credit_vault: caller is not the settler"):
        execute(after_window, 0)


def test_set_fee_recipient(s: Settled, stranger: str) -> None:
    s.treasury.set_fee_recipient(stranger)
    (logged,) = events(s.treasury, "FeeRecipientChanged")
    assert (logged.previous_recipient, logged.new_recipient) == (s.fee_recipient, stranger)
    assert s.treasury.fee_recipient() == stranger
    with boa.reverts("settlement_treasury: fee recipient is the zero address"):
        s.treasury.set_fee_recipient(ZERO_ADDRESS)
    with boa.env.prank(stranger), boa.reverts("settlement_treasury: caller is not the owner"):
        s.treasury.set_fee_recipient(stranger)


def test_set_dispute_window(s: Settled, stranger: str) -> None:
    s.treasury.set_dispute_window(2 * DISPUTE_WINDOW)
    (logged,) = events(s.treasury, "DisputeWindowChanged")
    assert (logged.previous_window, logged.new_window) == (DISPUTE_WINDOW, 2 * DISPUTE_WINDOW)
    boa.env.time_travel(seconds=s.submitted_at + DISPUTE_WINDOW - now())
    with boa.reverts("settlement_treasury: dispute window not passed"):
        execute(s, 0)
    shorter = "settlement_treasury: window shorter than the receipts' dispute window"
    with boa.reverts(shorter):
        s.treasury.set_dispute_window(DISPUTE_WINDOW - 1)
    with boa.env.prank(stranger), boa.reverts("settlement_treasury: caller is not the owner"):
        s.treasury.set_dispute_window(DISPUTE_WINDOW)


def test_transfer_ownership(s: Settled, stranger: str) -> None:
    with boa.reverts("settlement_treasury: new owner is the zero address"):
        s.treasury.transfer_ownership(ZERO_ADDRESS)
    s.treasury.transfer_ownership(stranger)
    (logged,) = events(s.treasury, "OwnershipTransferred")
    assert logged.new_owner == stranger
    with boa.reverts("settlement_treasury: caller is not the owner"):
        s.treasury.set_fee_recipient(stranger)


def test_the_constructor_checks_its_arguments(system: System, settled: Settled) -> None:
    args = [settled.receipts.address, system.vault.address, system.registry.address,
            settled.fee_recipient, DISPUTE_WINDOW]  # fmt: skip
    names = ["receipts", "vault", "registry", "fee recipient"]
    for i, name in enumerate(names):
        wrong = list(args)
        wrong[i] = ZERO_ADDRESS
        with boa.reverts(f"settlement_treasury: {name} is the zero address"):
            load("settlement_treasury", *wrong)
    with boa.reverts("settlement_treasury: window shorter than the receipts' dispute window"):
        load("settlement_treasury", *args[:4], DISPUTE_WINDOW - 1)
    treasury = load("settlement_treasury", *args)
    assert treasury.receipts() == settled.receipts.address
    assert treasury.vault() == system.vault.address
    assert treasury.registry() == system.registry.address
    assert treasury.dispute_window() == DISPUTE_WINDOW
