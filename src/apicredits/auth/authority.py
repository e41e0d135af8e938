"""The capability authority at run time: signing keys, revocations, nonces, replay cache.

One per gateway worker. It holds the shared state every check needs in memory (the key
ring, a revocation snapshot, the nonce secrets) and keeps it fresh from the database (and
Redis when configured) every ``refresh_seconds``; checks never wait on storage except for
the replay cache, which must be shared to be worth anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from apicredits.auth.capabilities import CapabilityClaims, issue_token, verify_token
from apicredits.auth.cwt import cwt_from_header, cwt_to_header, decode_cwt, encode_cwt
from apicredits.auth.dpop import DPoPProof, check_and_remember, verify_proof
from apicredits.auth.errors import TokenError
from apicredits.auth.keys import KeyRing
from apicredits.auth.nonces import NonceSource
from apicredits.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from apicredits.auth.revocation import Revocations
from apicredits.auth.store import DatabaseRevocationStore, KeyRingStore
from apicredits.db.engine import Database
from apicredits.settings import Settings

log = logging.getLogger("apicredits.auth")

PROOF_MAX_AGE = 300
SKEW = 30


class CapabilityAuthority:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.issuer = settings.token_issuer
        self.nonce_required = settings.dpop_nonces
        self.refresh_seconds = settings.auth_refresh_seconds
        self.rings = KeyRingStore(db, overlap_seconds=settings.signing_key_overlap_seconds)
        self.revocation_store = DatabaseRevocationStore(db)
        self.replay: ReplayCache = (
            RedisReplayCache(settings.redis_url, prefix=settings.redis_prefix)
            if settings.redis_url
            else MemoryReplayCache()
        )
        self._redis = (
            aioredis.Redis.from_url(settings.redis_url, socket_timeout=1.0)
            if settings.redis_url
            else None
        )
        self._signal_key = f"{settings.redis_prefix}auth:version"
        self.ring: KeyRing | None = None
        self.ring_version = 0
        self.revocations = Revocations()
        self.nonces: NonceSource | None = None
        self._signal: bytes | None = None

    # -- state ---------------------------------------------------------------------------
    async def start(self) -> None:
        version, ring = await self.rings.load_or_create()
        self._use_ring(version, ring)
        self.revocations = await self.revocation_store.snapshot()

    def _use_ring(self, version: int, ring: KeyRing) -> None:
        self.ring, self.ring_version = ring, version
        # Nonce secrets derive from the signing keys, so every worker and replica agrees on
        # them without another secret to distribute, and they rotate with the keys.
        secrets = [
            hmac.new(
                key.private_key.private_bytes_raw(), b"apicredits/dpop-nonce", hashlib.sha256
            ).digest()
            for key in (ring.current, *ring.previous)
        ]
        self.nonces = NonceSource(secrets)

    @property
    def key_ring(self) -> KeyRing:
        if self.ring is None:
            raise RuntimeError("CapabilityAuthority.start() has not run")
        return self.ring

    async def refresh(self) -> bool:
        """Reload what changed since the last refresh; True if anything did."""
        if self._redis is not None:
            try:
                raw = await self._redis.get(self._signal_key)
                signal = raw if isinstance(raw, bytes) else None
            except RedisError:
                signal = b"unreachable"  # fall back to the database's versions
            if signal == self._signal and signal != b"unreachable":
                return False
            self._signal = signal
        changed = False
        if await self.rings.version() != self.ring_version:
            version, ring = await self.rings.load_or_create()
            self._use_ring(version, ring)
            changed = True
        if await self.revocation_store.version() != self.revocations.version:
            self.revocations = await self.revocation_store.snapshot()
            changed = True
        return changed

    async def run_refresher(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("capability state refresh failed; will retry")

    async def announce(self) -> None:
        """Tell every worker (through Redis, when configured) that something changed."""
        await self.refresh()
        if self._redis is not None:
            try:
                await self._redis.incr(self._signal_key)
            except RedisError as exc:  # workers still see it by polling the database
                log.warning("could not announce an auth change through Redis: %s", exc)

    async def rotate(self) -> KeyRing:
        version, ring = await self.rings.rotate(int(time.time()))
        self._use_ring(version, ring)
        await self.announce()
        return ring

    async def revoke(self, kind: str, tenant_id: str, value: str, until: int) -> None:
        store = self.revocation_store
        if kind == "jti":
            await store.revoke_jti(value, until)
        elif kind == "subject":
            await store.revoke_subject(tenant_id, value, until)
        else:
            await store.revoke_tenant(tenant_id, until)
        await self.announce()

    async def aclose(self) -> None:
        await self.replay.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    # -- tokens and proofs ----------------------------------------------------------------
    def issue(self, claims: CapabilityClaims) -> tuple[str, str]:
        """The capability token (JWT) and the same claims as a CWT for ``Usage-Auth``."""
        ring = self.key_ring
        return issue_token(ring, claims), cwt_to_header(encode_cwt(ring, claims))

    def verify(self, token: str, now: int, jkt: str | None = None) -> CapabilityClaims:
        return verify_token(
            self.key_ring, token, now=now, audience=self.issuer, issuer=self.issuer,
            leeway=SKEW, is_revoked=self.revocations.is_revoked, jkt=jkt,
        )  # fmt: skip

    def verify_cwt(self, header: str, now: int, jkt: str | None = None) -> CapabilityClaims:
        return decode_cwt(
            self.key_ring, cwt_from_header(header), now=now, audience=self.issuer,
            issuer=self.issuer, leeway=SKEW, is_revoked=self.revocations.is_revoked, jkt=jkt,
        )  # fmt: skip

    async def check_proof(
        self, proof: str | None, *, method: str, url: str, now: int,
        access_token: str | None, expected_jkt: str | None,
    ) -> DPoPProof:  # fmt: skip
        """One DPoP proof for one request: valid, fresh, with our nonce, never seen before."""
        nonces = self.nonces
        assert nonces is not None
        checked = verify_proof(
            proof, method=method, url=url, now=now, access_token=access_token,
            expected_jkt=expected_jkt, nonce_required=self.nonce_required,
            nonce_check=nonces.check, max_age=PROOF_MAX_AGE, skew=SKEW, issue_nonce=nonces.issue,
        )  # fmt: skip
        await check_and_remember(self.replay, checked, ttl_seconds=PROOF_MAX_AGE + SKEW)
        return checked

    def fresh_nonce(self, now: int) -> str | None:
        return self.nonces.issue(now) if self.nonces and self.nonce_required else None

    async def remember_assertion(self, client_id: str, jti: str, ttl: int) -> None:
        if not await self.replay.remember(f"assertion:{client_id}:{jti}", ttl):
            raise TokenError("replayed")

    def jwks(self, now: int) -> dict[str, Any]:
        return self.key_ring.jwks(now)
