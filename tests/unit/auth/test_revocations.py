from __future__ import annotations

from typing import Any

import pytest

from apicredits.auth.capabilities import CapabilityClaims, issue_token, verify_token
from apicredits.auth.errors import TokenError
from apicredits.auth.keys import KeyRing
from apicredits.auth.revocation import MemoryRevocationStore, Revocations
from apicredits.errors import InvalidInput

NOW = 1_700_000_000
JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def claims(**overrides: Any) -> CapabilityClaims:
    fields: dict[str, Any] = {
        "iss": "gw",
        "aud": "api",
        "sub": "svc",
        "tenant_id": "acme",
        "jkt": JKT,
        "scopes": ["route:*"],
        "now": NOW,
        "jti": "jti-1",
    }
    return CapabilityClaims.create(**(fields | overrides))  # fmt: skip


def test_revocations_by_jti_subject_and_tenant() -> None:
    empty = Revocations()
    assert not empty.is_revoked(claims())
    assert Revocations(jtis={"jti-1": NOW + 900}).is_revoked(claims())
    assert not Revocations(jtis={"jti-2": NOW + 900}).is_revoked(claims())
    by_subject = Revocations(subjects={("acme", "svc"): NOW + 1})
    assert by_subject.is_revoked(claims())
    assert not by_subject.is_revoked(claims(now=NOW + 1))  # issued at or after: not revoked
    assert not by_subject.is_revoked(claims(tenant_id="other"))
    assert not by_subject.is_revoked(claims(sub="other"))
    by_tenant = Revocations(tenants={"acme": NOW + 1})
    assert by_tenant.is_revoked(claims(sub="anyone"))
    assert not by_tenant.is_revoked(claims(now=NOW + 1))


def test_snapshot_is_immutable_and_prunes_expired_jtis() -> None:
    source = {"a": NOW, "b": NOW + 10}
    snapshot = Revocations(jtis=source)
    source["c"] = NOW
    assert set(snapshot.jtis) == {"a", "b"}
    with pytest.raises(TypeError):
        snapshot.jtis["d"] = 1  # type: ignore[index]
    assert set(snapshot.without_expired(NOW).jtis) == {"b"}


@pytest.mark.anyio
async def test_memory_store_versions_and_snapshots() -> None:
    store = MemoryRevocationStore()
    assert await store.version() == 0
    assert await store.snapshot() == Revocations()
    await store.revoke_jti("jti-1", NOW + 900)
    await store.revoke_subject("acme", "svc", NOW + 5)
    await store.revoke_subject("acme", "svc", NOW + 1)  # an earlier cut-off never shrinks it
    await store.revoke_tenant("globex", NOW)
    snapshot = await store.snapshot()
    assert snapshot.version == await store.version() == 4
    assert snapshot.subjects[("acme", "svc")] == NOW + 5
    assert snapshot.is_revoked(claims())
    assert snapshot.is_revoked(claims(jti="x", now=NOW + 4))
    assert not snapshot.is_revoked(claims(jti="x", now=NOW + 5))
    await store.prune(NOW + 900)
    assert "jti-1" not in (await store.snapshot()).jtis
    with pytest.raises(InvalidInput):
        await store.revoke_tenant("acme", -1)
    with pytest.raises(InvalidInput):
        await store.revoke_jti("", NOW)


@pytest.mark.anyio
async def test_verify_token_uses_the_snapshot() -> None:
    ring = KeyRing.create(NOW)
    token = issue_token(ring, claims())
    store = MemoryRevocationStore()
    options: dict[str, Any] = {"now": NOW + 1, "audience": "api", "issuer": "gw"}
    snapshot = await store.snapshot()
    assert verify_token(ring, token, is_revoked=snapshot.is_revoked, **options).jti == "jti-1"
    await store.revoke_tenant("acme", NOW + 1)
    snapshot = await store.snapshot()
    with pytest.raises(TokenError) as caught:
        verify_token(ring, token, is_revoked=snapshot.is_revoked, **options)
    assert caught.value.reason == "revoked"
