"""Usage records: one per provider call, written in the transaction that charges it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select

from apicredits.db.engine import Database
from apicredits.db.schema import usage_records
from apicredits.errors import NotFound
from apicredits.tariffs import Unit


@dataclass(frozen=True, slots=True)
class UsageRecord:
    id: str  # the request id
    tenant_id: str
    project_id: str | None
    credential_id: str
    job_id: str | None
    lock_id: str
    provider: str
    model: str
    route: str
    units: Mapping[Unit, int]
    tariff_version: int
    cost_micro: int  # charged
    uncollected_micro: int  # priced usage above the lock, not charged
    status: str  # ok | partial (client left or stream cut) | failed
    request_hash: str
    started_at_us: int
    ttft_us: int | None
    duration_us: int
    seq: int | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "project_id": self.project_id,
            "credential_id": self.credential_id,
            "job_id": self.job_id,
            "lock_id": self.lock_id,
            "provider": self.provider,
            "model": self.model,
            "route": self.route,
            "units": json.dumps({str(u): n for u, n in sorted(self.units.items())}),
            "tariff_version": self.tariff_version,
            "cost_micro": self.cost_micro,
            "uncollected_micro": self.uncollected_micro,
            "status": self.status,
            "request_hash": self.request_hash,
            "started_at_us": self.started_at_us,
            "ttft_us": self.ttft_us,
            "duration_us": self.duration_us,
        }

    def document(self) -> dict[str, Any]:
        doc = self.row()
        doc["units"] = {str(u): n for u, n in sorted(self.units.items())}
        doc["seq"] = self.seq
        return doc

    @classmethod
    def from_row(cls, r: Row[Any]) -> UsageRecord:
        m = r._mapping
        units = {Unit(k): int(v) for k, v in json.loads(m["units"]).items()}
        return cls(
            m["id"],
            m["tenant_id"],
            m["project_id"],
            m["credential_id"],
            m["job_id"],
            m["lock_id"],
            m["provider"],
            m["model"],
            m["route"],
            units,
            m["tariff_version"],
            m["cost_micro"],
            m["uncollected_micro"],
            m["status"],
            m["request_hash"],
            m["started_at_us"],
            m["ttft_us"],
            m["duration_us"],
            m["seq"],
        )


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, request_id: str, *, tenant_id: str | None = None) -> UsageRecord:
        stmt = select(usage_records).where(usage_records.c.id == request_id)
        row = await self.db.read(lambda c: c.execute(stmt).first())
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise NotFound(f"no usage record {request_id}", request_id=request_id)
        return UsageRecord.from_row(row)

    async def for_tenant(
        self, tenant_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[UsageRecord]:
        stmt = (
            select(usage_records)
            .where(usage_records.c.tenant_id == tenant_id, usage_records.c.seq > after_seq)
            .order_by(usage_records.c.seq)
            .limit(limit)
        )
        return [
            UsageRecord.from_row(r) for r in await self.db.read(lambda c: c.execute(stmt).all())
        ]

    async def for_job(self, job_id: str) -> list[UsageRecord]:
        stmt = select(usage_records).where(usage_records.c.job_id == job_id)
        rows = await self.db.read(lambda c: c.execute(stmt.order_by(usage_records.c.seq)).all())
        return [UsageRecord.from_row(r) for r in rows]


def insert_record(conn: Connection, record: UsageRecord) -> None:
    conn.execute(usage_records.insert(), record.row())
