"""The gateway on the real PostgreSQL when its database goes away mid-run: every call and
every control-plane request is a 503 ``database_unavailable`` with ``Retry-After`` (not a
500), and ``/readyz`` says the database is what failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from apicredits.demo import running_gateway, serving
from apicredits.providers.simulator import create_sim_app
from apicredits.settings import Settings

pytestmark = pytest.mark.integration
CHAT = {"model": "sim-gpt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def sim() -> Iterator[str]:
    with serving(create_sim_app()) as url:
        yield url


def drop(database_url: str) -> None:
    """Drop the gateway's database under it, its connections cut (an outage, as it sees it)."""
    server, name = database_url.replace("+asyncpg", "").rsplit("/", 1)

    async def run() -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(run())


def funded_tenant(client: httpx.Client) -> tuple[str, str]:
    """A tenant with a million micro-credits (admin token ``t``): its id and an API key."""
    admin = {"Authorization": "Bearer t"}
    tid = client.post(
        "/admin/v1/tenants", json={"name": "o", "legacy_keys": True}, headers=admin
    ).json()["id"]
    client.post(
        f"/admin/v1/tenants/{tid}/deposits",
        json={"amount_micro": 1_000_000, "idempotency_key": "d"},
        headers=admin,
    )
    key = client.post("/admin/v1/keys", json={"tenant_id": tid}, headers=admin).json()["key"]
    return tid, key


def test_a_database_that_goes_away_is_a_503_everywhere(
    tmp_path: Path, sim: str, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, admin_token="t", database_url=postgres_url, sim_url=sim)
    with running_gateway(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        admin = {"Authorization": "Bearer t"}
        tid, key = funded_tenant(client)
        call = {"Authorization": f"Bearer {key}"}
        assert client.post("/v1/chat/completions", json=CHAT, headers=call).status_code == 200

        drop(postgres_url)

        for _ in range(2):  # the pool's cut connections first, then failed new ones
            r = client.post("/v1/chat/completions", json=CHAT, headers=call)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "database_unavailable"  # OpenAI's shape
        r = client.get(f"/admin/v1/tenants/{tid}/balance", headers=admin)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["checks"]["database"].startswith("failed")
    # the clients got a code; the operator's log got the driver's words
    causes = [r.getMessage() for r in caplog.records if "database unavailable:" in r.getMessage()]
    assert any(f'database "{postgres_url.rsplit("/", 1)[1]}" does not exist' in c for c in causes)


def test_a_call_in_flight_when_the_database_goes_is_a_503_and_its_lock_left_to_expire(
    tmp_path: Path, sim: str, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Locked before the outage, answered upstream during it: neither the charge nor the
    refund can be written, so the client gets a 503 and the operator one warning per step,
    without a traceback; the lock expires (the sweeper refunds it once the database is back)."""
    settings = Settings(data_dir=tmp_path, admin_token="t", database_url=postgres_url, sim_url=sim)
    with running_gateway(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        _, key = funded_tenant(client)
        slow = {"Authorization": f"Bearer {key}", "x-sim-latency-ms": "1500"}
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(client.post, "/v1/chat/completions", json=CHAT, headers=slow)
            time.sleep(0.7)  # locked by now, waiting on the simulator
            drop(postgres_url)
            r = in_flight.result()
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
    refunds = [r for r in caplog.records if r.getMessage().startswith("refund of call:")]
    assert [(r.levelname, r.exc_info) for r in refunds] == [("WARNING", None)]
    assert "the lock will expire" in refunds[0].getMessage()
