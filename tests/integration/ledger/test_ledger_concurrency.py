"""Locks from several OS processes at once never overdraw an account or a budget.

Against the real PostgreSQL of this machine (row locks) and a SQLite file (BEGIN
IMMEDIATE): 4 processes x 200 concurrent locks on one tenant whose credits (or budget)
cover exactly 100.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from apicredits.db import Database, upgrade
from apicredits.db.schema import accounts, tenants, transfers
from apicredits.errors import BudgetExceeded, InsufficientCredits, InvalidInput
from apicredits.ledger import AccountType, Ledger, Lock, provider_account, tenant_account
from apicredits.tenants import Directory

pytestmark = pytest.mark.integration

AMOUNT = 7_000
PROCESSES = 4
PER_PROCESS = 200


async def _lock_many(url: str, worker: int, scopes: tuple[tuple[str, str], ...]) -> int:
    db = Database(url, pool_size=4)
    ledger = Ledger(db)
    tenant = tenant_account("acme")

    async def attempt(i: int) -> bool:
        try:
            await ledger.lock(
                f"w{worker}-{i}", tenant, AMOUNT, timeout_seconds=600, budget_scopes=scopes
            )
        except (InsufficientCredits, BudgetExceeded):
            return False
        return True

    try:
        return sum(await asyncio.gather(*(attempt(i) for i in range(PER_PROCESS))))
    finally:
        await db.aclose()


def _worker(url: str, worker: int, scopes: tuple[tuple[str, str], ...]) -> int:
    return asyncio.run(_lock_many(url, worker, scopes))


async def _setup(url: str, deposit: int, cap: int | None) -> None:
    db = Database(url)
    await upgrade(db)
    ledger = Ledger(db)
    await ledger.open_system_accounts()
    directory = Directory(db, ledger)
    await db.write(
        lambda c: c.execute(tenants.insert(), {"id": "acme", "name": "Acme", "created_at_us": 0})
    )
    await ledger.open_account(tenant_account("acme"), AccountType.TENANT)
    await ledger.deposit("funding", tenant_account("acme"), deposit)
    if cap is not None:
        await directory.set_budget("acme", "tenant", None, "month", cap)
    await db.aclose()


async def _finish_and_check(url: str, locked: int) -> None:
    db = Database(url)
    ledger = Ledger(db)
    tenant = tenant_account("acme")
    account = await ledger.account(tenant)
    assert account.locked == locked * AMOUNT
    # Close every lock: half consumed (a third of the amount), half refunded.
    history = [t for t in await ledger.history(tenant, limit=10_000) if t.kind == "lock"]
    assert len(history) == locked
    for n, lock in enumerate(history):
        if n % 2:
            await ledger.consume(f"{lock.id}:c", lock.id, AMOUNT // 3)
        else:
            await ledger.refund(f"{lock.id}:r", lock.id)
    balance = await ledger.balance(tenant)
    spent = (locked // 2) * (AMOUNT // 3)
    assert balance.locked_micro == 0
    assert balance.spent_micro == spent
    assert balance.available_micro == balance.deposited_micro - spent

    stmt = select(
        func.sum(accounts.c.credits_posted - accounts.c.debits_posted),
        func.sum(accounts.c.credits_pending - accounts.c.debits_pending),
    )
    posted, pending = await db.read(lambda c: c.execute(stmt).one())
    assert (posted, pending) == (0, 0), "postings must sum to zero"
    closings = select(func.count()).where(transfers.c.pending_id.is_not(None))
    assert await db.read(lambda c: c.execute(closings).scalar_one()) == locked
    await db.aclose()


def _run(url: str, *, deposit: int, cap: int | None) -> None:
    asyncio.run(_setup(url, deposit, cap))
    scopes = (("tenant", "acme"),) if cap is not None else ()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        counts = pool.starmap(_worker, [(url, w, scopes) for w in range(PROCESSES)])
    assert sum(counts) == 100, counts
    asyncio.run(_finish_and_check(url, 100))


def test_postgres_credits_cover_exactly_100(postgres_url: str) -> None:
    _run(postgres_url, deposit=100 * AMOUNT, cap=None)


def test_postgres_budget_covers_exactly_100(postgres_url: str) -> None:
    _run(postgres_url, deposit=1_000 * AMOUNT, cap=100 * AMOUNT)


def test_sqlite_credits_cover_exactly_100(tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 'ledger.db'}", deposit=100 * AMOUNT, cap=None)


def test_sqlite_budget_covers_exactly_100(tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 'ledger.db'}", deposit=1_000 * AMOUNT, cap=100 * AMOUNT)


@pytest.mark.anyio
async def test_a_memo_postgres_cannot_store_fails_alone_in_its_batch(postgres_url: str) -> None:
    # One transaction serves concurrent commands; a NUL in one memo must not fail the rest.
    await _setup(postgres_url, 1_000_000, None)
    db = Database(postgres_url)
    ledger = Ledger(db)
    try:
        tenant = tenant_account("acme")
        locks = [
            Lock(f"nul-{i}", tenant, provider_account("p"), 10, 60, memo="x\x00" if i == 3 else "")
            for i in range(8)
        ]
        await ledger.open_account(provider_account("p"), AccountType.PROVIDER)
        outcomes = await asyncio.gather(
            *(ledger.execute(lock) for lock in locks), return_exceptions=True
        )
        assert [type(o).__name__ for o in outcomes].count("InvalidInput") == 1
        assert isinstance(outcomes[3], InvalidInput)
        assert (await ledger.account(tenant)).locked == 7 * 10
    finally:
        await db.aclose()
