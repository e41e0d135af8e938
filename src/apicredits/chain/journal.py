"""The embedded chain's durable journal: blocks, their transactions and their logs.

A SQLite file (WAL, ``synchronous=FULL``: every block is fsync'd when its transaction
commits) holds everything needed to rebuild the EVM state by replaying the transactions in
order on the same genesis, plus the logs so ``logs()`` needs no replay. Rows are only
appended, except that ``truncate`` drops blocks above a snapshot (``revert``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    block_number INTEGER NOT NULL, tx_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    kind TEXT NOT NULL, sender TEXT NOT NULL, to_address TEXT, data BLOB NOT NULL,
    value INTEGER NOT NULL, gas_used INTEGER NOT NULL, contract_address TEXT,
    PRIMARY KEY (block_number, tx_index));
CREATE TABLE IF NOT EXISTS logs (
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    address TEXT NOT NULL, topic0 BLOB, topics BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (block_number, log_index));
CREATE INDEX IF NOT EXISTS ix_logs_address ON logs (address, topic0, block_number);
"""


@dataclass(frozen=True, slots=True)
class JournalTx:
    tx_hash: str
    kind: str  # "deploy" | "call"
    sender: str
    to_address: str | None
    data: bytes
    value: int
    gas_used: int
    contract_address: str | None


@dataclass(frozen=True, slots=True)
class JournalLog:
    log_index: int
    tx_hash: str
    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class JournalBlock:
    number: int
    hash: str
    timestamp: int
    txs: tuple[JournalTx, ...] = ()
    logs: tuple[JournalLog, ...] = ()


class Journal:
    def __init__(self, path: Path | None) -> None:
        """``path=None`` keeps the journal in memory (a chain that dies with the process)."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        target = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction, taken before reading the head so that two processes
        sharing a journal append blocks one after the other."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def head(self) -> int:
        row = self._db.execute("SELECT max(number) FROM blocks").fetchone()
        return -1 if row[0] is None else int(row[0])

    def block(self, number: int) -> tuple[str, int] | None:
        row = self._db.execute(
            "SELECT hash, timestamp FROM blocks WHERE number = ?", (number,)
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def append(self, block: JournalBlock) -> None:
        db = self._db
        db.execute(
            "INSERT INTO blocks VALUES (?, ?, ?)", (block.number, block.hash, block.timestamp)
        )
        db.executemany(
            "INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(block.number, i, t.tx_hash, t.kind, t.sender, t.to_address, t.data, t.value,
              t.gas_used, t.contract_address) for i, t in enumerate(block.txs)],
        )  # fmt: skip
        db.executemany(
            "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(block.number, g.log_index, g.tx_hash, g.address, g.topics[0] if g.topics else None,
              b"".join(g.topics), g.data) for g in block.logs],
        )  # fmt: skip

    def blocks(self, after: int) -> Iterator[JournalBlock]:
        """Blocks above ``after`` with their transactions (logs left out: replay makes them)."""
        rows = self._db.execute(
            "SELECT number, hash, timestamp FROM blocks WHERE number > ? ORDER BY number",
            (after,),
        ).fetchall()
        for number, hash_, timestamp in rows:
            txs = self._db.execute(
                "SELECT tx_hash, kind, sender, to_address, data, value, gas_used, "
                "contract_address FROM txs WHERE block_number = ? ORDER BY tx_index",
                (number,),
            ).fetchall()
            yield JournalBlock(number, hash_, timestamp, tuple(JournalTx(*t) for t in txs))

    def logs(
        self,
        address: str,
        topics: Sequence[bytes],
        from_block: int,
        to_block: int,
        indexed: Sequence[Sequence[bytes] | None] = (),
    ) -> list[tuple[int, str, int, str, str, bytes, bytes]]:
        """Rows of the logs of ``address`` with topic 0 in ``topics`` and topic ``i + 1`` in
        ``indexed[i]`` (None: any), in block order."""
        where = [f"l.topic0 IN ({','.join('?' * len(topics))})"]
        params: list[object] = [*topics]
        for position, values in enumerate(indexed, start=1):
            if values is not None:  # topic n is bytes 32n+1..32n+32 of the topics blob
                where.append(f"substr(l.topics, {32 * position + 1}, 32) IN "
                             f"({','.join('?' * len(values))})")  # fmt: skip
                params += values
        # only "?" placeholders and integer offsets are formatted into the statement
        sql = (
            "SELECT l.block_number, b.hash, l.log_index, l.tx_hash, l.address, l.topics, l.data "  # noqa: S608
            "FROM logs l JOIN blocks b ON b.number = l.block_number "
            f"WHERE l.address = ? AND {' AND '.join(where)} "
            "AND l.block_number BETWEEN ? AND ? ORDER BY l.block_number, l.log_index"
        )
        return self._db.execute(sql, (address, *params, from_block, to_block)).fetchall()

    def truncate(self, above: int) -> None:
        """Drop every block above ``above`` (a revert to a snapshot)."""
        for table, column in (("logs", "block_number"), ("txs", "block_number")):
            self._db.execute(f"DELETE FROM {table} WHERE {column} > ?", (above,))  # noqa: S608
        self._db.execute("DELETE FROM blocks WHERE number > ?", (above,))
