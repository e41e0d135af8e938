"""Capability state across 4 gateway workers on the real PostgreSQL and Redis: a revocation
made at one worker is enforced by all of them, and a DPoP proof replayed to other workers is
refused by every one of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apicredits.demo import serving
from apicredits.providers.simulator import create_sim_app
from apicredits.sdk import CapabilityAuth, dpop_proof
from gateway_support import Gateway, Service, start_gateway, stop

pytestmark = pytest.mark.integration
CHAT = {"model": "sim-gpt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
WORKERS = 4


@pytest.fixture
def gateway(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> Iterator[Gateway]:
    with serving(create_sim_app()) as sim:
        env = {
            "APICREDITS_DATABASE_URL": postgres_url,
            "APICREDITS_REDIS_URL": redis_url,
            "APICREDITS_REDIS_PREFIX": redis_prefix,
            "APICREDITS_SIM_URL": sim,
        }
        proc, url = start_gateway(tmp_path, WORKERS, env)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as admin:
                yield Gateway(url, admin)
        finally:
            stop(proc)


async def spread(url: str, n: int, headers: list[dict[str, str]]) -> list[httpx.Response]:
    """``n`` requests, each on its own connection, so the kernel spreads them over workers."""

    async def one(h: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(f"{url}/v1/chat/completions", json=CHAT, headers=h)

    return await asyncio.gather(*(one(headers[i % len(headers)]) for i in range(n)))


def token_for(gw: Gateway, svc: Service) -> CapabilityAuth:
    auth = CapabilityAuth(gw.url, svc.client_id, svc.key)
    with httpx.Client(base_url=gw.url, auth=auth) as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert auth.token is not None
    return auth


def proof_headers(gw: Gateway, svc: Service, auth: CapabilityAuth, n: int) -> list[dict[str, str]]:
    token = auth.token
    assert token is not None
    nonce = next(iter(auth._nonces.values()))  # the server nonce the SDK holds
    url = f"{gw.url}/v1/chat/completions"
    return [
        {
            "Authorization": f"DPoP {token.value}",
            "DPoP": dpop_proof(
                svc.key,
                method="POST",
                url=url,
                now=int(time.time()),
                nonce=nonce,
                access_token=token.value,
            ),
        }
        for _ in range(n)
    ]


def test_a_revocation_reaches_all_4_workers(gateway: Gateway) -> None:
    svc = gateway.service()
    auth = token_for(gateway, svc)
    before = asyncio.run(spread(gateway.url, 40, proof_headers(gateway, svc, auth, 40)))
    assert [r.status_code for r in before] == [200] * 40
    r = gateway.admin.post(
        "/admin/v1/revocations",
        json={"kind": "subject", "tenant_id": svc.tenant_id, "value": svc.client_id},
    )
    assert r.status_code == 201, r.text
    time.sleep(2.5)  # auth_refresh_seconds is 1 s: every worker has polled Redis since
    after = asyncio.run(spread(gateway.url, 40, proof_headers(gateway, svc, auth, 40)))
    reasons = {(r.status_code, r.json()["error"].get("reason")) for r in after}
    assert reasons == {(401, "revoked")}


def test_a_replayed_proof_is_refused_by_every_worker(gateway: Gateway) -> None:
    svc = gateway.service()
    auth = token_for(gateway, svc)
    one_proof = proof_headers(gateway, svc, auth, 1)
    responses = asyncio.run(spread(gateway.url, 40, one_proof))  # the same proof 40 times
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 39
    assert {r.json()["error"]["reason"] for r in responses if r.status_code == 401} == {"replayed"}
