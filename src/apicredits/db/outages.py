"""A database that cannot be used now, or text it cannot store, told apart from a
statement that is wrong.

``domain_errors`` turns the first into ``DatabaseUnavailable`` (503, retry) at the
``Database`` boundary, so that every caller handles an outage as the domain error it is
(the edge that answers it logs the driver's words, ``DatabaseUnavailable.cause``); the
second into ``InvalidInput`` (400: PostgreSQL stores no NUL character in text, SQLSTATE
``22021``, wherever it came from: a name, a memo, an id in a path); and leaves the third
(a bug) as it was. An outage is: no connection (refused, dropped, timed out, the pool
exhausted), PostgreSQL's connection, resource, operator and system error classes
(SQLSTATE ``08``, ``53``, ``57P``, ``58``) or a database that does not exist
(``3D000``), and SQLite failing to open, read or grow its file or waiting out its lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa

from apicredits.errors import ApicreditsError, DatabaseUnavailable, InvalidInput

_SQLSTATES = ("08", "53", "57P", "58", "3D000")
_UNSTORABLE = ("22021", "22P05")  # character not in repertoire (a NUL), untranslatable
_SQLITE = (
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
    "database is locked",
)


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa.InterfaceError):
            return True
        return exc.orig is not None and is_outage(exc.orig)
    if isinstance(exc, sa.TimeoutError | sa.DisconnectionError | OSError):
        return True  # the pool gave no connection; the network or the file system failed
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).lower().startswith(_SQLITE)
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_SQLSTATES)


def is_unstorable(exc: BaseException) -> bool:
    """Text the database refused to store (PostgreSQL: a NUL character)."""
    if isinstance(exc, sa.DBAPIError):
        return exc.orig is not None and is_unstorable(exc.orig)
    return getattr(exc, "sqlstate", None) in _UNSTORABLE


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise_domain_error(exc)
        raise


def raise_domain_error(exc: Exception) -> None:
    """``DatabaseUnavailable`` if ``exc`` is an outage, ``InvalidInput`` if it refused text;
    nothing otherwise (the caller then re-raises ``exc``). For the hot path, in a plain
    ``except``: ``domain_errors`` costs a generator on every call, a ``try`` nothing until
    it catches."""
    if isinstance(exc, ApicreditsError):
        return
    if is_outage(exc):
        raise DatabaseUnavailable(
            "the database is unavailable right now; retry shortly", cause=driver_message(exc)
        ) from exc
    if is_unstorable(exc):
        raise InvalidInput(f"the database refuses this text: {driver_message(exc)}") from exc


def driver_message(exc: BaseException) -> str:
    """The first line of what the driver said (SQLAlchemy wraps it as ``orig``)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
