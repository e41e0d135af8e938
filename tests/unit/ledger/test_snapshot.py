"""The per-connection ledger snapshot: reads skipped while it is current, never a stale answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apicredits.db import Database
from apicredits.db.sql import Sql
from apicredits.errors import BudgetExceeded, IdempotencyConflict, InsufficientCredits
from apicredits.ledger import (
    PLATFORM_REVENUE_ACCOUNT,
    AccountType,
    Ledger,
    TransferKind,
    snapshot,
    store,
    tenant_account,
)
from apicredits.ledger.model import Account, Deposit, LedgerView
from apicredits.ledger.snapshot import Snapshot
from apicredits.tenants import Directory

pytestmark = pytest.mark.anyio
T = tenant_account("t")


@pytest.fixture
def full_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the batches that read their view from the database."""
    calls: list[int] = []
    real = store.load_view

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "load_view", counting)
    return calls


@pytest.fixture
async def ledger(db: Database) -> Ledger:
    led = Ledger(db)
    await led.open_system_accounts()
    await led.open_account(T, AccountType.TENANT)
    await led.deposit("fund", T, 1_000)
    return led


async def test_known_accounts_and_locks_are_not_read_again(
    ledger: Ledger, full_reads: list[int]
) -> None:
    await ledger.lock("warm", T, 1, timeout_seconds=60)  # learns the revenue account
    full_reads.clear()
    lock = await ledger.lock("l", T, 100, timeout_seconds=60)
    consume = await ledger.consume("c", "l", 40)
    assert full_reads == []
    assert lock.seq is not None
    assert consume.seq == lock.seq + 1
    balance = await ledger.balance(T)
    assert (balance.available_micro, balance.locked_micro) == (1_000 - 1 - 40, 1)
    assert (await ledger.transfer("c")) == consume


async def test_a_commit_by_another_connection_is_seen(
    ledger: Ledger, db: Database, tmp_path: Path, full_reads: list[int]
) -> None:
    await ledger.lock("warm", T, 1, timeout_seconds=60)
    other_db = Database(f"sqlite:///{tmp_path / 'unit.db'}")
    try:
        other = Ledger(other_db)
        await other.lock("elsewhere", T, 900, timeout_seconds=60)
        full_reads.clear()
        with pytest.raises(InsufficientCredits):
            await ledger.lock("too-much", T, 100, timeout_seconds=60)
        assert full_reads == [1]
        # and this process's own later writes build on what the other one wrote
        await ledger.consume("elsewhere:c", "elsewhere", 900)
        assert (await other.balance(T)).available_micro == 99
    finally:
        await other_db.aclose()


async def test_a_closed_lock_retried_is_its_original(ledger: Ledger) -> None:
    lock = await ledger.lock("l", T, 100, timeout_seconds=60)
    await ledger.consume("c", "l", 40)
    # The snapshot forgot "l" when it closed and takes the id for unused: the insert
    # fails, and the batch runs again reading everything.
    again = await ledger.lock("l", T, 100, timeout_seconds=60)
    assert again == lock
    with pytest.raises(IdempotencyConflict):
        await ledger.lock("l", T, 101, timeout_seconds=60)
    assert (await ledger.consume("c", "l", 40)).kind == TransferKind.CONSUME
    balance = await ledger.balance(T)
    assert (balance.available_micro, balance.locked_micro) == (960, 0)


async def test_a_retry_judged_afresh_would_be_refused_is_its_original(ledger: Ledger) -> None:
    move = await ledger.move("m", T, PLATFORM_REVENUE_ACCOUNT, 600)
    # 400 left: as a new move it would be refused; as a retry it is the move it was
    assert await ledger.move("m", T, PLATFORM_REVENUE_ACCOUNT, 600) == move
    with pytest.raises(InsufficientCredits):
        await ledger.move("m2", T, PLATFORM_REVENUE_ACCOUNT, 600)
    assert (await ledger.balance(T)).available_micro == 400


async def test_an_open_lock_retried_is_its_original(ledger: Ledger, full_reads: list[int]) -> None:
    lock = await ledger.lock("l", T, 100, timeout_seconds=60)
    full_reads.clear()
    assert await ledger.lock("l", T, 100, timeout_seconds=60) == lock
    assert full_reads == []
    assert (await ledger.balance(T)).locked_micro == 100


async def test_budgets_hold_from_the_snapshot_and_changes_to_them_are_seen(
    db: Database, full_reads: list[int]
) -> None:
    ledger = Ledger(db)
    await ledger.open_system_accounts()
    directory = Directory(db, ledger)
    tenant = await directory.create_tenant("t")
    await ledger.deposit("fund", tenant.account_id, 1_000)
    await directory.set_budget(tenant.id, "tenant", None, "day", 100)
    scopes = (("tenant", tenant.id),)

    async def lock(lock_id: str, amount: int) -> None:
        await ledger.lock(
            lock_id, tenant.account_id, amount, timeout_seconds=60, budget_scopes=scopes
        )

    await lock("a", 60)
    full_reads.clear()
    await lock("b", 30)
    await ledger.consume("b:c", "b", 10)  # 20 of the day's budget back
    assert full_reads == []
    with pytest.raises(BudgetExceeded):
        await lock("c", 31)
    await lock("c", 30)
    await directory.set_budget(tenant.id, "tenant", None, "day", 200)  # another connection
    full_reads.clear()
    await lock("d", 100)
    assert full_reads == [1]
    [status] = await directory.budgets(tenant.id)
    assert status.used_micro == 200


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'cache.db'}")
    await database.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
    yield database
    await database.aclose()


def _remember(value: int) -> Any:
    def work(sql: Sql) -> dict[str, Any]:
        assert sql.cache is not None
        seen = dict(sql.cache)
        sql.cache["value"] = value
        sql.run("INSERT INTO t (x) VALUES (:x)", {"x": value})
        return seen

    return work


async def test_a_connection_cache_lasts_while_only_it_commits(file_db: Database) -> None:
    assert await file_db.write_sql(_remember(1)) == {}
    assert await file_db.write_sql(_remember(2)) == {"value": 1}
    await file_db.write(lambda conn: conn.exec_driver_sql("INSERT INTO t (x) VALUES (9)"))
    assert await file_db.write_sql(_remember(3)) == {}


async def test_a_failed_transaction_drops_the_connection_cache(file_db: Database) -> None:
    await file_db.write_sql(_remember(1))

    def fail(sql: Sql) -> None:
        assert sql.cache is not None
        sql.cache["value"] = "written, then rolled back"
        sql.run("INSERT INTO t (x) VALUES (2)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await file_db.write_sql(fail)
    assert await file_db.write_sql(_remember(3)) == {}
    rows = await file_db.read(lambda conn: conn.exec_driver_sql("SELECT x FROM t").all())
    assert sorted(r[0] for r in rows) == [1, 3]


def test_a_snapshot_past_its_size_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_MAX_ROWS", 3)
    known = Snapshot()
    for i in range(5):
        view = LedgerView(accounts={f"a{i}": Account(f"a{i}", AccountType.TENANT)})
        known.learn(view, [Deposit(f"d{i}", f"a{i}", 1)])
    # a0..a3 made it pass 3 rows: the next full read started over with what it read
    assert sorted(known.accounts) == ["a4"]
    assert known.view([Deposit("again", "a4", 1, source_account_id="a4")], 0) is not None
    assert known.view([Deposit("again", "a3", 1, source_account_id="a4")], 0) is None
