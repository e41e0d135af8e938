"""``Lease``: which of several gateway workers runs a singleton task (the vault indexer).

The lock lives where the ledger does, so every worker that shares the ledger sees it:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection the leader
  keeps open; checked before every pass, and dropped with the connection when the leader
  dies, whichever host it ran on.
- SQLite: an exclusive ``flock`` on a file next to the database (the database is on this
  host, so are its workers). Not SQLite's own write lock: a pass writes the ledger through
  other connections, and holding the write lock for the pass would block every writer.

Followers call ``hold`` again now and then, so one takes over when the leader stops.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from apicredits.db.engine import Database

log = logging.getLogger(__name__)


class Lease(Protocol):
    async def hold(self) -> bool:
        """True if this worker leads now (taking the lease if it is free)."""

    async def release(self) -> None: ...


def lease_for(db: Database, name: str) -> Lease:
    """The lease ``name`` on ``db``'s host."""
    if db.is_postgres:
        return PostgresLease(db, name)
    path = db.sqlite_path
    if path is None or path == ":memory:" or path.startswith("file:"):
        return SoleLease()  # a private database: this process is the only worker
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return FileLease(Path(f"{path}.{safe}.lock"))


class SoleLease:
    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        pass


class FileLease:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one worker per database there
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class PostgresLease:
    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        digest = hashlib.sha256(f"apicredits:{name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)  # advisory keys are bigint
        self._conn: AsyncConnection | None = None

    async def hold(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("lost the connection that held lease %d; re-electing", self.key)
                await self.release()
        conn = await self.db.session_connection()
        try:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:
            await conn.invalidate()  # never pool a session that may still hold the lock
        await conn.close()
