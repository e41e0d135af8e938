"""Usage records as the gateway writes them, for the metering tests."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from apicredits.db import Database
from apicredits.db.schema import tenant_wallets, tenants
from apicredits.metering import UsageRecord, insert_record
from apicredits.metering.events import UsageDomain
from apicredits.metering.producer import MeteringKey
from apicredits.tariffs import Unit

DOMAIN = UsageDomain(31337, "0x" + "ab" * 20)
GATEWAY_KEY = MeteringKey.from_hex("0x" + "11" * 32)
WALLET = "0x" + "5c" * 20


def record(
    request_id: str,
    *,
    tenant_id: str = "t1",
    job_id: str | None = None,
    units: dict[Unit, int] | None = None,
    cost_micro: int = 3_000,
) -> UsageRecord:
    """A sim-gpt call: 1000 input and 1000 output tokens cost 3000 micro at tariff 1."""
    return UsageRecord(
        request_id, tenant_id, None, "cred1", job_id, f"call:{tenant_id}:{request_id}", "sim",
        "sim-gpt", "openai.chat",
        units if units is not None else {Unit.INPUT_TOKENS: 1000, Unit.OUTPUT_TOKENS: 1000},
        1, cost_micro, 0, "ok", "ab" * 32, 1_800_000_000_000_000, None, 1_000,
    )  # fmt: skip


async def add_records(db: Database, *records: UsageRecord) -> None:
    def work(conn: Connection) -> None:
        for r in records:
            insert_record(conn, r)

    await db.write(work)


async def add_tenant(db: Database, tenant_id: str, wallet: str | None = None) -> None:
    now = time.time_ns() // 1000

    def work(conn: Connection) -> None:
        conn.execute(tenants.insert(), {"id": tenant_id, "name": tenant_id, "created_at_us": now})
        if wallet is not None:
            row = {"address": wallet, "tenant_id": tenant_id, "created_at_us": now}
            conn.execute(tenant_wallets.insert(), row)

    await db.write(work)
