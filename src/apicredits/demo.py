"""``apicredits demo``: the money core end to end on the embedded defaults.

Starts the gateway on a free loopback port with a temporary data directory (SQLite,
in-process limits), then drives it over HTTP exactly as a user would: a tenant with
credits, a project and a key with a daily budget, a signed quote, lock -> consume (the
remainder refunded), a refund, one lock refused for budget, and a table of what happened.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from apicredits.errors import ApicreditsError
from apicredits.gateway.app import create_app
from apicredits.money import format_micro
from apicredits.settings import Settings

console = Console()


class DemoFailed(ApicreditsError):
    code = "demo_failed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_gateway(settings: Settings) -> Iterator[str]:
    """Serve the gateway in a background thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise DemoFailed("the gateway did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_demo(*, keep: bool = False) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="apicredits-demo-"))
    token = secrets.token_urlsafe(16)
    settings = Settings(data_dir=data_dir, admin_token=token, database_url=None, redis_url=None)
    try:
        with (
            running_gateway(settings) as url,
            httpx.Client(
                base_url=url + "/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as http,
        ):
            console.print(f"[bold]apicredits demo[/] gateway at {url} (data in {data_dir})")
            _scenario(http)
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        raise DemoFailed(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


def _scenario(http: httpx.Client) -> None:
    rows: list[tuple[str, str, str]] = []
    tenant = _ok(http.post("/tenants", json={"name": "Acme AI"}))
    tid = tenant["id"]
    _ok(
        http.post(
            f"/tenants/{tid}/deposits",
            json={"amount_micro": 5_000_000, "idempotency_key": "welcome"},
        )
    )
    rows.append(("deposit (admin top-up)", "+5.000000", "credits minted to the tenant"))
    project = _ok(http.post(f"/tenants/{tid}/projects", json={"name": "chatbot"}))
    key = _ok(http.post("/keys", json={"tenant_id": tid, "project_id": project["id"]}))
    _ok(
        http.put(
            "/budgets",
            json={
                "tenant_id": tid,
                "scope": "project",
                "scope_id": project["id"],
                "period": "day",
                "cap_micro": 1_000_000,
            },
        )
    )
    rows.append(("budget", "1.000000/day", f"project {project['id']}"))

    calls = [{"model": "sim-gpt", "input_tokens": 120_000, "max_output_tokens": 80_000}] * 3
    quote = _ok(http.post("/quotes", json={"tenant_id": tid, "calls": calls}))
    total = quote["quote"]["total_micro"]
    rows.append(
        (
            "quote (signed, Ed25519)",
            format_micro(total),
            f"tariff v{quote['quote']['tariff_version']}, key {quote['key_id']}",
        )
    )

    lock = {"lock_id": "job-1", "amount_micro": total, "credential_id": key["id"]}
    _ok(http.post(f"/tenants/{tid}/locks", json=lock))
    rows.append(("lock job-1", f"-{format_micro(total)}", "pending: held, not spent"))
    used = total * 2 // 3
    consumed = _ok(http.post(f"/tenants/{tid}/locks/job-1/consume", json={"amount_micro": used}))
    rows.append(
        (
            "consume job-1",
            f"-{format_micro(consumed['amount_micro'])}",
            f"remainder {format_micro(consumed['released_micro'])} refunded",
        )
    )

    _ok(
        http.post(
            f"/tenants/{tid}/locks",
            json={"lock_id": "job-2", "amount_micro": 300_000, "credential_id": key["id"]},
        )
    )
    _ok(http.post(f"/tenants/{tid}/locks/job-2/refund", json={}))
    rows.append(("lock + refund job-2", "0.000000", "cancelled job: all of it back"))

    refused = http.post(
        f"/tenants/{tid}/locks",
        json={"lock_id": "job-3", "amount_micro": 900_000, "credential_id": key["id"]},
    )
    if refused.status_code != 402 or refused.json()["error"]["code"] != "budget_exceeded":
        raise DemoFailed(f"expected a budget refusal, got {refused.status_code} {refused.text}")
    rows.append(("lock job-3 (0.9 credits)", "refused", "402 budget_exceeded"))

    balance = _ok(http.get(f"/tenants/{tid}/balance"))
    if balance["available_micro"] + balance["spent_micro"] != 5_000_000 or balance["locked_micro"]:
        raise DemoFailed(f"ledger does not add up: {balance}")

    table = Table("step", "credits", "note", title="what happened")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    summary = Table("available", "locked", "spent", title=f"tenant {tid}")
    summary.add_row(
        format_micro(balance["available_micro"]),
        format_micro(balance["locked_micro"]),
        format_micro(balance["spent_micro"]),
    )
    console.print(summary)
    console.print("[green]demo passed[/]: every micro-credit accounted for")
