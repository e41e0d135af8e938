"""The usage-event producer: one gateway-signed event per usage record, restart-safe."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select
from usage_support import DOMAIN, GATEWAY_KEY, WALLET, add_records, add_tenant, record

from apicredits.db import Database
from apicredits.db.schema import metering_cursors, usage_events
from apicredits.metering.events import Meter, SignedUsageEvent, recover_signer
from apicredits.metering.producer import (
    LOOKBACK,
    ZERO_ADDRESS,
    EventProducer,
    load_or_create_metering_key,
)
from apicredits.metering.store import UsageEventStore, hex32
from apicredits.oracle.messages import event_id, job_id, provider_id
from apicredits.tariffs import Unit

pytestmark = pytest.mark.anyio


def producer(db: Database, batch: int = 500) -> EventProducer:
    return EventProducer(db, GATEWAY_KEY, DOMAIN, batch=batch)


async def count(db: Database) -> int:
    stmt = select(func.count()).select_from(usage_events)
    return int(await db.read(lambda c: c.execute(stmt).scalar_one()))


async def test_records_become_signed_events(db: Database) -> None:
    await add_tenant(db, "t1", WALLET)
    await add_records(db, record("req_a"), record("req_b", job_id="job1", cost_micro=0))
    assert await producer(db).step() == 2
    store = UsageEventStore(db)

    a = await store.get(hex32(event_id("req_a")))
    assert a is not None
    assert (a.request_id, a.tenant_id, a.provider, a.meter) == ("req_a", "t1", "sim", "gateway")
    assert a.signer == GATEWAY_KEY.address
    assert a.epoch is None
    signed = a.signed()
    assert json.loads(a.document) == signed.to_document()
    assert recover_signer(signed, DOMAIN) == GATEWAY_KEY.address
    assert a.digest == hex32(signed.event.digest(DOMAIN))
    event = signed.event
    assert event.meter is Meter.GATEWAY
    assert event.job_id == job_id("call:t1:req_a")  # an implicit call's own lock
    assert event.tenant.lower() == WALLET
    assert event.provider_id == provider_id("sim")
    assert event.model == "sim-gpt"
    assert {u.kind: u.count for u in event.units} == {"input_tokens": 1000, "output_tokens": 1000}
    assert (event.tariff_version, event.cost_micro) == (1, 3_000)
    assert event.timestamp == 1_800_000_000
    assert event.request_hash == bytes.fromhex("ab" * 32)
    assert event.sequence == 1

    b = await store.get(hex32(event_id("req_b")))
    assert b is not None
    assert b.signed().event.job_id == job_id("job1")  # a job's calls share its id
    assert b.cost_micro == 0  # free calls are signed too: they prove a call was not charged


async def test_a_tenant_without_a_wallet_signs_as_the_zero_address(db: Database) -> None:
    await add_records(db, record("req_a", tenant_id="nowallet"))
    await producer(db).step()
    stored = await UsageEventStore(db).get(hex32(event_id("req_a")))
    assert stored is not None
    assert stored.signed().event.tenant == ZERO_ADDRESS


async def test_restarts_and_concurrent_producers_never_duplicate(db: Database) -> None:
    await add_records(db, *(record(f"req_{i}") for i in range(7)))
    assert await producer(db, batch=3).step() == 3
    assert await producer(db, batch=3).step() == 3  # a new producer: the cursor is durable
    assert await producer(db, batch=3).step() == 1
    assert await producer(db, batch=3).step() == 0
    assert await count(db) == 7
    cursor = await db.read(lambda c: c.execute(select(metering_cursors.c.seq)).scalar_one())
    assert cursor == 7

    # the same records seen again (a lost cursor) are not signed twice, and are skipped
    await db.write(lambda c: c.execute(metering_cursors.delete()))
    assert await producer(db, batch=2).step() == 0
    assert await count(db) == 7
    assert await db.read(lambda c: c.execute(select(metering_cursors.c.seq)).scalar_one()) == 7


async def test_a_record_committed_late_below_the_cursor_is_picked_up(db: Database) -> None:
    await add_records(db, *(record(f"req_{i}") for i in range(3)))
    await producer(db).step()
    # a record with a lower seq than the cursor, as PostgreSQL can commit one late
    await db.write(lambda c: c.execute(metering_cursors.update().values(seq=LOOKBACK // 2 + 3)))
    await add_records(db, record("late"))
    assert await producer(db).step() == 1
    assert await count(db) == 4


async def test_units_and_sequences_follow_the_records(db: Database) -> None:
    units = {Unit.INPUT_TOKENS: 10, Unit.CACHED_INPUT_TOKENS: 0, Unit.OUTPUT_TOKENS: 5}
    await add_records(db, record("x", units=units, cost_micro=20))
    await producer(db).step()
    stored = await UsageEventStore(db).get(hex32(event_id("x")))
    assert stored is not None
    signed = SignedUsageEvent.from_document(json.loads(stored.document))
    kinds = [u.kind for u in signed.event.units]
    assert kinds == sorted(kinds)  # stable order: the same record always signs the same


def test_the_metering_key_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "metering-key"
    first = load_or_create_metering_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_metering_key(path) == first
    assert "private" not in repr(first)
    assert first.address.startswith("0x")
