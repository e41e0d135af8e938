"""The ledger's hot writes on PostgreSQL (``Database.write_sql``): asyncpg driven directly
from a greenlet, one transaction per unit of work, errors as the rest of the code expects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from apicredits.db import Database, engine
from apicredits.db.sql import Sql
from apicredits.errors import DatabaseUnavailable, InvalidInput

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url, pool_size=1)
    await database.write(
        lambda c: c.execute(text("CREATE TABLE t (id text PRIMARY KEY, n bigint NOT NULL)"))
    )
    yield database
    await database.aclose()


def rows(conn: Connection) -> list[tuple[str, int]]:
    return [(r[0], r[1]) for r in conn.execute(text("SELECT id, n FROM t ORDER BY id"))]


async def test_statements_of_one_unit_commit_together(db: Database) -> None:
    def work(sql: Sql) -> tuple[int, list[tuple[str, int]]]:
        sql.many(
            "INSERT INTO t (id, n) VALUES (:id, :n)", [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
        )
        changed = sql.run(
            "UPDATE t SET n = n + :by WHERE id = ANY(CAST(:ids AS text[]))",
            {"by": 10, "ids": ["a", "b"]},
        )
        found = [
            (r[0], r[1]) for r in sql.all("SELECT id, n FROM t WHERE n > :n ORDER BY id", {"n": 11})
        ]
        return changed, found

    assert await db.write_sql(work) == (2, [("b", 12)])
    assert await db.read(rows) == [("a", 11), ("b", 12)]


async def test_a_failing_unit_leaves_nothing_behind(db: Database) -> None:
    def work(sql: Sql) -> None:
        sql.run("INSERT INTO t (id, n) VALUES (:id, :n)", {"id": "a", "n": 1})
        raise ValueError("the rules refused the batch")

    with pytest.raises(ValueError, match="refused"):
        await db.write_sql(work)
    assert await db.read(rows) == []


async def test_a_duplicate_key_is_sqlalchemys_integrity_error(db: Database) -> None:
    """What the ledger's batcher retries one command at a time."""
    await db.write_sql(lambda sql: sql.run("INSERT INTO t (id, n) VALUES ('a', 1)"))
    with pytest.raises(IntegrityError):
        await db.write_sql(
            lambda sql: sql.run("INSERT INTO t (id, n) VALUES (:id, 2)", {"id": "a"})
        )
    assert await db.read(rows) == [("a", 1)]


async def test_a_connection_lost_mid_unit_is_an_outage_and_the_next_unit_gets_a_new_one(
    db: Database,
) -> None:
    def killed(sql: Sql) -> None:
        sql.run("INSERT INTO t (id, n) VALUES ('lost', 1)")
        sql.all("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(DatabaseUnavailable) as lost:
        await db.write_sql(killed)
    assert "terminating connection" in lost.value.cause  # what killed it, not the rollback
    await db.write_sql(lambda sql: sql.run("INSERT INTO t (id, n) VALUES ('next', 2)"))
    assert await db.read(rows) == [("next", 2)]


async def test_a_held_connection_cut_while_idle_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.2)
    db = Database(postgres_url, pool_size=1)
    try:
        first = await db.write_sql(backend_pid)
        assert await db.write_sql(backend_pid) == first  # the writer holds its connection
        await db.read(lambda c: c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}))
        await asyncio.sleep(0.3)  # idle past the threshold: checked before the next unit
        assert await db.write_sql(backend_pid) != first
    finally:
        await db.aclose()


async def test_units_of_concurrent_callers_do_not_interleave(db: Database) -> None:
    """Each unit reads and then writes; interleaved on one connection they would share a
    transaction and see each other's rows."""

    def add(n: int) -> Callable[[Sql], int]:
        def work(sql: Sql) -> int:
            (count,) = sql.all("SELECT count(*) FROM t")[0]
            sql.run("INSERT INTO t (id, n) VALUES (:id, :n)", {"id": f"r{n:02}", "n": count})
            return int(count)

        return work

    seen = await asyncio.gather(*(db.write_sql(add(n)) for n in range(20)))
    assert sorted(seen) == list(range(20))  # each saw exactly the units before it
    assert len(await db.read(rows)) == 20


def backend_pid(sql: Sql) -> int:
    return int(sql.all("SELECT pg_backend_pid()")[0][0])


async def test_a_unit_cancelled_mid_statement_leaves_the_next_one_working(db: Database) -> None:
    """Shutting down cancels a batch wherever it waits; the held connection must not be left
    mid-statement for the next unit of work."""
    slow = asyncio.create_task(db.write_sql(lambda sql: sql.all("SELECT pg_sleep(2)")))
    await asyncio.sleep(0.3)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    await db.write_sql(lambda sql: sql.run("INSERT INTO t (id, n) VALUES ('after', 1)"))
    assert await db.read(rows) == [("after", 1)]


async def test_a_held_connection_the_server_closed_is_replaced_at_once(db: Database) -> None:
    """Closed a moment ago (a server restart, say): no failed unit of work, no idle wait."""
    first = await db.write_sql(backend_pid)
    await db.read(lambda c: c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}))
    await asyncio.sleep(0.1)  # the driver sees the connection close
    assert await db.write_sql(backend_pid) != first


async def test_text_with_a_nul_is_invalid_input_on_either_write_path(db: Database) -> None:
    # PostgreSQL stores no NUL in text: a 400 for the caller, not a 500, and nothing written
    def hot(sql: Sql) -> None:
        sql.run("INSERT INTO t (id, n) VALUES (:id, :n)", {"id": "a", "n": 1})
        sql.run("INSERT INTO t (id, n) VALUES (:id, :n)", {"id": "b\x00", "n": 2})

    with pytest.raises(InvalidInput, match="0x00"):
        await db.write_sql(hot)

    def pooled(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t VALUES ('x', 1)"))
        conn.execute(text("SELECT n FROM t WHERE id = :id"), {"id": "\x00"})  # a lookup too

    with pytest.raises(InvalidInput, match="0x00"):
        await db.write(pooled)
    assert await db.read(rows) == []
    await db.write_sql(lambda sql: sql.run("INSERT INTO t (id, n) VALUES ('c', 3)"))
    assert await db.read(rows) == [("c", 3)]  # the held connection is fine
