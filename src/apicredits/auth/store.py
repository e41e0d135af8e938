"""Where the capability authority keeps what every worker and replica must share.

The signing key ring is one row (``auth_keyring``) with a version bumped on each rotation;
revocations are insert-only rows (``revocations``) whose highest ``seq`` is their version. The
database is the record, so a revocation survives a restart of anything; workers poll the two
versions (``AuthState.versions``) and reload only what moved. With Redis configured, a
revocation also bumps a Redis counter that workers poll instead of the database, which is
what carries it to every replica within one poll interval without load on the database.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from apicredits.auth.keys import KeyRing
from apicredits.auth.revocation import Revocations, RevocationStore
from apicredits.db.engine import Database
from apicredits.db.schema import auth_keyring, revocations
from apicredits.errors import InvalidInput

__all__ = ["QUOTE_RING", "TOKEN_RING", "DatabaseRevocationStore", "KeyRingStore"]


TOKEN_RING = 1  # signs capability tokens (JWKS at /.well-known/jwks.json)
QUOTE_RING = 2  # signs price quotes (GET /admin/v1/quote-keys)


class KeyRingStore:
    """A ring of signing keys shared through the database by every worker and replica: one
    row of ``auth_keyring`` per purpose (``TOKEN_RING``, ``QUOTE_RING``), so a key signs one
    kind of document only."""

    def __init__(self, db: Database, *, overlap_seconds: int, ring_id: int = TOKEN_RING) -> None:
        self.db = db
        self.overlap_seconds = overlap_seconds
        self.ring_id = ring_id

    async def version(self) -> int:
        stmt = select(auth_keyring.c.version).where(auth_keyring.c.id == self.ring_id)
        row = await self.db.read(lambda c: c.execute(stmt).first())
        return 0 if row is None else int(row.version)

    async def load_or_create(self) -> tuple[int, KeyRing]:
        def work(c: Connection) -> tuple[int, KeyRing]:
            row = c.execute(select(auth_keyring).where(auth_keyring.c.id == self.ring_id)).first()
            if row is not None:
                return int(row.version), KeyRing.from_document(json.loads(row.document))
            ring = KeyRing.create(int(time.time()), self.overlap_seconds)
            document = json.dumps(ring.to_document())
            c.execute(insert(auth_keyring).values(id=self.ring_id, version=1, document=document))
            return 1, ring

        try:
            return await self.db.write(work)
        except Exception:  # another worker created it first: read theirs
            version, ring = await self._read()
            if ring is None:
                raise
            return version, ring

    async def _read(self) -> tuple[int, KeyRing | None]:
        stmt = select(auth_keyring).where(auth_keyring.c.id == self.ring_id)
        row = await self.db.read(lambda c: c.execute(stmt).first())
        if row is None:
            return 0, None
        return int(row.version), KeyRing.from_document(json.loads(row.document))

    async def rotate(self, now: int) -> tuple[int, KeyRing]:
        """A fresh current key; the old one keeps verifying for the overlap window."""

        def work(c: Connection) -> tuple[int, KeyRing]:
            row = c.execute(select(auth_keyring).where(auth_keyring.c.id == self.ring_id)).first()
            if row is None:
                raise InvalidInput("no signing keys yet: start the gateway once first")
            ring = KeyRing.from_document(json.loads(row.document)).rotate(now)
            version = int(row.version) + 1
            stmt = (
                update(auth_keyring)
                .where(auth_keyring.c.id == self.ring_id, auth_keyring.c.version == row.version)
                .values(version=version, document=json.dumps(ring.to_document()))
            )
            if c.execute(stmt).rowcount != 1:
                raise InvalidInput("the key ring changed meanwhile; retry")
            return version, ring

        return await self.db.write(work)


class DatabaseRevocationStore(RevocationStore):
    """Revocations as insert-only rows; ``version`` is the newest row's ``seq``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _add(self, kind: str, tenant_id: str, value: str, until_s: int) -> None:
        if type(until_s) is not int or not 0 <= until_s < 2**53:
            raise InvalidInput("times are non-negative integers (unix seconds)")
        row: dict[str, Any] = {
            "kind": kind, "tenant_id": tenant_id, "value": value, "until_s": until_s,
            "created_at_us": time.time_ns() // 1000,
        }  # fmt: skip
        await self.db.write(lambda c: c.execute(insert(revocations), row))

    async def revoke_jti(self, jti: str, exp: int) -> None:
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidInput("jti must be a non-empty string", field="jti")
        await self._add("jti", "", jti, exp)

    async def revoke_subject(self, tenant_id: str, sub: str, before: int) -> None:
        await self._add("subject", tenant_id, sub, before)

    async def revoke_tenant(self, tenant_id: str, before: int) -> None:
        await self._add("tenant", tenant_id, "", before)

    async def version(self) -> int:
        stmt = select(func.max(revocations.c.seq))
        return int(await self.db.read(lambda c: c.execute(stmt).scalar()) or 0)

    async def snapshot(self) -> Revocations:
        now = int(time.time())
        stmt = select(revocations).where(
            (revocations.c.kind != "jti") | (revocations.c.until_s > now)
        )
        rows = await self.db.read(lambda c: c.execute(stmt.order_by(revocations.c.seq)).all())
        jtis: dict[str, int] = {}
        subjects: dict[tuple[str, str], int] = {}
        tenants: dict[str, int] = {}
        version = 0
        for r in rows:
            version = max(version, int(r.seq))
            if r.kind == "jti":
                jtis[r.value] = max(r.until_s, jtis.get(r.value, 0))
            elif r.kind == "subject":
                key = (r.tenant_id, r.value)
                subjects[key] = max(r.until_s, subjects.get(key, 0))
            else:
                tenants[r.tenant_id] = max(r.until_s, tenants.get(r.tenant_id, 0))
        return Revocations(jtis, subjects, tenants, max(version, await self.version()))
