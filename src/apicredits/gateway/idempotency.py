"""``Idempotency-Key`` for provider calls, Stripe-style.

The first request with a key runs; a retry while it runs gets ``409 request_in_progress``;
a retry after it completed gets the stored response (``apicredits-idempotent-replay: true``)
and is not charged again; a retry after it failed (refunded) runs again as a new attempt.
The same key with a different body is ``409 idempotency_conflict``. An attempt left
in progress by a crashed worker is taken over once its lock could have expired.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from apicredits.db.engine import Database
from apicredits.db.schema import idempotent_requests as table
from apicredits.errors import Conflict, IdempotencyConflict

MAX_STORED_BODY = 1_048_576


class RequestInProgress(Conflict):
    code = "request_in_progress"


@dataclass(frozen=True, slots=True)
class Replay:
    request_id: str
    status_code: int
    body: bytes | None  # None when it was a stream (not stored)
    cost_micro: int


@dataclass(frozen=True, slots=True)
class Attempt:
    request_id: str
    number: int


class IdempotencyStore:
    def __init__(self, db: Database, *, stale_after_us: int) -> None:
        self.db = db
        self.stale_after_us = stale_after_us

    async def begin(
        self, tenant_id: str, key: str, request_hash: str, request_id: str, now_us: int
    ) -> Attempt | Replay:
        work = functools.partial(
            self._begin,
            tenant_id=tenant_id,
            key=key,
            request_hash=request_hash,
            request_id=request_id,
            now_us=now_us,
        )
        return await self.db.write(work)

    def _begin(
        self,
        conn: Connection,
        tenant_id: str,
        key: str,
        request_hash: str,
        request_id: str,
        now_us: int,
    ) -> Attempt | Replay:
        where = (table.c.tenant_id == tenant_id, table.c.key == key)
        stmt = select(table).where(*where)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            conn.execute(
                table.insert().values(
                    tenant_id=tenant_id,
                    key=key,
                    request_hash=request_hash,
                    request_id=request_id,
                    state="in_progress",
                    attempt=1,
                    created_at_us=now_us,
                )
            )
            return Attempt(request_id, 1)
        if row.request_hash != request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was used for a different request", idempotency_key=key
            )
        if row.state == "completed":
            body = row.response_body.encode() if row.response_body is not None else None
            return Replay(row.request_id, row.status_code, body, row.cost_micro or 0)
        if row.state == "in_progress" and now_us - row.created_at_us < self.stale_after_us:
            raise RequestInProgress(
                "a request with this Idempotency-Key is still running",
                idempotency_key=key,
                request_id=row.request_id,
            )
        attempt = row.attempt + 1
        conn.execute(
            update(table)
            .where(*where)
            .values(state="in_progress", attempt=attempt, created_at_us=now_us)
        )
        return Attempt(row.request_id, attempt)

    async def complete(
        self, tenant_id: str, key: str, status_code: int, body: bytes | None, cost_micro: int
    ) -> None:
        stored = body.decode("utf-8", "replace") if body and len(body) <= MAX_STORED_BODY else None
        stmt = (
            update(table)
            .where(table.c.tenant_id == tenant_id, table.c.key == key)
            .values(
                state="completed",
                status_code=status_code,
                response_body=stored,
                cost_micro=cost_micro,
            )
        )
        await self.db.write(lambda c: c.execute(stmt))

    async def fail(self, tenant_id: str, key: str) -> None:
        stmt = (
            update(table)
            .where(table.c.tenant_id == tenant_id, table.c.key == key)
            .values(state="failed")
        )
        await self.db.write(lambda c: c.execute(stmt))
