"""One way to run a unit of database work on either engine.

Store code is written once, as plain synchronous SQLAlchemy Core over a ``Connection``;
``Database.write``/``read`` run it in one transaction. On SQLite it runs in a worker
thread with the stdlib driver (one thread hop per transaction, not per statement) and
writes take ``BEGIN IMMEDIATE``; on PostgreSQL it runs on asyncpg through SQLAlchemy's
greenlet bridge (``run_sync``), and stores lock rows with ``SELECT ... FOR UPDATE``. The
ledger's hot writes (``write_sql``) skip SQLAlchemy: on SQLite they run on the stdlib
driver's own connections, on PostgreSQL on asyncpg (``db.pg_writes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Pool, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from apicredits.db.outages import domain_errors, raise_domain_error
from apicredits.db.pg_writes import HotWriter
from apicredits.db.sql import Sql, SqliteSql
from apicredits.errors import InvalidInput

T = TypeVar("T")


class WriteBusy(Exception):
    """A write cannot start on the calling thread this instant (``Database.write_now``)."""


log = logging.getLogger("apicredits.db")


def normalise_url(url: str) -> str:
    """Map the URLs users write onto the drivers we ship (stdlib sqlite3, asyncpg)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(f"not a database URL: {url!r}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        if driver not in ("asyncpg", "psycopg2", "psycopg", ""):
            raise InvalidInput(f"unsupported PostgreSQL driver in {url!r}; use postgresql+asyncpg")
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise InvalidInput(f"unsupported database {backend!r}: use SQLite or PostgreSQL")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._checkpointer: Checkpointer | None = None  # SQLite files only
        if self.dialect == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._sync = _sqlite_engine(self.url, pool_size)
            self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="apicredits-db")
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="apicredits-db-writer")
            self._writer_raw: _Connection | None = None  # used by the writer thread only
            self._inline_raw: _Connection | None = None  # used on the loop's thread only
            self._sqlite_path = database or ":memory:"
            self._checkpointer = (
                Checkpointer(self._sqlite_path) if database and database != ":memory:" else None
            )
        else:
            self._async = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                # A generic plan cached while a table was tiny (a seq scan) would stick
                # after it grew; our statements are cheap to plan, so always plan afresh.
                connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
            )
            _ping_when_idle(self._async.sync_engine.pool, PING_AFTER_IDLE_SECONDS)
            self._facts: dict[str, Any] = {}  # see ``Sql.facts``
            self._hot_writer = HotWriter(self._async, self._facts, PING_AFTER_IDLE_SECONDS)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def sqlite_path(self) -> str | None:
        """SQLite: the database file (``:memory:`` for none); None on PostgreSQL."""
        return self._sqlite_path if self._sync is not None else None

    async def session_connection(self) -> AsyncConnection:
        """PostgreSQL: a pooled connection in autocommit mode, for session state such as
        advisory locks; close it to give it back."""
        if self._async is None:
            raise RuntimeError("session connections exist on PostgreSQL only")
        conn = await self._async.connect()
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one read-write transaction (committed if it returns).

        Like every method here, raises ``DatabaseUnavailable`` when the database cannot be
        used now, and ``InvalidInput`` for text it cannot store (see ``db.outages``)."""
        return await self._run(work, immediate=True)

    async def write_sql(self, work: Callable[[Sql], T]) -> T:
        """Like ``write``, for hand-written SQL on the hot path. On SQLite it runs on one
        writer thread with its own driver connection (writers serialise on SQLite anyway),
        skipping the pool and SQLAlchemy's transaction machinery."""
        try:
            if self._async is not None:
                return await self._hot_writer.write(work)
            try:  # a file database: try it right here first
                return self._write_inline(work)
            except WriteBusy:
                pass  # another connection writes: wait for the lock on the writer thread
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer, self._write_raw, work)
        except Exception as exc:
            raise_domain_error(exc)
            raise

    def write_now(self, work: Callable[[Sql], T]) -> T:
        """Like ``write_sql``, but on the calling thread at once, never waiting: only SQLite
        can, when its write lock is free this instant; otherwise (PostgreSQL, or another
        connection writing) it raises ``WriteBusy``, having done nothing."""
        try:
            return self._write_inline(work)
        except Exception as exc:
            raise_domain_error(exc)
            raise

    def _write_inline(self, work: Callable[[Sql], T]) -> T:
        """One short write transaction on the event loop's thread, if the write lock is free
        this instant (``busy_timeout=0``): a hot-path transaction takes ~0.1 ms, a hop to the
        writer thread and back ~0.2 ms more (measured), and the loop never waits for a lock."""
        if self._checkpointer is None:  # PostgreSQL (or no file)
            raise WriteBusy
        raw = self._inline_raw
        if raw is None:
            raw = self._inline_raw = _connect_sqlite(self._sqlite_path)
            raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise WriteBusy from exc
            raise
        return _finish(raw, work)

    def _write_raw(self, work: Callable[[Sql], T]) -> T:
        raw = self._writer_raw
        if raw is None:
            raw = self._writer_raw = _connect_sqlite(self._sqlite_path)
        raw.execute("BEGIN IMMEDIATE")
        return _finish(raw, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run(work, immediate=False)

    async def _run(self, work: Callable[[Connection], T], *, immediate: bool) -> T:
        with domain_errors():
            if self._async is not None:
                async with self._async.begin() as conn:
                    return await conn.run_sync(work)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.run_blocking, work, immediate)

    def run_blocking(self, work: Callable[[Connection], T], immediate: bool = True) -> T:
        """SQLite only: run ``work`` in a transaction on the calling thread."""
        assert self._sync is not None
        with self._sqlite_tx(immediate) as conn:  # its caller, ``_run``, tells outages
            return work(conn)

    @contextlib.contextmanager
    def _sqlite_tx(self, immediate: bool) -> Iterator[Connection]:
        assert self._sync is not None
        with self._sync.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE" if immediate else "DEFERRED")
            with conn.begin():
                yield conn

    async def aclose(self) -> None:
        if self._async is not None:
            await self._hot_writer.close()
            await self._async.dispose()
        if self._sync is not None:
            self._sync.dispose()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._writer.submit(self._close_writer).result()
            self._close_inline()
            self._writer.shutdown(wait=True)
            if self._checkpointer is not None:
                self._checkpointer.stop()

    def _close_inline(self) -> None:
        if self._inline_raw is not None:
            self._inline_raw.close()
            self._inline_raw = None

    def _close_writer(self) -> None:
        if self._writer_raw is not None:
            self._writer_raw.close()
            self._writer_raw = None


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable at every checkpoint; WAL survives a process crash
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=60000",
    # Checkpoints (the fsyncs) run on a background thread (``Checkpointer``), not inside
    # whichever commit crosses the threshold: that commit used to stall every request
    # queued behind it (measured: +30% gateway req/s without the stalls).
    "PRAGMA wal_autocheckpoint=0",
    "PRAGMA journal_size_limit=67108864",  # a WAL file that restarts is cut back to 64 MiB
)


class Checkpointer:
    """Moves the WAL into the database file every ``interval`` seconds on its own thread and
    connection. PASSIVE checkpoints never block readers or writers, but under steady writes
    they never let the WAL restart from its beginning either; so once it holds more than
    ``restart_frames``, a RESTART checkpoint holds writers back for the moment it takes to
    copy the last second's frames (hot-path writes meanwhile wait on the writer thread, not
    on the event loop), and the next write starts the WAL over."""

    def __init__(self, path: str, interval: float = 1.0, restart_frames: int = 4096) -> None:
        self._path = path
        self._interval = interval
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="apicredits-db-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self._interval):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._path, isolation_level=None, timeout=60)
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > self._restart_frames:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)")
                except sqlite3.Error:
                    log.warning("SQLite checkpoint failed; will retry", exc_info=True)
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(pool: Pool, idle_seconds: float) -> None:
    """Check a pooled PostgreSQL connection before use only if it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` checks every checkout, which on asyncpg costs three round
    trips (BEGIN, a ping, ROLLBACK): more than the ledger's own statements per transaction.
    A connection in steady use has just proved itself; one that idled may have been cut
    (a server restart, a proxy's idle timeout), and a failed check replaces it unseen."""

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dbapi_conn.ping()
        except Exception:
            # the pool drops this connection and checks out a fresh one
            raise DisconnectionError("a pooled connection failed its check") from None


class _Connection(sqlite3.Connection):
    """A hot-path write connection with a cache of its own (``Sql.cache``): what its
    transactions last read and wrote, dropped whenever that may be stale — another
    connection committed (SQLite's ``data_version`` moved; it never moves for a connection's
    own commits) or one of its own transactions failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache: dict[str, Any] = {}
        self.data_version: int | None = None


def _finish(raw: _Connection, work: Callable[[Sql], T]) -> T:
    """Run ``work`` in the transaction just begun on ``raw``: commit, or roll back and raise."""
    (version,) = raw.execute("PRAGMA data_version").fetchone()
    if version != raw.data_version:
        raw.cache.clear()
        raw.data_version = version
    try:
        result = work(SqliteSql(raw, cache=raw.cache))
        raw.execute("COMMIT")
    except BaseException:
        raw.cache.clear()
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return result


def _connect_sqlite(path: str) -> _Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=60, factory=_Connection
    )
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    return conn


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False, "timeout": 60},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so that "begin" below is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
