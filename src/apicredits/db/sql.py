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
    def __init__(
        self,
        conn: Connection | None,
        *,
        raw: sqlite3.Connection | None = None,
        pg: asyncpg.Connection | None = None,
        cache: dict[str, Any] | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        """Over a SQLAlchemy connection, or directly over a driver connection: ``raw`` on
        SQLite, ``pg`` on PostgreSQL (then only from code that ``run_sync`` runs).

        ``cache``: state private to the driver connection that the engine keeps only while
        it is current (see ``apicredits.db.engine``); None where there is no such promise.
        ``facts``: one database's rows that never change once written, kept for the
        process's lifetime; None where there is none."""
        self._raw: sqlite3.Connection | None = raw
        self._pg = pg
        self.cache = cache
        self.facts = facts
        self.pg = pg is not None
        if conn is not None:
            self.conn = conn
            self.pg = conn.dialect.name == "postgresql"
            self._raw = None if self.pg else conn.connection.driver_connection
        assert self.pg or self._raw is not None

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        if self._raw is not None:
            rows: list[Sequence[Any]] = self._raw.execute(sql, params or {}).fetchall()
            return rows
        if self._pg is not None:
            statement, names = _numbered(sql)
            found: list[Sequence[Any]] = _pg(self._pg.fetch(statement, *_args(names, params)))
            return found
        return [tuple(r) for r in self.conn.execute(_text(sql), dict(params or {}))]

    def run(self, sql: str, params: Params | None = None) -> int:
        """Execute one statement; returns the rows it changed."""
        if self._raw is not None:
            return int(self._raw.execute(sql, params or {}).rowcount)
        if self._pg is not None:
            statement, names = _numbered(sql)
            status = _pg(self._pg.execute(statement, *_args(names, params)))
            count = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1"; "CREATE TABLE"
            return int(count) if count.isdigit() else 0
        return int(self.conn.execute(_text(sql), dict(params or {})).rowcount)

    def insert_rowid(self, sql: str, values: Sequence[Any]) -> int:
        """SQLite only: run one INSERT, its parameters bound by position (``?``); returns the
        rowid SQLite gave the new row."""
        assert self._raw is not None
        rowid = self._raw.execute(sql, values).lastrowid
        assert rowid is not None
        return rowid

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        if self._raw is not None:
            self._raw.executemany(sql, rows)
        elif self._pg is not None:
            statement, names = _numbered(sql)
            _pg(self._pg.executemany(statement, [_args(names, r) for r in rows]))
        else:
            self.conn.execute(_text(sql), [dict(r) for r in rows])

    def rows(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """SQLite only: ``sql`` once per row, its parameters bound by position (``?``)."""
        assert self._raw is not None
        if rows:
            self._raw.executemany(sql, rows)

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
