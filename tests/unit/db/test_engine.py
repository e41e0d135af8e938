"""``Database.write_now`` on a SQLite file: a write on the calling thread, at once, or
``WriteBusy`` (PostgreSQL always refuses it; the integration tests run the ledger there)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from apicredits.db import Database
from apicredits.db.engine import WriteBusy
from apicredits.db.sql import Sql

pytestmark = pytest.mark.anyio


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (n INTEGER)")
    db = Database(f"sqlite:///{path}")
    yield db
    await db.aclose()


def insert(n: int) -> Callable[[Sql], int]:
    def work(sql: Sql) -> int:
        return sql.run("INSERT INTO t (n) VALUES (:n)", {"n": n})

    return work


def rows(db: Database) -> list[int]:
    with sqlite3.connect(db.sqlite_path or "") as conn:
        return [r[0] for r in conn.execute("SELECT n FROM t ORDER BY n")]


async def test_write_now_commits_on_the_calling_thread(file_db: Database) -> None:
    assert file_db.write_now(insert(1)) == 1
    assert rows(file_db) == [1]


async def test_write_now_refuses_at_once_while_another_connection_writes(
    file_db: Database,
) -> None:
    other = sqlite3.connect(file_db.sqlite_path or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(WriteBusy):
        file_db.write_now(insert(2))
    assert time.monotonic() - started < 1  # no busy wait (the default would be 60 s)
    other.execute("ROLLBACK")
    other.close()
    assert rows(file_db) == []
    assert await file_db.write_sql(insert(3)) == 1
    assert rows(file_db) == [3]
