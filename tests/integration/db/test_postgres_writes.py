"""The ledger's hot writes on PostgreSQL (``Database.write_sql``): asyncpg driven directly
from a greenlet, one transaction per unit of work, errors as the rest of the code expects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from apicredits.db import Database
from apicredits.db.sql import Sql
from apicredits.errors import DatabaseUnavailable

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
