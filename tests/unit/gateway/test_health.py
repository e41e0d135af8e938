"""``/healthz`` and ``/readyz``: ready while the database and the limits store answer, a 503
naming what does not (and nothing of where it lives) otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from apicredits.gateway import health
from apicredits.gateway.app import create_app
from apicredits.runtime import Runtime
from apicredits.settings import Settings


def serve(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serve(Settings(data_dir=tmp_path, admin_token="t")) as c:
        yield c


def runtime_of(client: TestClient) -> Runtime:
    """The runtime the app opened (the Starlette app inside the body limit and hot path)."""
    rt: Runtime = client.app.app.app.state.runtime  # type: ignore[attr-defined]
    return rt


def test_healthz_answers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_ready_on_the_embedded_defaults(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "limits": "ok"}}


def test_not_ready_and_refusing_calls_while_the_limits_store_is_unreachable(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, admin_token="t", redis_url="redis://user:secret@127.0.0.1:1/0"
    )
    with serve(settings) as c:
        r = c.get("/readyz")
        admin = {"Authorization": "Bearer t"}
        tid = c.post("/admin/v1/tenants", json={"legacy_keys": True}, headers=admin).json()["id"]
        limited = {"tenant_id": tid, "requests_per_minute": 60}  # unlimited keys skip Redis
        key = c.post("/admin/v1/keys", json=limited, headers=admin).json()["key"]
        chat = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]}
        call = c.post("/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
    assert call.status_code == 503  # fail closed: no limit it could not check is overrun
    assert call.json()["error"]["code"] == "limits_unavailable"
    assert call.headers["retry-after"] == "1"
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "not_ready"
    assert error["checks"]["database"] == "ok"
    assert error["checks"]["limits"] == "failed (LimitsUnavailable); see the gateway's log"
    assert error["message"] == "limits: failed (LimitsUnavailable); see the gateway's log"
    assert "secret" not in r.text
    assert "127.0.0.1" not in r.text


def test_not_ready_while_the_database_fails_or_hangs(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    db = runtime_of(client).db

    async def broken(_: object) -> object:
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr(db, "read", broken)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["checks"] == {
        "database": "failed (OperationalError); see the gateway's log",
        "limits": "ok",
    }

    async def hung(_: object) -> object:
        await asyncio.sleep(60)
        return None

    monkeypatch.setattr(db, "read", hung)
    monkeypatch.setattr(health, "CHECK_SECONDS", 0.05)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["checks"]["database"] == "no answer within 0.05 s"
