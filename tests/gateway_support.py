"""Helpers shared by the data-plane tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from apicredits.demo import running_gateway
from apicredits.sdk import Curve, ServiceKey
from apicredits.settings import Settings

ADMIN_TOKEN = "dataplane-admin"


@dataclass(frozen=True)
class Service:
    tenant_id: str
    client_id: str
    key: ServiceKey


@dataclass
class Gateway:
    url: str
    admin: httpx.Client

    def tenant(self, credits_micro: int = 10_000_000, **key_limits: int) -> tuple[str, str]:
        """A new funded tenant and an API key: (tenant_id, key)."""
        tid = self.admin.post("/admin/v1/tenants", json={"name": "t", "legacy_keys": True}).json()[
            "id"
        ]
        r = self.admin.post(
            f"/admin/v1/tenants/{tid}/deposits",
            json={"amount_micro": credits_micro, "idempotency_key": "fund"},
        )
        assert r.status_code == 201, r.text
        key = self.admin.post("/admin/v1/keys", json={"tenant_id": tid, **key_limits}).json()
        return tid, key["key"]

    def service(
        self,
        credits_micro: int = 10_000_000,
        *,
        tenant: dict[str, Any] | None = None,
        curve: Curve = "Ed25519",
        **service: Any,
    ) -> Service:
        """A new funded tenant (``tenant`` settings) with a registered service and its key."""
        tid = self.admin.post("/admin/v1/tenants", json={"name": "t", **(tenant or {})}).json()[
            "id"
        ]
        r = self.admin.post(
            f"/admin/v1/tenants/{tid}/deposits",
            json={"amount_micro": credits_micro, "idempotency_key": "fund"},
        )
        assert r.status_code == 201, r.text
        key = ServiceKey.generate(curve)
        r = self.admin.post(
            "/admin/v1/services", json={"tenant_id": tid, "jwk": key.public_jwk(), **service}
        )
        assert r.status_code == 201, r.text
        return Service(tid, r.json()["client_id"], key)

    def balance(self, tid: str) -> dict[str, int]:
        doc: dict[str, int] = self.admin.get(f"/admin/v1/tenants/{tid}/balance").json()
        return doc


def gateway_settings(sim_url: str, data_dir: Path, **settings: Any) -> Settings:
    """A test gateway's settings: over ``sim_url``, a known admin token; ``settings`` on
    top."""
    defaults = {"admin_token": ADMIN_TOKEN, "upstream_timeout_seconds": 2.0}
    return Settings(data_dir=data_dir, sim_url=sim_url, **{**defaults, **settings})


@contextmanager
def gateway_on(settings: Settings) -> Iterator[Gateway]:
    """A gateway in process, with a client holding its admin token."""
    token = settings.resolve_admin_token()
    with (
        running_gateway(settings) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as admin,
    ):
        yield Gateway(url, admin)


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- a real `apicredits serve` with several worker processes -----------------------------------

BIN = Path(sys.executable).parent / "apicredits"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(
    tmp_path: Path, workers: int, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--workers", str(workers)],
        env={
            **os.environ,
            "APICREDITS_DATA_DIR": str(tmp_path),
            "APICREDITS_ADMIN_TOKEN": "t",
            "APICREDITS_LOG_LEVEL": "WARNING",
            "APICREDITS_SHUTDOWN_TIMEOUT_SECONDS": "10",  # well inside stop()'s 30 s
            **env,
        },
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "gateway exited"
        assert time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.2)
    return proc, url


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then (if it has not stopped within 30 s, as on a loaded CI machine) SIGKILL
    for it and its workers, and reap it: no process outlives the test."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            for pid in worker_pids(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
