"""PostgreSQL: the ledger's hot writes (``Database.write_sql``), asyncpg driven directly.

Each unit of work runs in one transaction on one connection that the writer keeps checked
out of SQLAlchemy's pool, its statements sent to asyncpg from a greenlet (``db.greenlets``,
``db.sql``). Measured per transaction on this kind of machine: SQLAlchemy's execution
layer cost more CPU per statement than asyncpg's own work, and a pool checkout and return
~75 µs, as much as a statement. The ledger's batcher writes one batch at a time, so one
connection serves it; a lock keeps any other caller's unit of work from interleaving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from apicredits.db.greenlets import run_sync
from apicredits.db.sql import PgSql, Sql

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


class HotWriter:
    def __init__(self, engine: AsyncEngine, facts: dict[str, Any], check_after_idle: float):
        self._engine = engine
        self._facts = facts
        self._check_after_idle = check_after_idle
        self._lock = asyncio.Lock()
        self._held: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._pooled: Any = None  # SQLAlchemy's pooled connection around ``_driver``
        self._last_used = 0.0

    async def write(self, work: Callable[[Sql], T]) -> T:
        """``work`` in one transaction; its errors as SQLAlchemy raises them (what the
        batcher and ``db.outages`` know)."""
        import asyncpg  # loaded by then (the engine's driver); SQLite users never need it

        async with self._lock:
            driver = await self._connection()
            try:
                return await _in_transaction(driver, work, PgSql(driver, facts=self._facts))
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if driver.is_closed():
                    await self._drop(exc)  # the next unit of work gets a new connection
                if isinstance(exc, asyncpg.InterfaceError):
                    raise InterfaceError(None, None, exc) from exc
                raise  # a broken constraint arrives as SQLAlchemy's already (``db.sql``)
            finally:
                self._last_used = time.monotonic()

    async def _connection(self) -> asyncpg.Connection:
        """The held connection, replaced unseen when dead: closed by the server (a restart,
        an idle timeout), or failing the check made after it sat idle (as the pool checks
        its own)."""
        driver = self._driver
        if driver is not None and driver.is_closed():
            await self._drop(None)
        elif driver is not None and time.monotonic() - self._last_used > self._check_after_idle:
            try:
                await driver.fetchval("SELECT 1")
            except Exception as exc:
                await self._drop(exc)
        if self._driver is None:
            self._held = await self._engine.connect()
            self._pooled = await self._held.get_raw_connection()
            self._driver = self._pooled.driver_connection
        return self._driver

    async def _drop(self, exc: BaseException | None) -> None:
        self._pooled.invalidate(exc)
        held, self._held, self._driver, self._pooled = self._held, None, None, None
        if held is not None:
            await held.close()

    async def close(self) -> None:
        async with self._lock:
            if self._held is not None:
                await self._held.close()
            self._held = self._driver = self._pooled = None


async def _in_transaction(driver: asyncpg.Connection, work: Callable[[Sql], T], sql: Sql) -> T:
    """``work`` in a transaction on ``driver``. Unlike asyncpg's ``async with transaction()``,
    a connection that died mid-way raises what killed it, not the failed ROLLBACK's error."""
    transaction = driver.transaction()
    await transaction.start()
    try:
        result = await run_sync(work, sql)
    except BaseException:
        if not driver.is_closed():
            await transaction.rollback()
        raise
    await transaction.commit()
    return result
