"""``Ledger``: the money core's async API (lock, consume, refund, deposit, expiry)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from apicredits.db.engine import Database
from apicredits.db.schema import transfers
from apicredits.errors import ApicreditsError, LockClosed, NotFound
from apicredits.ledger.batcher import Batcher
from apicredits.ledger.model import (
    PLATFORM_REVENUE_ACCOUNT,
    WORLD_ACCOUNT,
    Account,
    AccountType,
    Command,
    Consume,
    Deposit,
    Expire,
    Lock,
    Move,
    Refund,
    Transfer,
    TransferKind,
)
from apicredits.ledger.rules import Result
from apicredits.ledger.store import (
    due_locks,
    ensure_account,
    get_account,
    get_transfer,
    list_transfers,
)

log = logging.getLogger(__name__)

# Which accounts may not go below zero: everything but the world account.
_GUARDED = {AccountType.TENANT: True, AccountType.PROVIDER: True, AccountType.PLATFORM: True}


@dataclass(frozen=True, slots=True)
class Balance:
    available_micro: int
    locked_micro: int
    spent_micro: int  # consumed over the account's life
    deposited_micro: int  # credits posted to the account


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class Ledger:
    def __init__(
        self, db: Database, *, clock_us: Callable[[], int] = wall_clock_us, max_batch: int = 512
    ) -> None:
        self.db = db
        self.clock_us = clock_us
        self._batcher = Batcher(db, clock_us, max_batch=max_batch)

    # -- accounts
    async def open_account(self, account_id: str, type_: AccountType) -> None:
        guarded = _GUARDED.get(type_, False)
        work = functools.partial(
            ensure_account,
            account_id=account_id,
            type_=type_,
            must_not_exceed=guarded,
            now_us=self.clock_us(),
        )
        await self.db.write(work)

    async def open_system_accounts(self) -> None:
        await self.open_account(WORLD_ACCOUNT, AccountType.WORLD)
        await self.open_account(PLATFORM_REVENUE_ACCOUNT, AccountType.PLATFORM)

    async def account(self, account_id: str) -> Account:
        account = await self.db.read(functools.partial(get_account, account_id=account_id))
        if account is None:
            raise NotFound(f"account {account_id} does not exist", account_id=account_id)
        return account

    async def balance(self, account_id: str) -> Balance:
        account = await self.account(account_id)
        spent = await self.db.read(functools.partial(_spent, account_id=account_id))
        return Balance(account.available, account.locked, spent, account.credits_posted)

    async def transfer(self, transfer_id: str) -> Transfer | None:
        """The transfer with this id, if one was recorded."""
        return await self.db.read(functools.partial(get_transfer, transfer_id=transfer_id))

    async def history(
        self, account_id: str, *, limit: int = 100, after_seq: int = 0
    ) -> list[Transfer]:
        work = functools.partial(
            list_transfers, account_id=account_id, limit=limit, after_seq=after_seq
        )
        return await self.db.read(work)

    # -- transfers
    async def execute(self, command: Command) -> Transfer:
        """Apply one command; raises its ``ApicreditsError`` if it is refused."""
        return (await self.execute_with_balances(command))[0]

    async def execute_with_balances(self, command: Command) -> tuple[Transfer, dict[str, int]]:
        """Like ``execute``, plus the available credits of the accounts it touched, read in
        the same transaction (what a response's "remaining" header shows)."""
        result, available = await self._batcher.submit(command)
        if isinstance(result, ApicreditsError):
            raise result
        return result, available

    async def execute_many(self, commands: list[Command]) -> list[Result]:
        return await self._batcher.submit_many(commands)

    async def deposit(
        self, transfer_id: str, account_id: str, amount: int, memo: str = ""
    ) -> Transfer:
        return await self.execute(Deposit(transfer_id, account_id, amount, memo=memo))

    async def move(
        self, transfer_id: str, debit: str, credit: str, amount: int, memo: str = ""
    ) -> Transfer:
        return await self.execute(Move(transfer_id, debit, credit, amount, memo=memo))

    async def lock(
        self,
        lock_id: str,
        debit: str,
        amount: int,
        *,
        timeout_seconds: int,
        credit: str = PLATFORM_REVENUE_ACCOUNT,
        budget_scopes: tuple[tuple[str, str], ...] = (),
        memo: str = "",
    ) -> Transfer:
        return await self.execute(
            Lock(lock_id, debit, credit, amount, timeout_seconds, budget_scopes, memo)
        )

    async def consume(self, transfer_id: str, lock_id: str, amount: int) -> Transfer:
        """Post ``amount`` of the lock and release the remainder, in one step."""
        return await self.execute(Consume(transfer_id, lock_id, amount))

    async def refund(self, transfer_id: str, lock_id: str) -> Transfer:
        return await self.execute(Refund(transfer_id, lock_id))

    # -- expiry
    async def expire_due(self, *, limit: int = 1000) -> int:
        """Expire locks past their timeout; safe to run in every worker at once.

        Returns how many of the due locks it found are now expired, by this call or by a
        sweeper in another worker at the same moment (each lock still expires once)."""
        now_us = self.clock_us()
        lock_ids = await self.db.read(functools.partial(due_locks, now_us=now_us, limit=limit))
        if not lock_ids:
            return 0
        results = await self.execute_many([Expire(lock_id) for lock_id in lock_ids])
        expired = 0
        for result in results:
            if isinstance(result, Transfer):
                expired += result.kind == TransferKind.EXPIRE
            elif not isinstance(result, LockClosed):  # closed meanwhile by someone else: fine
                log.warning("lock expiry failed: %s", result)
        return expired

    async def run_sweeper(self, interval_seconds: float) -> None:
        """Expire due locks forever (a background task of every worker)."""
        while True:
            try:
                while await self.expire_due() > 0:
                    pass
            except Exception:
                log.exception("lock sweeper pass failed; will retry")
            await asyncio.sleep(interval_seconds)


def _spent(conn: Connection, account_id: str) -> int:
    stmt = select(func.coalesce(func.sum(transfers.c.amount), 0)).where(
        transfers.c.debit_account_id == account_id, transfers.c.kind == str(TransferKind.CONSUME)
    )
    return int(conn.execute(stmt).scalar_one())
