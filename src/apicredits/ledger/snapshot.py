"""The ledger rows a write connection last read and wrote, to skip reading them again.

On SQLite every hot-path write runs on one of a process's own connections, and the engine
keeps a cache per connection only while nothing else has committed (``Sql.cache``). While
it lasts, the accounts, budgets, budget usage and open locks this connection wrote are
exactly what the database holds, so a lock or consume of a known tenant needs none of the
reads ``load_view`` makes (measured: a third of a gateway call's ledger time at one
connection).

One thing a snapshot cannot know is that an id is *unused*: it assumes a command's id is
new unless it names an open lock it knows. A wrong guess (a retried command) shows one of
two ways. If the batch refuses any command, ``apply_commands`` reads everything and
decides again before writing (the refusal may be a retry of a command that once
succeeded). If not, the insert fails, transfers being unique by id: ``StaleSnapshot``, the
transaction rolls back (dropping the cache) and the batch runs again reading everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from apicredits.ledger.model import (
    Account,
    Budget,
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
from apicredits.ledger.rules import BatchOutcome, period_key

_KEY = "ledger"
_MAX_ROWS = 100_000  # past this many rows of a kind, start over (full reads refill it)


class StaleSnapshot(Exception):
    """A snapshot's guess that an id was unused proved wrong; run the batch again, reading."""


@dataclasses.dataclass
class Snapshot:
    accounts: dict[str, Account] = dataclasses.field(default_factory=dict)
    open_locks: dict[str, Transfer] = dataclasses.field(default_factory=dict)
    budgets: dict[tuple[str, str], list[Budget]] = dataclasses.field(default_factory=dict)
    usage: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, cache: dict[str, object] | None) -> Snapshot | None:
        """The connection's snapshot (a new, empty one if it has none); None without a cache."""
        if cache is None:
            return None
        snapshot = cache.get(_KEY)
        if not isinstance(snapshot, Snapshot):
            snapshot = cache[_KEY] = Snapshot()
        return snapshot

    def view(self, commands: list[Command], now_us: int) -> LedgerView | None:
        """Everything ``commands`` read, if this snapshot holds all of it; else None."""
        view = LedgerView()
        for c in commands:
            match c:
                case Lock():
                    accounts = (c.debit_account_id, c.credit_account_id)
                    if not self._budgets(c.budget_scopes, view, now_us):
                        return None
                case Deposit():
                    accounts = (c.account_id, c.source_account_id)
                case Move():
                    accounts = (c.debit_account_id, c.credit_account_id)
                case Consume() | Refund() | Expire():
                    lock = self.open_locks.get(c.lock_id)
                    if lock is None or not self._usage(
                        ((h.budget_id, h.period_key) for h in lock.holds), view
                    ):
                        return None
                    view.transfers[lock.id] = lock
                    accounts = (lock.debit_account_id, lock.credit_account_id)
            for account_id in accounts:
                account = self.accounts.get(account_id)
                if account is None:
                    return None
                view.accounts[account_id] = account
            known = self.open_locks.get(c.id)  # a retried lock: its namesake
            if known is not None:
                view.transfers[known.id] = known
        return view

    def _budgets(self, scopes: Iterable[tuple[str, str]], view: LedgerView, now_us: int) -> bool:
        for scope in scopes:
            budgets = self.budgets.get(scope)
            if budgets is None:
                return False
            view.budgets[scope] = budgets
            if not self._usage(((b.id, period_key(b.period, now_us)) for b in budgets), view):
                return False
        return True

    def _usage(self, keys: Iterable[tuple[str, str]], view: LedgerView) -> bool:
        for key in keys:
            used = self.usage.get(key)
            if used is None:
                return False
            view.usage[key] = used
        return True

    def learn(self, view: LedgerView, commands: list[Command]) -> None:
        """Take in what ``load_view`` read for ``commands``."""
        parts = (self.accounts, self.open_locks, self.budgets, self.usage)
        if any(len(part) > _MAX_ROWS for part in parts):
            for part in parts:
                part.clear()
        self.accounts.update(view.accounts)
        for c in commands:
            if isinstance(c, Lock):  # every scope was looked up, those without budgets too
                for scope in c.budget_scopes:
                    self.budgets[scope] = view.budgets.get(scope, [])
            elif isinstance(c, Consume | Refund | Expire):
                # locks being closed were read with their closings (namesakes were not)
                lock = view.transfers.get(c.lock_id)
                if lock and lock.kind == TransferKind.LOCK and lock.id not in view.closings:
                    self.open_locks[lock.id] = lock
        self.usage.update(view.usage)

    def record(self, outcome: BatchOutcome, written: Mapping[str, Transfer]) -> None:
        """Take in what a batch wrote (``written``: its new transfers, numbered, by id)."""
        self.accounts.update(outcome.accounts)
        self.usage.update(outcome.budget_usage)
        for t in written.values():
            if t.kind == TransferKind.LOCK:
                self.open_locks[t.id] = t
            elif t.pending_id is not None:
                self.open_locks.pop(t.pending_id, None)
