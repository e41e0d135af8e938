"""The ledger's state machine: a pure function from (view, commands, now) to an outcome.

The store loads a ``LedgerView`` under locks, calls ``apply_batch`` and writes back what
changed, so every rule — balance checks, budget caps, idempotency, lock lifecycle — lives
here, testable without a database. Commands of one batch are applied in order; a command
that fails yields its error and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apicredits.errors import (
    ApicreditsError,
    BudgetExceeded,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidInput,
    LockClosed,
    LockExceeded,
    NotFound,
)
from apicredits.ledger.model import (
    Account,
    BudgetHold,
    Command,
    Consume,
    Deposit,
    Expire,
    LedgerView,
    Lock,
    Move,
    Refund,
    Transfer,
    TransferKind,
)
from apicredits.money import MAX_MICRO

Result = Transfer | ApicreditsError


@dataclass
class BatchOutcome:
    results: list[Result] = field(default_factory=list)
    new_transfers: list[Transfer] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)  # changed accounts only
    budget_usage: dict[tuple[str, str], int] = field(default_factory=dict)  # (id, key) -> used
    attachments: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)


def period_key(period: str, now_us: int) -> str:
    """The budget bucket a lock made at ``now_us`` (UTC) counts against."""
    if period == "none":
        return "all"
    t = time.gmtime(now_us // 1_000_000)
    if period == "day":
        return f"d{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    if period == "month":
        return f"m{t.tm_year:04d}-{t.tm_mon:02d}"
    raise InvalidInput(f"unknown budget period {period!r}", field="period")


def same_content(existing: Transfer, command: Command) -> bool:
    """Whether a retried command asks for exactly what its earlier namesake did."""
    match command:
        case Deposit():
            return (
                existing.kind,
                existing.debit_account_id,
                existing.credit_account_id,
                existing.amount,
            ) == (
                TransferKind.DEPOSIT,
                command.source_account_id,
                command.account_id,
                command.amount,
            )
        case Move():
            return (
                existing.kind,
                existing.debit_account_id,
                existing.credit_account_id,
                existing.amount,
            ) == (
                TransferKind.MOVE,
                command.debit_account_id,
                command.credit_account_id,
                command.amount,
            )
        case Lock():
            return (
                existing.kind,
                existing.debit_account_id,
                existing.credit_account_id,
                existing.amount,
                existing.timeout_seconds,
            ) == (
                TransferKind.LOCK,
                command.debit_account_id,
                command.credit_account_id,
                command.amount,
                command.timeout_seconds,
            )
        case Consume():
            return (existing.kind, existing.pending_id, existing.amount) == (
                TransferKind.CONSUME,
                command.lock_id,
                command.amount,
            )
        case Refund():
            return (existing.kind, existing.pending_id) == (TransferKind.REFUND, command.lock_id)
        case Expire():
            return existing.kind == TransferKind.EXPIRE and existing.pending_id == command.lock_id


class _Batch:
    """Applies commands one by one over the view plus the batch's own earlier writes."""

    def __init__(self, view: LedgerView, now_us: int) -> None:
        self.view = view
        self.now_us = now_us
        self.out = BatchOutcome()
        self.transfers = dict(view.transfers)
        self.closings = dict(view.closings)
        self.used: dict[tuple[str, str], int] = {}

    def account(self, account_id: str) -> Account:
        acc = self.out.accounts.get(account_id) or self.view.accounts.get(account_id)
        if acc is None:
            raise NotFound(f"account {account_id} does not exist", account_id=account_id)
        return acc

    def usage(self, key: tuple[str, str]) -> int:
        return self.used.get(key, self.view.usage.get(key, 0))

    def record(self, transfer: Transfer, accounts: list[Account]) -> Transfer:
        self.transfers[transfer.id] = transfer
        if transfer.pending_id is not None:
            self.closings[transfer.pending_id] = transfer
        self.out.new_transfers.append(transfer)
        for acc in accounts:
            self.out.accounts[acc.id] = acc
        return transfer

    def run(self, command: Command) -> Result:
        try:
            existing = self.transfers.get(command.id)
            if existing is not None:
                if not same_content(existing, command):
                    raise IdempotencyConflict(
                        f"transfer id {command.id} was already used for different content",
                        transfer_id=command.id,
                    )
                return existing
            return self.apply(command)
        except ApicreditsError as exc:
            return exc

    def apply(self, command: Command) -> Transfer:
        match command:
            case Deposit():
                return self.post(
                    TransferKind.DEPOSIT,
                    command.id,
                    command.source_account_id,
                    command.account_id,
                    command.amount,
                    command.memo,
                )
            case Move():
                return self.post(
                    TransferKind.MOVE,
                    command.id,
                    command.debit_account_id,
                    command.credit_account_id,
                    command.amount,
                    command.memo,
                )
            case Lock():
                return self.lock(command)
            case Consume() | Refund() | Expire():
                transfer = self.close(command)
                if isinstance(command, Consume):
                    self.out.attachments.extend(command.attach)
                return transfer

    def post(
        self, kind: TransferKind, tid: str, debit_id: str, credit_id: str, amount: int, memo: str
    ) -> Transfer:
        _check_amount(amount)
        debit, credit = self.account(debit_id), self.account(credit_id)
        if debit_id == credit_id:
            raise InvalidInput("debit and credit accounts must differ")
        if debit.debits_must_not_exceed_credits and debit.available < amount:
            raise InsufficientCredits(debit.id, amount, debit.available)
        debit, credit = debit.adjusted(dP=amount), self.account(credit_id).adjusted(cP=amount)
        return self.record(
            Transfer(tid, kind, debit_id, credit_id, amount, memo=memo, created_at_us=self.now_us),
            [debit, credit],
        )

    def lock(self, command: Lock) -> Transfer:
        _check_amount(command.amount)
        if command.timeout_seconds <= 0:
            raise InvalidInput("a lock needs a positive timeout", field="timeout_seconds")
        if command.debit_account_id == command.credit_account_id:
            raise InvalidInput("debit and credit accounts must differ")
        debit = self.account(command.debit_account_id)
        credit = self.account(command.credit_account_id)
        if debit.debits_must_not_exceed_credits and debit.available < command.amount:
            raise InsufficientCredits(debit.id, command.amount, debit.available)
        holds: list[BudgetHold] = []
        for scope in command.budget_scopes:
            for budget in self.view.budgets.get(scope, []):
                hold = BudgetHold(budget.id, period_key(budget.period, self.now_us))
                used = self.usage((hold.budget_id, hold.period_key))
                if budget.cap_micro - used < command.amount:
                    raise BudgetExceeded(
                        budget.id, budget.scope, budget.cap_micro, used, command.amount
                    )
                holds.append(hold)
        for hold in holds:
            key = (hold.budget_id, hold.period_key)
            self.used[key] = self.out.budget_usage[key] = self.usage(key) + command.amount
        debit, credit = debit.adjusted(dp=command.amount), credit.adjusted(cp=command.amount)
        transfer = Transfer(
            command.id,
            TransferKind.LOCK,
            debit.id,
            credit.id,
            command.amount,
            timeout_seconds=command.timeout_seconds,
            expires_at_us=self.now_us + command.timeout_seconds * 1_000_000,
            holds=tuple(holds),
            memo=command.memo,
            created_at_us=self.now_us,
        )
        return self.record(transfer, [debit, credit])

    def close(self, command: Consume | Refund | Expire) -> Transfer:
        lock = self.transfers.get(command.lock_id)
        if lock is None or lock.kind != TransferKind.LOCK:
            raise NotFound(f"lock {command.lock_id} does not exist", lock_id=command.lock_id)
        closing = self.closings.get(lock.id)
        if closing is not None:
            raise LockClosed(
                f"lock {lock.id} is already closed ({closing.kind})",
                lock_id=lock.id,
                state=str(closing.kind),
            )
        assert lock.expires_at_us is not None
        expired = self.now_us >= lock.expires_at_us
        if isinstance(command, Expire) and not expired:
            raise LockClosed(f"lock {lock.id} has not expired yet", lock_id=lock.id, state="open")
        if isinstance(command, Consume):
            if isinstance(command.amount, bool) or not isinstance(command.amount, int):
                raise InvalidInput("amount must be an integer", field="amount_micro")
            if command.amount < 0:
                raise InvalidInput("amount must not be negative", field="amount_micro")
            if command.amount > lock.amount:
                raise LockExceeded(
                    f"consume of {command.amount} exceeds lock of {lock.amount}",
                    lock_id=lock.id,
                    lock_micro=lock.amount,
                    requested_micro=command.amount,
                )
        if expired and not isinstance(command, Expire):
            # Past its timeout a lock can only expire; do that now, then refuse.
            self.close(Expire(lock.id))
            raise LockClosed(f"lock {lock.id} expired", lock_id=lock.id, state="expired")
        posted = command.amount if isinstance(command, Consume) else 0
        kind = {
            Consume: TransferKind.CONSUME,
            Refund: TransferKind.REFUND,
            Expire: TransferKind.EXPIRE,
        }[type(command)]
        debit, credit = self.account(lock.debit_account_id), self.account(lock.credit_account_id)
        debit = debit.adjusted(dp=-lock.amount, dP=posted)
        credit = credit.adjusted(cp=-lock.amount, cP=posted)
        for hold in lock.holds:
            key = (hold.budget_id, hold.period_key)
            released = lock.amount - posted
            self.used[key] = self.out.budget_usage[key] = self.usage(key) - released
        transfer = Transfer(
            command.id,
            kind,
            debit.id,
            credit.id,
            posted,
            released=lock.amount - posted,
            pending_id=lock.id,
            created_at_us=self.now_us,
        )
        return self.record(transfer, [debit, credit])


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("amount must be an integer number of micro-credits")
    if not 0 < amount <= MAX_MICRO:
        raise InvalidInput("amount must be positive", field="amount_micro")


def apply_batch(view: LedgerView, commands: list[Command], now_us: int) -> BatchOutcome:
    batch = _Batch(view, now_us)
    for command in commands:
        batch.out.results.append(batch.run(command))
    return batch.out
