"""Signed usage events in the database (``usage_events``), and the epochs they are sealed in.

A row holds the event's canonical JSON document (``SignedUsageEvent.to_document()``), its
EIP-712 digest and who signed it. The producer inserts one gateway-signed row per usage
record; a provider's own signed event replaces it while ``epoch`` is still NULL; the
aggregator (``apicredits settle``) sets ``epoch`` and ``leaf_index`` when it seals it
(``epoch = 0``: validation refused it, it never settles).

``EpochTrees`` rebuilds a sealed epoch's two Merkle trees from the rows (events ordered by
leaf index, lines by line index) and keeps the last few in memory: a sealed epoch never
changes.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select, update

from apicredits.db.engine import Database
from apicredits.db.schema import epoch_lines, epochs, usage_events
from apicredits.metering.events import SignedUsageEvent
from apicredits.oracle.merkle import MerkleTree
from apicredits.oracle.messages import SETTLEMENT_LINE_TYPES, USAGE_EVENT_LEAF_TYPES

__all__ = [
    "REJECTED_EPOCH",
    "EpochTrees",
    "SealedTrees",
    "StoredEvent",
    "UsageEventStore",
    "canonical_document",
    "hex32",
    "line_values",
]

REJECTED_EPOCH = 0  # the aggregator's epoch number for events validation refused


def canonical_document(signed: SignedUsageEvent) -> str:
    """The stored form: sorted keys, no spaces (the same event always gives the same text)."""
    return json.dumps(signed.to_document(), sort_keys=True, separators=(",", ":"))


def hex32(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event_id: str
    request_id: str | None
    tenant_id: str
    provider: str
    digest: str
    document: str
    signer: str
    meter: str  # provider | gateway
    cost_micro: int
    epoch: int | None
    leaf_index: int | None
    created_at_us: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> StoredEvent:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__slots__})

    def signed(self) -> SignedUsageEvent:
        return SignedUsageEvent.from_document(json.loads(self.document))

    @property
    def sealed(self) -> bool:
        return self.epoch is not None


class UsageEventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, event_id: str) -> StoredEvent | None:
        stmt = select(usage_events).where(usage_events.c.event_id == event_id.lower())
        row = await self.db.read(lambda c: c.execute(stmt).first())
        return None if row is None else StoredEvent.from_row(row)

    async def replace_gateway_event(
        self, event_id: str, signed: SignedUsageEvent, digest: bytes, signer: str
    ) -> bool:
        """Put a provider-signed event in place of the gateway's, unless it was sealed or
        replaced meanwhile (then False). The row keeps its ``seq``: its place in line."""
        stmt = (
            update(usage_events)
            .where(
                usage_events.c.event_id == event_id,
                usage_events.c.epoch.is_(None),
                usage_events.c.meter == "gateway",
            )
            .values(
                digest=hex32(digest),
                document=canonical_document(signed),
                signer=signer,
                meter="provider",
                cost_micro=signed.event.cost_micro,
            )
        )
        count = await self.db.write(lambda c: c.execute(stmt).rowcount)
        return bool(count)

    async def epoch(self, epoch: int) -> dict[str, Any] | None:
        stmt = select(epochs).where(epochs.c.epoch == epoch)
        row = await self.db.read(lambda c: c.execute(stmt).first())
        return None if row is None else dict(row._mapping)

    async def lines(self, epoch: int) -> list[dict[str, Any]]:
        return await self.db.read(lambda c: _lines(c, epoch))

    async def epoch_digests(self, epoch: int) -> list[bytes]:
        """The digests of an epoch's events, in leaf order."""

        def read(conn: Connection) -> list[bytes]:
            stmt = (
                select(usage_events.c.digest)
                .where(usage_events.c.epoch == epoch)
                .order_by(usage_events.c.leaf_index, usage_events.c.seq)
            )
            return [bytes.fromhex(d[2:]) for d in conn.execute(stmt).scalars()]

        return await self.db.read(read)


def _lines(conn: Connection, epoch: int) -> list[dict[str, Any]]:
    stmt = select(epoch_lines).where(epoch_lines.c.epoch == epoch)
    return [dict(r._mapping) for r in conn.execute(stmt.order_by(epoch_lines.c.line_index))]


def line_values(line: dict[str, Any]) -> tuple[int, str, bytes, int, int]:
    """A settlement line row's leaf values, in ``SETTLEMENT_LINE_TYPES`` order."""
    return (
        int(line["epoch"]),
        line["tenant_address"],
        bytes.fromhex(line["provider_id"][2:]),
        int(line["amount_micro"]),
        int(line["fee_micro"]),
    )


@dataclass(frozen=True)
class SealedTrees:
    events: MerkleTree | None  # None: the epoch has no events (cannot be: kept for safety)
    lines: MerkleTree | None  # None: no settlement line


class EpochTrees:
    """The events and lines trees of sealed epochs, rebuilt from the database and cached."""

    def __init__(self, store: UsageEventStore, *, capacity: int = 8) -> None:
        self.store = store
        self.capacity = capacity
        self._cache: OrderedDict[int, SealedTrees] = OrderedDict()
        self._lock = asyncio.Lock()

    async def get(self, epoch: int) -> SealedTrees:
        async with self._lock:
            cached = self._cache.get(epoch)
            if cached is not None:
                self._cache.move_to_end(epoch)
                return cached
            digests = await self.store.epoch_digests(epoch)
            lines = await self.store.lines(epoch)
            trees = await asyncio.to_thread(_build, digests, lines)
            self._cache[epoch] = trees
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
            return trees


def _build(digests: list[bytes], lines: list[dict[str, Any]]) -> SealedTrees:
    events = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, [(d,) for d in digests]) if digests else None
    settlement = (
        MerkleTree.build(SETTLEMENT_LINE_TYPES, [line_values(x) for x in lines]) if lines else None
    )
    return SealedTrees(events, settlement)
