"""Which database failures are outages (503, retry) and which are bugs (left as they are)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc as sa
from sqlalchemy import text

from apicredits.db import Database
from apicredits.db.outages import is_outage, is_unstorable, raise_domain_error
from apicredits.errors import DatabaseUnavailable, InvalidInput


class _PgError(Exception):
    """What SQLAlchemy's asyncpg adapter raises: the server's SQLSTATE as ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> sa.DBAPIError:
    return sa.DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "outage"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (TimeoutError(), True),
        (sa.TimeoutError("QueuePool limit reached"), True),
        (sqlite3.OperationalError("unable to open database file"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("disk I/O error"), True),
        (sqlite3.OperationalError("no such table: accounts"), False),  # a bug, not an outage
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False),
        (_wrapped(sqlite3.OperationalError("database or disk is full")), True),
        (_wrapped(_PgError("08006")), True),  # connection failure
        (_wrapped(_PgError("57P01")), True),  # admin shutdown
        (_wrapped(_PgError("53300")), True),  # too many connections
        (_wrapped(_PgError("3D000")), True),  # the database does not exist
        (_wrapped(_PgError("23505")), False),  # unique violation
        (_wrapped(_PgError("42P01")), False),  # undefined table
        (_wrapped(Exception("anything"), invalidated=True), True),
        (ValueError("not a database error"), False),
    ],
)
def test_is_outage(failure: BaseException, outage: bool) -> None:
    assert is_outage(failure) is outage


@pytest.mark.parametrize(
    ("failure", "unstorable"),
    [
        (_PgError("22021"), True),  # asyncpg's own, on the hot path: a NUL in text
        (_wrapped(_PgError("22021")), True),  # through SQLAlchemy
        (_wrapped(_PgError("22P05")), True),
        (_wrapped(_PgError("22003")), False),  # a number out of range: a bug
        (_wrapped(_PgError("08006")), False),  # an outage
        (ValueError("x"), False),
    ],
)
def test_is_unstorable(failure: BaseException, unstorable: bool) -> None:
    assert is_unstorable(failure) is unstorable


def test_a_refusal_and_an_outage_become_domain_errors_and_a_bug_stays() -> None:
    with pytest.raises(InvalidInput, match="the database refuses this text: 22021"):
        raise_domain_error(_wrapped(_PgError("22021")))
    with pytest.raises(DatabaseUnavailable):
        raise_domain_error(_wrapped(_PgError("57P01")))
    raise_domain_error(_wrapped(_PgError("42P01")))  # returns: the caller re-raises it


def test_a_database_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}")  # a directory, not a database file

    async def run() -> None:
        try:
            with pytest.raises(DatabaseUnavailable) as err:
                await db.read(lambda c: c.execute(text("SELECT 1")).scalar_one())
            assert err.value.status == 503
            assert err.value.headers == {"Retry-After": "1"}
            with pytest.raises(DatabaseUnavailable):
                await db.write_sql(lambda sql: sql.all("SELECT 1"))
        finally:
            await db.aclose()

    asyncio.run(run())


def test_a_wrong_statement_is_not_an_outage(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")

    async def run() -> None:
        try:
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                await db.write_sql(lambda sql: sql.all("SELECT * FROM nowhere"))
        finally:
            await db.aclose()

    asyncio.run(run())
