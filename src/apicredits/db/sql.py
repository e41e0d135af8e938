"""A thin executor for the ledger's hand-written SQL (named ``:params``; on SQLite, rows
of a hot write may go by position, ``rows``).

The ledger's statements run on every call, so they skip SQLAlchemy's expression layer: on
SQLite they go straight to the stdlib driver on the transaction's own connection (SQLite
statements cost microseconds; building them cost ten times that); on PostgreSQL they go
straight to asyncpg, ``:names`` numbered once per statement text, from the greenlet that
``db.greenlets.run_sync`` runs the transaction's code in (elsewhere, over a SQLAlchemy
connection, as cached ``text()`` clauses). IN-lists are one array parameter on PostgreSQL,
so each statement keeps one plan whatever the batch size.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import IntegrityError

from apicredits.db.greenlets import await_

if TYPE_CHECKING:
    import asyncpg

Params = Mapping[str, Any]
T = TypeVar("T")


@functools.lru_cache(maxsize=512)
def _text(sql: str) -> TextClause:
    return text(sql)


_NAME = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # a ``:name``, not a ``::cast``


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """asyncpg's form of ``sql``: each ``:name`` as ``$n``; and the names, in that order."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${names.setdefault(match.group(1), len(names) + 1)}"

    return _NAME.sub(number, sql), tuple(names)


def _pg(awaitable: Awaitable[T]) -> T:
    """An asyncpg call's result; a broken constraint raised as SQLAlchemy raises it (what the
    ledger and its batcher catch on either engine)."""
    try:
        return await_(awaitable)
    except Exception as exc:
        if (getattr(exc, "sqlstate", None) or "").startswith("23"):
            raise IntegrityError(None, None, exc) from exc
        raise


def _args(names: tuple[str, ...], params: Params | None) -> list[Any]:
    return [params[n] for n in names] if params else []


class Sql:
    """One transaction's statements, on whichever connection runs it: ``SqliteSql`` (the
    stdlib driver), ``PgSql`` (asyncpg) or ``AlchemySql`` (a SQLAlchemy connection to
    PostgreSQL); ``Sql.over`` picks for a SQLAlchemy connection."""

    pg = False  # PostgreSQL's SQL (``in_``, ``for_update``, the store's own statements)

    def __init__(
        self, *, cache: dict[str, Any] | None = None, facts: dict[str, Any] | None = None
    ) -> None:
        """``cache``: state private to the driver connection that the engine keeps only while
        it is current (see ``apicredits.db.engine``); None where there is no such promise.
        ``facts``: one database's rows that never change once written, kept for the
        process's lifetime; None where there is none."""
        self.cache = cache
        self.facts = facts

    @staticmethod
    def over(conn: Connection) -> Sql:
        """Statements in ``conn``'s transaction: on SQLite, straight to its driver
        connection."""
        if conn.dialect.name == "postgresql":
            return AlchemySql(conn)
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        return SqliteSql(raw)

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def run(self, sql: str, params: Params | None = None) -> int:
        """Execute one statement; returns the rows it changed."""
        raise NotImplementedError

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        raise NotImplementedError

    def in_(self, column: str, values: Iterable[str], name: str) -> tuple[str, dict[str, Any]]:
        """``column IN values`` as SQL and its parameters."""
        ordered = sorted(set(values))
        if self.pg:
            return f"{column} = ANY(CAST(:{name} AS text[]))", {name: ordered}
        names = [f"{name}{i}" for i in range(len(ordered))]
        placeholders = ", ".join(f":{n}" for n in names)
        return f"{column} IN ({placeholders})", dict(zip(names, ordered, strict=True))

    @property
    def for_update(self) -> str:
        return " FOR UPDATE" if self.pg else ""


class SqliteSql(Sql):
    """Over the stdlib driver's connection; hot writes may bind rows by position."""

    def __init__(self, raw: sqlite3.Connection, *, cache: dict[str, Any] | None = None) -> None:
        super().__init__(cache=cache)
        self._raw = raw

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = self._raw.execute(sql, params or {}).fetchall()
        return rows

    def run(self, sql: str, params: Params | None = None) -> int:
        return int(self._raw.execute(sql, params or {}).rowcount)

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._raw.executemany(sql, rows)

    def insert_rowid(self, sql: str, values: Sequence[Any]) -> int:
        """Run one INSERT, its parameters bound by position (``?``); returns the rowid
        SQLite gave the new row."""
        rowid = self._raw.execute(sql, values).lastrowid
        assert rowid is not None
        return rowid

    def rows(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``sql`` once per row, its parameters bound by position (``?``)."""
        if rows:
            self._raw.executemany(sql, rows)


class PgSql(Sql):
    """Over asyncpg's connection, only from code that ``db.greenlets.run_sync`` runs."""

    pg = True

    def __init__(self, driver: asyncpg.Connection, *, facts: dict[str, Any] | None = None) -> None:
        super().__init__(facts=facts)
        self._pg = driver

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        statement, names = _numbered(sql)
        found: list[Sequence[Any]] = _pg(self._pg.fetch(statement, *_args(names, params)))
        return found

    def run(self, sql: str, params: Params | None = None) -> int:
        statement, names = _numbered(sql)
        status = _pg(self._pg.execute(statement, *_args(names, params)))
        count = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1"; "CREATE TABLE"
        return int(count) if count.isdigit() else 0

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            statement, names = _numbered(sql)
            _pg(self._pg.executemany(statement, [_args(names, r) for r in rows]))


class AlchemySql(Sql):
    """Over a SQLAlchemy connection to PostgreSQL, as cached ``text()`` clauses."""

    pg = True

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self._conn = conn

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        return [tuple(r) for r in self._conn.execute(_text(sql), dict(params or {}))]

    def run(self, sql: str, params: Params | None = None) -> int:
        return int(self._conn.execute(_text(sql), dict(params or {})).rowcount)

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._conn.execute(_text(sql), [dict(r) for r in rows])
