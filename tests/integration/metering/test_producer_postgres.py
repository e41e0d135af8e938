"""The usage-event producer on the real PostgreSQL: workers producing at once sign every
usage record exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import Connection, func, select

from apicredits.db import Database, upgrade
from apicredits.db.schema import metering_cursors, usage_events
from apicredits.metering import UsageRecord, insert_record
from apicredits.metering.events import UsageDomain
from apicredits.metering.producer import EventProducer, MeteringKey
from apicredits.tariffs import Unit

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DOMAIN = UsageDomain(31337, "0x" + "ab" * 20)
KEY = MeteringKey.from_hex("0x" + "11" * 32)


def record(request_id: str) -> UsageRecord:
    return UsageRecord(
        request_id, "t1", None, "cred1", None, f"call:t1:{request_id}", "sim", "sim-gpt",
        "openai.chat", {Unit.INPUT_TOKENS: 10}, 1, 10, 0, "ok", "ab" * 32,
        time.time_ns() // 1000, None, 1,
    )  # fmt: skip


async def test_concurrent_producers_sign_each_record_once(postgres_url: str) -> None:
    dbs = [Database(postgres_url, pool_size=2) for _ in range(3)]
    try:
        await upgrade(dbs[0])

        def add(conn: Connection, start: int) -> None:
            for i in range(start, start + 50):
                insert_record(conn, record(f"req_{i}"))

        producers = [EventProducer(db, KEY, DOMAIN, batch=40) for db in dbs]

        async def drain(p: EventProducer) -> None:
            for _ in range(30):
                await p.step()

        for start in range(0, 300, 50):  # records keep arriving while producers run
            await dbs[0].write(lambda c, s=start: add(c, s))
            await asyncio.gather(*(drain(p) for p in producers))

        count = select(func.count()).select_from(usage_events)
        distinct = select(func.count(func.distinct(usage_events.c.request_id)))
        assert await dbs[0].read(lambda c: c.execute(count).scalar_one()) == 300
        assert await dbs[0].read(lambda c: c.execute(distinct).scalar_one()) == 300
        cursor = select(metering_cursors.c.seq)
        assert await dbs[0].read(lambda c: c.execute(cursor).scalar_one()) == 300
    finally:
        for db in dbs:
            await db.aclose()
