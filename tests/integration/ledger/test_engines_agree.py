"""The same ledger story on PostgreSQL and on SQLite ends in the same rows.

The two engines write differently (PostgreSQL: one statement of data-modifying CTEs per
batch; SQLite: a statement per table, plus the write connection's snapshot), so one
scenario touching every kind of write runs on both and their tables are compared.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from apicredits.db import Database, upgrade
from apicredits.db.schema import budgets, tenants
from apicredits.errors import LockClosed
from apicredits.ledger import (
    PLATFORM_REVENUE_ACCOUNT,
    AccountType,
    Consume,
    Ledger,
    Lock,
    Refund,
    store,
    tenant_account,
)
from apicredits.metering import UsageRecord
from apicredits.tariffs import Unit

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


TENANT = {"id": "acme", "name": "acme", "settings": "{}", "created_at_us": 0}
BUDGET = {
    "id": "bud_day",
    "tenant_id": "acme",
    "scope": "tenant",
    "scope_id": "acme",
    "period": "day",
    "cap_micro": 1_000,
    "created_at_us": 0,
}


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_800_000_000_000_000

    def __call__(self) -> int:
        return self.now_us


def usage(request_id: str, lock_id: str, tenant_id: str) -> dict[str, Any]:
    return UsageRecord(
        request_id, tenant_id, None, "key_1", None, lock_id, "sim", "sim-gpt", "openai.chat",
        {Unit.INPUT_TOKENS: 3}, 1, 40, 0, "ok", "ab" * 32, 1, None, 2,
    ).row()  # fmt: skip


async def story(url: str) -> dict[str, Any]:
    db = Database(url)
    await upgrade(db)
    clock = Clock()
    ledger = Ledger(db, clock_us=clock)
    await ledger.open_system_accounts()
    await db.write(lambda c: c.execute(tenants.insert(), [TENANT]))
    await db.write(lambda c: c.execute(budgets.insert(), [BUDGET]))
    await ledger.open_account(tenant_account("acme"), AccountType.TENANT)
    t = tenant_account("acme")
    scopes = (("tenant", "acme"),)
    try:
        await ledger.deposit("fund", t, 1_000)
        await ledger.move("fee", t, PLATFORM_REVENUE_ACCOUNT, 50)
        await ledger.lock("a", t, 200, timeout_seconds=60, budget_scopes=scopes)
        await ledger.execute(
            Consume("a:c", "a", 40, attach=(("usage_records", usage("r1", "a", "acme")),))
        )
        # opened and closed in one batch, beside a lock and a refund of an earlier one, and
        # two usage records whose columns come in different orders
        await ledger.lock("b", t, 100, timeout_seconds=60, budget_scopes=scopes)
        await ledger.lock("f", t, 20, timeout_seconds=60, budget_scopes=scopes)
        reordered = dict(reversed(usage("r3", "f", "acme").items()))
        results = await ledger.execute_many(
            [
                Lock("c", t, PLATFORM_REVENUE_ACCOUNT, 300, 60, scopes),
                Consume("c:c", "c", 300, attach=(("usage_records", usage("r2", "c", "acme")),)),
                Lock("d", t, PLATFORM_REVENUE_ACCOUNT, 100, 30, scopes),
                Refund("b:r", "b"),
                Consume("f:c", "f", 20, attach=(("usage_records", reordered),)),
            ]
        )
        assert all(not isinstance(r, Exception) for r in results), results
        await ledger.lock("e", t, 10, timeout_seconds=1)
        clock.now_us += 2_000_000
        assert await ledger.expire_due() == 1

        def rows(conn: Connection) -> dict[str, Any]:
            def q(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in conn.execute(text(sql))]

            return {
                "accounts": q(
                    "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted "
                    "FROM accounts ORDER BY id"
                ),
                "transfers": q(
                    "SELECT seq, id, kind, debit_account_id, credit_account_id, amount, released, "
                    "pending_id, expires_at_us, holds FROM transfers ORDER BY seq"
                ),
                "open_locks": q("SELECT lock_id, expires_at_us FROM open_locks ORDER BY lock_id"),
                "budget_usage": q("SELECT period_key, used_micro FROM budget_usage"),
                "usage_records": q(
                    "SELECT id, tenant_id, credential_id, lock_id, provider, model, route, units, "
                    "tariff_version, cost_micro, status, request_hash, started_at_us, duration_us "
                    "FROM usage_records ORDER BY id"
                ),
            }

        return await db.read(rows)
    finally:
        await db.aclose()


async def test_postgres_and_sqlite_write_the_same_ledger(postgres_url: str, tmp_path: Path) -> None:
    on_postgres = await story(postgres_url)
    on_sqlite = await story(f"sqlite:///{tmp_path / 'story.db'}")
    assert on_postgres == on_sqlite
    assert on_sqlite["open_locks"] == [("d", 1_800_000_000_000_000 + 30_000_000)]
    assert on_sqlite["budget_usage"] == [("d2027-01-15", 40 + 300 + 20 + 100)]
    assert [r[:4] for r in on_sqlite["usage_records"]] == [
        ("r1", "acme", "key_1", "a"),
        ("r2", "acme", "key_1", "c"),
        ("r3", "acme", "key_1", "f"),
    ]
    assert {r[4:] for r in on_sqlite["usage_records"]} == {
        ("sim", "sim-gpt", "openai.chat", '{"input_tokens": 3}', 1, 40, "ok", "ab" * 32, 1, 2)
    }
    balances = {a[0]: a[1:] for a in on_sqlite["accounts"]}
    # deposited 1,000; fee 50, consumed 40 + 300 + 20; "d" (100) still locked
    assert balances["tenant:acme"] == (100, 410, 0, 1_000)


async def test_postgres_closes_a_known_lock_without_reading_transfers(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real = store._transfers

    def counting(sql: Any, where: str, params: Any) -> Any:
        reads.append(where)
        return real(sql, where, params)

    monkeypatch.setattr(store, "_transfers", counting)
    async with two_processes(postgres_url) as (ledger, other, t):
        await ledger.lock("mine", t, 100, timeout_seconds=60)
        await other.lock("theirs", t, 100, timeout_seconds=60)
        reads.clear()
        await ledger.consume("mine:c", "mine", 10)
        assert reads == []  # its rows remembered; its id guessed unused, the lock open
        await ledger.consume("theirs:c", "theirs", 20)
        assert len(reads) == 2  # first which rows to lock, then the read under them
        balance = await ledger.balance(t)
        assert (balance.available_micro, balance.locked_micro) == (970, 0)


async def test_postgres_catches_a_wrong_guess_and_reads(postgres_url: str) -> None:
    """A replayed id, and a known lock that another process closed: the unique indexes
    refuse the guessed write, and the batch runs again reading."""
    async with two_processes(postgres_url) as (ledger, other, t):
        await ledger.lock("a", t, 100, timeout_seconds=60)
        first = await ledger.consume("a:c", "a", 10)
        again = await ledger.consume("a:c", "a", 10)  # a retry: the same transfer back
        assert (again.id, again.seq, again.amount) == (first.id, first.seq, 10)
        await ledger.lock("b", t, 100, timeout_seconds=60)
        await other.refund("b:r", "b")  # closed elsewhere; this process still knows it open
        with pytest.raises(LockClosed):
            await ledger.consume("b:c", "b", 10)
        balance = await ledger.balance(t)
        assert (balance.available_micro, balance.locked_micro) == (990, 0)


@contextlib.asynccontextmanager
async def two_processes(postgres_url: str) -> AsyncIterator[tuple[Ledger, Ledger, str]]:
    """Two ledgers on one PostgreSQL database, each with its own ``Database`` as two
    processes would have, and a tenant account holding 1,000."""
    db, other_db = Database(postgres_url), Database(postgres_url)
    try:
        await upgrade(db)
        ledger = Ledger(db)
        await ledger.open_system_accounts()
        t = tenant_account("acme")
        await ledger.open_account(t, AccountType.TENANT)
        await ledger.deposit("fund", t, 1_000)
        yield ledger, Ledger(other_db), t
    finally:
        await db.aclose()
        await other_db.aclose()
