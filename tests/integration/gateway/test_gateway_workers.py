"""Several gateway worker processes on the real PostgreSQL and Redis: a tenant's credits
hold under concurrency across workers, and a killed worker's locks are refunded."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apicredits.demo import serving
from apicredits.providers.simulator import create_sim_app
from gateway_support import start_gateway, stop, worker_pids

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent / "apicredits"
CHAT = {
    "model": "sim-gpt",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "one two three"}],
}


@pytest.fixture
def sim() -> Iterator[str]:
    with serving(create_sim_app()) as url:
        yield url


@pytest.fixture
def shared(sim: str, postgres_url: str, redis_url: str) -> dict[str, str]:
    """Gateway settings for state shared by every worker: PostgreSQL and Redis."""
    return {
        "APICREDITS_DATABASE_URL": postgres_url,
        "APICREDITS_REDIS_URL": redis_url,
        "APICREDITS_SIM_URL": sim,
    }


def tenant(admin: httpx.Client, credits_micro: int) -> tuple[str, str]:
    tid = admin.post("/admin/v1/tenants", json={"name": "w", "legacy_keys": True}).json()["id"]
    if credits_micro:
        r = admin.post(
            f"/admin/v1/tenants/{tid}/deposits",
            json={"amount_micro": credits_micro, "idempotency_key": "f"},
        )
        assert r.status_code == 201, r.text
    return tid, admin.post("/admin/v1/keys", json={"tenant_id": tid}).json()["key"]


async def fire(url: str, key: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}
                )
                for _ in range(n)
            )
        )
    return [r.status_code for r in responses]


def test_300_calls_across_4_workers_never_overspend(tmp_path: Path, shared: dict[str, str]) -> None:
    proc, url = start_gateway(tmp_path, 4, shared)
    try:
        ready = httpx.get(f"{url}/readyz")  # PostgreSQL and Redis both answer
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "limits": "ok"}}
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as admin:
            _, probe_key = tenant(admin, 10_000_000)
            probe = httpx.post(
                f"{url}/v1/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {probe_key}"},
            )
            cost = int(probe.headers["apicredits-cost-micro"])  # the same for every such call
            tid, key = tenant(admin, 100 * cost)
            statuses = asyncio.run(fire(url, key, 300))
            served = statuses.count(200)
            assert set(statuses) <= {200, 402}
            assert 0 < served <= 100
            deadline = time.monotonic() + 20
            while (balance := admin.get(f"/admin/v1/tenants/{tid}/balance").json())[
                "locked_micro"
            ] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert balance["locked_micro"] == 0
            assert balance["spent_micro"] == served * cost
            assert balance["available_micro"] == 100 * cost - served * cost >= 0
    finally:
        stop(proc)


def test_a_killed_workers_locks_expire_and_are_refunded(
    tmp_path: Path, sim: str, postgres_url: str
) -> None:
    env = {
        "APICREDITS_DATABASE_URL": postgres_url,
        "APICREDITS_SIM_URL": sim,
        "APICREDITS_LOCK_TIMEOUT_SECONDS": "3",
        "APICREDITS_SWEEP_INTERVAL_SECONDS": "0.5",
    }
    proc, url = start_gateway(tmp_path, 2, env)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as admin:
            tid, key = tenant(admin, 10_000_000)

            async def slow_calls() -> None:
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    await asyncio.gather(
                        *(
                            client.post(
                                "/v1/chat/completions",
                                json=CHAT,
                                headers={
                                    "authorization": f"Bearer {key}",
                                    "x-sim-latency-ms": "20000",
                                },
                            )
                            for _ in range(6)
                        ),
                        return_exceptions=True,
                    )

            async def kill_workers_once_locked() -> None:
                task = asyncio.create_task(slow_calls())
                for _ in range(100):
                    await asyncio.sleep(0.1)
                    if admin.get(f"/admin/v1/tenants/{tid}/balance").json()["locked_micro"]:
                        break
                await asyncio.sleep(0.5)
                for pid in worker_pids(
                    proc.pid
                ):  # kill -9 every worker: nothing can refund in-process
                    os.kill(pid, signal.SIGKILL)
                await task

            asyncio.run(kill_workers_once_locked())
    finally:
        stop(proc)
    # A fresh gateway on the same database sweeps the dead workers' expired locks.
    proc, url = start_gateway(tmp_path, 1, env)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as admin:
            deadline = time.monotonic() + 20
            while (balance := admin.get(f"/admin/v1/tenants/{tid}/balance").json())[
                "locked_micro"
            ] and time.monotonic() < deadline:
                time.sleep(0.3)
            assert balance == {
                **balance,
                "locked_micro": 0,
                "spent_micro": 0,
                "available_micro": 10_000_000,
            }
            history = admin.get(f"/admin/v1/tenants/{tid}/ledger").json()["transfers"]
            assert any(t["kind"] == "expire" for t in history)
    finally:
        stop(proc)


def metric(text: str, name: str) -> float:
    """The value of one sample line (``name`` with its labels, as exposed) in a scrape."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the scrape")


def test_metrics_add_up_every_worker_whichever_answers(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    proc, url = start_gateway(tmp_path, 3, shared)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}) as admin:
            _, key = tenant(admin, 10_000_000)
        statuses = asyncio.run(fire(url, key, 60))
        assert statuses == [200] * 60
        # Each scrape opens a new connection, so the three workers take turns answering.
        scrapes = [httpx.get(f"{url}/metrics").text for _ in range(12)]
        served = {metric(s, 'apicredits_requests_total{route="openai.chat",status="200"}')
                  for s in scrapes}  # fmt: skip
        assert served == {60.0}
        assert {metric(s, "apicredits_open_locks") for s in scrapes} == {0.0}
        consumed = {metric(s, "apicredits_credits_consumed_micro_total") for s in scrapes}
        assert len(consumed) == 1
        assert consumed.pop() > 0
    finally:
        stop(proc)


def test_a_quote_priced_by_one_replica_locks_on_another(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    """Two replicas (own data directories, one database): the quote signing key is the
    database's, so either one honours the other's quotes."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, url_a = start_gateway(tmp_path / "a", 1, shared)
    try:
        b, url_b = start_gateway(tmp_path / "b", 1, shared)
        try:
            admin = {"Authorization": "Bearer t"}
            keys_a = httpx.get(f"{url_a}/admin/v1/quote-keys", headers=admin).json()["keys"]
            keys_b = httpx.get(f"{url_b}/admin/v1/quote-keys", headers=admin).json()["keys"]
            assert keys_a == keys_b
            assert len(keys_a) == 1
            with httpx.Client(base_url=url_a, headers=admin) as client:
                _, key = tenant(client, 10_000_000)
            auth = {"authorization": f"Bearer {key}"}
            calls = [{"model": "sim-gpt", "input_tokens": 100, "max_output_tokens": 40}]
            quote = httpx.post(f"{url_a}/v1/jobs/quote", json={"calls": calls}, headers=auth)
            assert quote.status_code == 200, quote.text
            lock = httpx.post(f"{url_b}/v1/jobs/lock", json={"quote": quote.json()}, headers=auth)
            assert lock.status_code == 201, lock.text
            assert lock.json()["locked_micro"] == quote.json()["quote"]["total_micro"]
            jwks = httpx.get(f"{url_a}/.well-known/jwks.json").json()["keys"]
            # Purpose-bound keys: the token signing keys never sign quotes.
            assert {k["x"] for k in jwks}.isdisjoint({k["public_key"] for k in keys_a})
        finally:
            stop(b)
    finally:
        stop(a)
