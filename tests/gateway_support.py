"""Helpers shared by the data-plane tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


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

    def balance(self, tid: str) -> dict[str, int]:
        doc: dict[str, int] = self.admin.get(f"/admin/v1/tenants/{tid}/balance").json()
        return doc


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
