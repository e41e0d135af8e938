"""The gateway publishes its token signing keys and revocations on CapabilityAuthority."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_utils.crypto import keccak

from apicredits.auth.assertions import unb64url
from apicredits.chain import Chain, Deployment
from apicredits.chain.key_publication import as_bytes
from apicredits.demo import embedded_deployment, running_gateway
from apicredits.sdk import ServiceKey
from apicredits.settings import Settings

ADMIN = "keys-admin"


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[Settings, Chain, Deployment]]:
    settings = Settings(
        data_dir=tmp_path, admin_token=ADMIN, database_url=None, redis_url=None,
        chain_rpc_url=None, chain_deployment_file=None, chain_poll_seconds=0.05,
        signing_key_overlap_seconds=600,
    )  # fmt: skip
    with embedded_deployment(settings) as (chain, deployment):
        yield settings, chain, deployment


def published(chain: Chain, d: Deployment, kid: str) -> tuple[bytes, int, int]:
    key, not_before, not_after = chain.call(
        d.address("capability_authority"), "capability_authority", "keys", unb64url(kid)
    )
    return as_bytes(key), int(not_before), int(not_after)


def eventually(check: object, timeout: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not published in time"
        time.sleep(0.05)


def test_keys_rotation_and_revocations_reach_the_chain(
    deployed: tuple[Settings, Chain, Deployment],
) -> None:
    settings, chain, d = deployed
    with (
        running_gateway(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin,
    ):
        jwks = httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]
        first = jwks[0]["kid"]
        eventually(lambda: published(chain, d, first)[0] != bytes(32))
        assert published(chain, d, first)[0] == unb64url(jwks[0]["x"])
        rotated = admin.post("/admin/v1/signing-keys/rotate").json()
        second = rotated["current_kid"]
        eventually(lambda: published(chain, d, second)[0] != bytes(32))
        eventually(lambda: published(chain, d, first)[2] != 0)
        _, not_before, not_after = published(chain, d, first)
        assert not_after - int(time.time()) in range(590, 601)  # retired + the overlap window
        authority = d.address("capability_authority")
        assert chain.call(authority, "capability_authority", "key_valid_at", unb64url(first),
                          not_before)  # fmt: skip
        tid = admin.post("/admin/v1/tenants", json={"name": "t"}).json()["id"]
        svc = admin.post(
            "/admin/v1/services",
            json={"tenant_id": tid, "jwk": ServiceKey.generate().public_jwk()},
        ).json()
        r = admin.post(
            "/admin/v1/revocations",
            json={"kind": "subject", "tenant_id": tid, "value": svc["client_id"]},
        )
        assert r.status_code == 201, r.text
        subject = keccak(text=f"{tid}:{svc['client_id']}")
        before = chain.call(authority, "capability_authority", "subject_revoked_before", subject)
        assert before >= int(time.time())
        admin.post("/admin/v1/revocations", json={"kind": "jti", "tenant_id": tid, "value": "j1"})
        assert chain.call(authority, "capability_authority", "token_revoked", keccak(text="j1"))
