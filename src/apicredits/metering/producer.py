"""The usage-event producer: every usage record becomes a usage event signed by the gateway's
metering key, in a background task (the request path never signs).

- The metering key is a secp256k1 key, generated once into ``<data dir>/metering-key``
  (0x-hex, mode 0600) unless ``APICREDITS_METERING_KEY_FILE`` names one; its address is
  public (``GET /v1/usage/signers``) so that oracles and verifiers can trust it as the
  gateway meter.
- An event says: ``event_id = keccak256(request id)``, ``job_id = keccak256(job id, or the
  call's own lock id)``, ``tenant`` = the tenant's first linked wallet (the zero address when
  it has none: such events are signed and sealed but make no settlement line),
  ``provider_id = keccak256(provider name)``, the model, the units as recorded, the tariff
  version, ``cost_micro`` = what the ledger charged, ``timestamp`` = the call's start (unix
  seconds), the record's request hash, ``sequence`` = the record's seq, ``meter = gateway``.
- Records that cost nothing are signed too: they prove a call happened and was not charged.
- Restart-safe and shared by workers: a durable cursor (``metering_cursors``) says how far
  records were read; every pass also looks ``LOOKBACK`` seqs behind it (on PostgreSQL a
  record can commit after one with a higher seq), and an event id already present is never
  inserted again (``usage_events.event_id`` is unique).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError

from apicredits.db.engine import Database
from apicredits.db.schema import metering_cursors, tenant_wallets, usage_events, usage_records
from apicredits.errors import InvalidInput
from apicredits.metering.events import Meter, UsageDomain, UsageEvent, UsageSigner, UsageUnit
from apicredits.metering.store import canonical_document, hex32
from apicredits.oracle.messages import event_id, job_id, provider_id
from apicredits.secret_files import write_secret

__all__ = [
    "CURSOR",
    "LOOKBACK",
    "ZERO_ADDRESS",
    "EventProducer",
    "MeteringKey",
    "event_from_record",
    "load_or_create_metering_key",
    "wallet_addresses",
]

log = logging.getLogger("apicredits.metering")

CURSOR = "usage_events"
LOOKBACK = 256
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class MeteringKey:
    private_key: bytes
    address: str  # checksummed

    @classmethod
    def from_hex(cls, text: str) -> MeteringKey:
        try:
            key = bytes.fromhex(text.strip().removeprefix("0x"))
            address = Account.from_key(key).address
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"the metering key is not a secp256k1 key: {exc}") from None
        return cls(key, str(address))

    def __repr__(self) -> str:  # never print the secret
        return f"MeteringKey(address={self.address!r})"


def load_or_create_metering_key(path: Path) -> MeteringKey:
    """The key at ``path`` (0x-hex), created once (mode 0600) if missing; of processes racing
    to create it, all end up with the first one written."""
    path = Path(path)
    if path.exists():
        return MeteringKey.from_hex(path.read_text())
    text = "0x" + secrets.token_bytes(32).hex()
    if not write_secret(path, (text + "\n").encode(), replace=False):
        return MeteringKey.from_hex(path.read_text())  # another process made it first
    return MeteringKey.from_hex(text)


def event_from_record(record: Row[Any], tenant_address: str) -> UsageEvent:
    """The gateway's usage event for one ``usage_records`` row."""
    units = json.loads(record.units)
    return UsageEvent(
        event_id=event_id(record.id),
        job_id=job_id(record.job_id or record.lock_id),
        tenant=tenant_address,
        provider_id=provider_id(record.provider),
        model=record.model,
        units=tuple(UsageUnit(kind, int(count)) for kind, count in sorted(units.items())),
        tariff_version=int(record.tariff_version),
        cost_micro=int(record.cost_micro),
        timestamp=int(record.started_at_us) // 1_000_000,
        request_hash=bytes.fromhex(record.request_hash),
        sequence=int(record.seq),
        meter=Meter.GATEWAY,
    )


def wallet_addresses(conn: Connection, tenant_ids: Iterable[str]) -> dict[str, str]:
    """Each tenant's first linked wallet (by link time, then address)."""
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return {}
    stmt = (
        select(tenant_wallets.c.tenant_id, tenant_wallets.c.address)
        .where(tenant_wallets.c.tenant_id.in_(wanted))
        .order_by(tenant_wallets.c.created_at_us.desc(), tenant_wallets.c.address.desc())
    )
    return {row.tenant_id: row.address for row in conn.execute(stmt)}  # the first one wins


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class _Pending:
    cursor: int
    high: int  # the highest record seq read
    records: list[Row[Any]]
    wallets: dict[str, str]


class EventProducer:
    """Turns new usage records into signed usage events; ``step`` does one batch."""

    def __init__(
        self,
        db: Database,
        key: MeteringKey,
        domain: UsageDomain,
        *,
        batch: int = 500,
        clock: Callable[[], int] = _now_us,
    ) -> None:
        self.db = db
        self.key = key
        self.domain = domain
        self.batch = batch
        self.clock = clock
        self._lock = asyncio.Lock()  # one pass at a time in this process
        self._signer = UsageSigner(key.private_key)

    async def step(self) -> int:
        """Sign and store the events of up to ``batch`` new records; returns how many were
        stored (0: nothing to do)."""
        async with self._lock:
            pending = await self.db.read(self._pending)
            while not pending.records:  # skip over records already signed (a lost cursor)
                if pending.high <= pending.cursor:
                    return 0
                await self.db.write(partial(_advance, seq=pending.high, now_us=self.clock()))
                pending = await self.db.read(self._pending)
            rows = await asyncio.to_thread(self._sign, pending)
            try:
                return await self.db.write(lambda c: self._store(c, rows, pending.high))
            except IntegrityError:  # another worker stored some of them first: next pass
                log.debug("usage events were produced concurrently; retrying")
                return 0

    async def run(self, interval: float) -> None:
        while True:
            try:
                while await self.step() > 0:
                    pass
            except Exception:
                log.exception("usage-event producer pass failed; will retry")
            await asyncio.sleep(interval)

    def _pending(self, conn: Connection) -> _Pending:
        cursor = conn.execute(
            select(metering_cursors.c.seq).where(metering_cursors.c.name == CURSOR)
        ).scalar()
        cursor = int(cursor or 0)
        records = conn.execute(
            select(usage_records)
            .where(usage_records.c.seq > max(0, cursor - LOOKBACK))
            .order_by(usage_records.c.seq)
            .limit(self.batch + LOOKBACK)
        ).all()
        if not records:
            return _Pending(cursor, cursor, [], {})
        high = max(cursor, int(records[-1].seq))
        ids = {hex32(event_id(r.id)): r for r in records}
        existing = set(
            conn.execute(
                select(usage_events.c.event_id).where(usage_events.c.event_id.in_(list(ids)))
            ).scalars()
        )
        todo = [r for e, r in ids.items() if e not in existing][: self.batch]
        if todo and len(todo) == self.batch:
            high = min(high, int(todo[-1].seq))  # the rest next pass
        wallets = wallet_addresses(conn, (r.tenant_id for r in todo))
        return _Pending(cursor, high, todo, wallets)

    def _sign(self, pending: _Pending) -> list[dict[str, Any]]:
        now = self.clock()
        rows = []
        for record in pending.records:
            event = event_from_record(record, pending.wallets.get(record.tenant_id, ZERO_ADDRESS))
            signed = self._signer.sign(event, self.domain)
            rows.append(
                {
                    "event_id": hex32(event.event_id),
                    "request_id": record.id,
                    "tenant_id": record.tenant_id,
                    "provider": record.provider,
                    "digest": hex32(event.digest(self.domain)),
                    "document": canonical_document(signed),
                    "signer": self.key.address,
                    "meter": "gateway",
                    "cost_micro": event.cost_micro,
                    "created_at_us": now,
                }
            )
        return rows

    def _store(self, conn: Connection, rows: Sequence[dict[str, Any]], high: int) -> int:
        ids = [r["event_id"] for r in rows]
        present = set(
            conn.execute(
                select(usage_events.c.event_id).where(usage_events.c.event_id.in_(ids))
            ).scalars()
        )
        fresh = [r for r in rows if r["event_id"] not in present]
        if fresh:
            conn.execute(usage_events.insert(), fresh)
        _advance(conn, high, self.clock())
        return len(fresh)


def _advance(conn: Connection, seq: int, now_us: int) -> None:
    """Move the cursor forward to ``seq`` (never back)."""
    current = conn.execute(
        select(metering_cursors.c.seq).where(metering_cursors.c.name == CURSOR)
    ).scalar()
    if current is None:
        conn.execute(
            metering_cursors.insert(), {"name": CURSOR, "seq": seq, "updated_at_us": now_us}
        )
    elif seq > current:
        conn.execute(
            metering_cursors.update()
            .where(metering_cursors.c.name == CURSOR)
            .values(seq=seq, updated_at_us=now_us)
        )
