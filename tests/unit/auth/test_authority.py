"""The capability authority's shared state on SQLite: key rotation across the overlap window,
revocations reaching another worker's authority, nonces agreed between workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apicredits.auth import CapabilityClaims, TokenError
from apicredits.auth.authority import CapabilityAuthority
from apicredits.db import Database
from apicredits.settings import Settings

pytestmark = pytest.mark.anyio
JKT = "A" * 43


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, admin_token="x", **overrides)  # type: ignore[arg-type]


async def worker(db: Database, tmp_path: Path, **overrides: object) -> CapabilityAuthority:
    authority = CapabilityAuthority(db, settings(tmp_path, **overrides))
    await authority.start()
    return authority


def claims(authority: CapabilityAuthority, now: int, **kw: object) -> CapabilityClaims:
    return CapabilityClaims.create(
        iss=authority.issuer, aud=authority.issuer, sub="svc_1", tenant_id="ten_1",
        scopes=["route:/v1/*", "model:*"], jkt=JKT, now=now, ttl=3600, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_workers_share_one_key_ring(db: Database, tmp_path: Path) -> None:
    a = await worker(db, tmp_path)
    b = await worker(db, tmp_path)
    assert a.key_ring.current.kid == b.key_ring.current.kid
    now = int(time.time())
    token, _ = a.issue(claims(a, now))
    assert b.verify(token, now).sub == "svc_1"
    nonce = a.fresh_nonce(now)
    assert b.nonces is not None
    assert b.nonces.check(nonce, now)  # a nonce from one worker is good at another


async def test_rotation_keeps_old_tokens_for_the_overlap_then_retires_them(
    db: Database, tmp_path: Path
) -> None:
    a = await worker(db, tmp_path, signing_key_overlap_seconds=600)
    b = await worker(db, tmp_path, signing_key_overlap_seconds=600)
    now = int(time.time())
    old_token, _ = a.issue(claims(a, now))
    old_kid = a.key_ring.current.kid
    await a.rotate()
    assert await b.refresh()  # the other worker picks the rotation up
    assert b.key_ring.current.kid != old_kid
    assert {k["kid"] for k in b.jwks(now)["keys"]} == {old_kid, b.key_ring.current.kid}
    assert b.verify(old_token, now + 599).jti  # inside the overlap window
    with pytest.raises(TokenError) as err:
        b.verify(old_token, now + 601)
    assert err.value.reason == "key_retired"
    assert [k["kid"] for k in b.jwks(now + 601)["keys"]] == [b.key_ring.current.kid]
    new_token, _ = b.issue(claims(b, now))
    assert a.verify(new_token, now).jti


async def test_revocations_reach_another_worker_on_refresh(db: Database, tmp_path: Path) -> None:
    a = await worker(db, tmp_path)
    b = await worker(db, tmp_path)
    now = int(time.time())
    one = claims(a, now - 10)
    token, usage_auth = a.issue(one)
    other, _ = a.issue(claims(a, now - 10))
    await a.revoke("jti", "", one.jti, one.exp)
    assert await b.refresh()
    for check in (lambda: b.verify(token, now), lambda: b.verify_cwt(usage_auth, now)):
        with pytest.raises(TokenError) as err:
            check()
        assert err.value.reason == "revoked"
    assert b.verify(other, now).jti  # only that one
    await a.revoke("tenant", "ten_1", "", now)
    assert await b.refresh()
    with pytest.raises(TokenError):
        b.verify(other, now)
    assert not await b.refresh()  # nothing new
    restarted = await worker(db, tmp_path)  # revocations are durable
    with pytest.raises(TokenError):
        restarted.verify(other, now)
