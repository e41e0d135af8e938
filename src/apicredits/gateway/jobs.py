"""Jobs: one ledger lock shared by the calls of a planned job (the seed API).

``create`` locks the quoted amount; each ``/v1/execute`` call first *reserves* its worst
case inside the job (a guarded UPDATE, so concurrent calls can never together exceed the
lock), then records what it really cost; ``settle`` consumes the job's total and refunds the
rest. A job left open past its expiry is settled by the sweeper, so usage is never lost to a
lock expiring.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, select, update

from apicredits.db.engine import Database
from apicredits.db.schema import jobs, usage_records
from apicredits.errors import ApicreditsError, Conflict, IdempotencyConflict, NotFound
from apicredits.ledger import PLATFORM_REVENUE_ACCOUNT, Consume, Ledger, Lock
from apicredits.metering import UsageRecord
from apicredits.tenants import Principal

GRACE_SECONDS = 300  # the ledger lock outlives the job, so the job sweeper settles first


class LockExhausted(ApicreditsError):
    code = "lock_exhausted"
    status = 402


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    tenant_id: str
    project_id: str | None
    credential_id: str
    lock_id: str
    locked_micro: int
    reserved_micro: int
    used_micro: int
    calls: int
    state: str
    quote_id: str | None
    created_at_us: int
    expires_at_us: int

    @property
    def remaining_micro(self) -> int:
        return self.locked_micro - self.used_micro - self.reserved_micro

    def document(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "state": self.state,
            "locked_micro": self.locked_micro,
            "used_micro": self.used_micro,
            "reserved_micro": self.reserved_micro,
            "remaining_micro": self.remaining_micro,
            "calls": self.calls,
            "quote_id": self.quote_id,
            "created_at_us": self.created_at_us,
            "expires_at_us": self.expires_at_us,
        }


class JobStore:
    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger

    async def create(
        self,
        principal: Principal,
        job_id: str | None,
        amount_micro: int,
        ttl_seconds: int,
        quote_id: str | None,
    ) -> Job:
        job_id = job_id or f"job_{secrets.token_hex(12)}"
        now = self.ledger.clock_us()
        lock_id = f"job:{principal.tenant_id}:{job_id}"
        existing = await self._find(job_id)
        if existing is not None:
            if (existing.tenant_id, existing.locked_micro) != (principal.tenant_id, amount_micro):
                raise IdempotencyConflict(f"job id {job_id} already exists", job_id=job_id)
            return existing
        await self.ledger.execute(
            Lock(
                lock_id,
                principal.account_id,
                PLATFORM_REVENUE_ACCOUNT,
                amount_micro,
                ttl_seconds + GRACE_SECONDS,
                principal.budget_scopes,
                memo=job_id,
            )
        )
        row = {
            "id": job_id,
            "tenant_id": principal.tenant_id,
            "project_id": principal.project_id,
            "credential_id": principal.credential_id,
            "lock_id": lock_id,
            "locked_micro": amount_micro,
            "state": "open",
            "quote_id": quote_id,
            "created_at_us": now,
            "expires_at_us": now + ttl_seconds * 1_000_000,
        }
        await self.db.write(lambda c: c.execute(jobs.insert(), row))
        return await self.get(job_id, principal.tenant_id)

    async def get(self, job_id: str, tenant_id: str) -> Job:
        job = await self._find(job_id)
        if job is None or job.tenant_id != tenant_id:
            raise NotFound(f"job {job_id} does not exist", job_id=job_id)
        return job

    async def _find(self, job_id: str) -> Job | None:
        row = await self.db.read(
            lambda c: c.execute(select(jobs).where(jobs.c.id == job_id)).first()
        )
        return _job(row) if row else None

    async def reserve(self, job: Job, amount: int) -> None:
        """Hold ``amount`` of the job's lock for one call, or refuse (402 lock_exhausted)."""
        now = self.ledger.clock_us()
        stmt = (
            update(jobs)
            .where(
                jobs.c.id == job.id,
                jobs.c.state == "open",
                jobs.c.expires_at_us > now,
                jobs.c.used_micro + jobs.c.reserved_micro + amount <= jobs.c.locked_micro,
            )
            .values(reserved_micro=jobs.c.reserved_micro + amount)
        )
        if await self.db.write(lambda c: c.execute(stmt).rowcount) != 1:
            fresh = await self.get(job.id, job.tenant_id)
            if fresh.state != "open" or fresh.expires_at_us <= now:
                raise Conflict(
                    f"job {job.id} is {fresh.state if fresh.state != 'open' else 'expired'}",
                    job_id=job.id,
                )
            raise LockExhausted(
                f"job {job.id} has {fresh.remaining_micro} micro-credits left, call may cost "
                f"{amount}",
                job_id=job.id,
                remaining_micro=fresh.remaining_micro,
                needed_micro=amount,
            )

    async def record(self, job_id: str, reserved: int, record: UsageRecord) -> Job:
        """The call ended: release its reservation, add its cost and usage record."""

        def work(conn: Connection) -> None:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    reserved_micro=jobs.c.reserved_micro - reserved,
                    used_micro=jobs.c.used_micro + record.cost_micro,
                    calls=jobs.c.calls + 1,
                )
            )
            conn.execute(usage_records.insert(), record.row())

        await self.db.write(work)
        return await self.get(job_id, record.tenant_id)

    async def unreserve(self, job_id: str, reserved: int) -> None:
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(reserved_micro=jobs.c.reserved_micro - reserved)
        )
        await self.db.write(lambda c: c.execute(stmt))

    async def settle(self, job_id: str, tenant_id: str, *, force: bool = False) -> Job:
        """Consume what the job used, refund the rest; idempotent."""
        job = await self.get(job_id, tenant_id)
        if job.state == "settled":
            return job
        if job.reserved_micro and not force:
            raise Conflict(
                f"job {job_id} has calls in flight",
                job_id=job_id,
                reserved_micro=job.reserved_micro,
            )
        work = functools.partial(_close, job_id=job_id)
        used = await self.db.write(work)
        await self.ledger.execute(Consume(f"{job.lock_id}:consume", job.lock_id, used))
        return await self.get(job_id, tenant_id)

    async def settle_due(self, *, limit: int = 100) -> int:
        """Settle jobs past their expiry (a background task of every worker)."""
        now = self.ledger.clock_us()
        stmt = (
            select(jobs.c.id, jobs.c.tenant_id)
            .where(jobs.c.state == "open", jobs.c.expires_at_us <= now)
            .limit(limit)
        )
        due = await self.db.read(lambda c: c.execute(stmt).all())
        for job_id, tenant_id in due:
            await self.settle(job_id, tenant_id, force=True)
        return len(due)


def _close(conn: Connection, job_id: str) -> int:
    """Mark the job settled (once) and return what it used."""
    conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.state == "open").values(state="settled")
    )
    return int(conn.execute(select(jobs.c.used_micro).where(jobs.c.id == job_id)).scalar_one())


def _job(r: Row[Any]) -> Job:
    m = r._mapping
    return Job(
        m["id"],
        m["tenant_id"],
        m["project_id"],
        m["credential_id"],
        m["lock_id"],
        m["locked_micro"],
        m["reserved_micro"],
        m["used_micro"],
        m["calls"],
        m["state"],
        m["quote_id"],
        m["created_at_us"],
        m["expires_at_us"],
    )
