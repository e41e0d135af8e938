"""``apicredits demo``: the whole path end to end on the embedded defaults.

Starts the provider simulator and the gateway on free loopback ports with a temporary data
directory (SQLite, in-process limits, the embedded chain with the contracts deployed), then
does what a platform team would: a tenant funded by a stablecoin deposit into the credit
vault on chain (credited by the gateway's indexer), a service that holds a key pair (no
static secret: DPoP-bound capability tokens through ``apicredits.sdk``); the seed API —
quote, lock, three executes (chat, streamed chat, embeddings), settle; a call through the
official ``openai`` SDK (``sdk.openai_client``, DPoP) on the compatible route; one call
refused for budget; and a table of every charge and the balances.
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
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from apicredits import demo_settlement
from apicredits.errors import ApicreditsError
from apicredits.gateway.app import create_app
from apicredits.money import format_micro
from apicredits.sdk import CapabilityAuth, ServiceKey, openai_client
from apicredits.settings import Settings

if TYPE_CHECKING:
    from apicredits.chain import Chain, Deployment

console = Console()
FUNDING_MICRO = 2_000_000
PROMPT: list[Any] = [{"role": "user", "content": "Write a haiku about prepaid credits."}]


class DemoFailed(ApicreditsError):
    code = "demo_failed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app in a background thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise DemoFailed("a server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def running_gateway(settings: Settings) -> contextlib.AbstractContextManager[str]:
    return serving(create_app(settings))


@contextlib.contextmanager
def embedded_deployment(settings: Settings) -> Iterator[tuple[Chain, Deployment]]:
    """Deploy the contracts to the embedded chain under ``settings.data_dir`` and write the
    default deployment file there, which a gateway started afterwards indexes."""
    from apicredits.chain import connect, deploy
    from apicredits.chain.connect import deployment_path

    chain = connect(settings)
    try:
        yield chain, deploy(chain, path=deployment_path(settings, chain.chain_id))
    finally:
        chain.close()


def run_demo(*, keep: bool = False) -> None:
    from apicredits.metering.signer import ProviderUsageSigner
    from apicredits.providers.simulator import create_sim_app

    data_dir = Path(tempfile.mkdtemp(prefix="apicredits-demo-"))
    token = secrets.token_urlsafe(16)
    # The simulator signs its own usage, like a provider that adopts the protocol.
    sim_signer = ProviderUsageSigner("0x" + secrets.token_hex(32), None)
    try:
        with serving(create_sim_app(sim_signer)) as sim_url:
            settings = Settings(
                data_dir=data_dir,
                admin_token=token,
                database_url=None,
                redis_url=None,
                chain_rpc_url=None,
                chain_deployment_file=None,
                chain_poll_seconds=0.2,
                sim_url=sim_url,
                sim_signs_usage=True,
            )
            with (
                embedded_deployment(settings) as (chain, deployment),
                running_gateway(settings) as url,
                httpx.Client(
                    base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as admin,
            ):
                console.print(
                    f"[bold]apicredits demo[/]: gateway {url}, simulator {sim_url}, "
                    f"data in {data_dir}"
                )
                sim_signer.emit_url = f"{url}/v1/usage/emit"
                oracles = demo_settlement.prepare(chain, deployment, sim_signer.address)
                _scenario(url, admin, chain, deployment, settings, oracles)
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code not in (status, 201):
        raise DemoFailed(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
    return response.json() if response.content else None


def fund_on_chain(
    admin: httpx.Client, tenant_id: str, chain: Chain, deployment: Deployment, wallet: str
) -> tuple[str, int]:
    """Mint test stablecoin to ``wallet``, approve the vault and deposit it for the wallet,
    link the wallet to the tenant, and wait for the gateway's indexer to credit the ledger;
    returns the deposit's transaction hash and block."""
    from apicredits.chain import deposit_test_funds

    receipt = deposit_test_funds(chain, deployment, tenant=wallet, amount=FUNDING_MICRO)
    _ok(admin.put(f"/admin/v1/tenants/{tenant_id}/wallet", json={"address": wallet}))
    deadline = time.monotonic() + 30
    while _ok(admin.get(f"/admin/v1/tenants/{tenant_id}/balance"))["available_micro"] == 0:
        if time.monotonic() > deadline:
            raise DemoFailed("the gateway's indexer did not credit the on-chain deposit")
        time.sleep(0.05)
    return receipt.tx_hash, receipt.block_number


def _scenario(
    url: str, admin: httpx.Client, chain: Chain, deployment: Deployment, settings: Settings,
    oracles: demo_settlement.Oracles,
) -> None:  # fmt: skip
    import openai

    rows: list[tuple[str, str, str]] = []
    tenant = _ok(admin.post("/admin/v1/tenants", json={"name": "Acme AI"}))
    tid = tenant["id"]
    # Funding on chain: the tenant's wallet (a dev account of the embedded chain) deposits
    # test stablecoin into the credit vault; the gateway's indexer credits the ledger.
    tx_hash, block = fund_on_chain(admin, tid, chain, deployment, chain.accounts[1])
    rows.append(
        (
            "deposit (on chain)",
            f"+{format_micro(FUNDING_MICRO)}",
            f"tx {tx_hash[:10]}…, block {block}",
        )
    )
    # No static key: the service registers a public key and proves possession of it for
    # short-lived capability tokens, each request carrying a DPoP proof (apicredits.sdk).
    key = ServiceKey.generate()
    service = _ok(
        admin.post(
            "/admin/v1/services",
            json={"tenant_id": tid, "name": "demo", "jwk": key.public_jwk()},
        )
    )
    client_id = service["client_id"]
    auth = CapabilityAuth(url, client_id, key)
    api = httpx.Client(base_url=url, auth=auth, timeout=30)
    rows.append(("register service", "", f"{client_id}: Ed25519 public key, no secret"))

    calls = [
        {"model": "sim-gpt", "input_tokens": 200, "max_output_tokens": 64},
        {"model": "sim-gpt", "input_tokens": 200, "max_output_tokens": 64},
        {"model": "sim-embed", "input_tokens": 200, "max_output_tokens": 0},
    ]
    quote = _ok(api.post("/v1/jobs/quote", json={"calls": calls}))
    assert auth.token is not None
    rows.append(
        ("capability token", "", f"{auth.token.token_type}-bound, {auth.token.scopes[-1]} …")
    )
    rows.append(
        (
            "quote (signed, Ed25519)",
            format_micro(quote["quote"]["total_micro"]),
            f"3 calls, tariff v{quote['quote']['tariff_version']}",
        )
    )
    job = _ok(api.post("/v1/jobs/lock", json={"quote": quote}), 201)
    rows.append(("lock job", f"-{format_micro(job['locked_micro'])}", job["job_id"]))
    api.headers["Usage-Auth"] = job["usage_token"]  # the job's own token, for /v1/execute

    chat = {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 64}
    r = api.post("/v1/execute", json={"job_id": job["job_id"], "request": chat})
    _ok(r)
    rows.append(
        (
            "execute: chat",
            format_micro(int(r.headers["apicredits-cost-micro"])),
            r.json()["choices"][0]["message"]["content"][:40] + "…",
        )
    )
    with api.stream(
        "POST", "/v1/execute", json={"job_id": job["job_id"], "request": {**chat, "stream": True}}
    ) as s:
        chunks = sum(1 for line in s.iter_lines() if line.startswith("data: {"))
    rows.append(("execute: streamed chat", "(in the job)", f"{chunks} SSE chunks"))
    emb = {"model": "sim-embed", "input": "prepaid credits, metered exactly"}
    r = api.post(
        "/v1/execute", json={"job_id": job["job_id"], "route": "openai.embeddings", "request": emb}
    )
    _ok(r)
    rows.append(
        (
            "execute: embeddings",
            format_micro(int(r.headers["apicredits-cost-micro"])),
            f"{len(r.json()['data'][0]['embedding'])}-dim vector",
        )
    )
    for _ in range(50):  # the streamed call settles just after its last byte
        state = _ok(api.get(f"/v1/jobs/{job['job_id']}"))
        if state["calls"] == 3 and state["reserved_micro"] == 0:
            break
        time.sleep(0.05)
    settled = _ok(api.post(f"/v1/jobs/{job['job_id']}/settle"))
    rows.append(
        (
            "settle job",
            f"-{format_micro(settled['used_micro'])}",
            f"{settled['calls']} calls; {format_micro(settled['refunded_micro'])} refunded",
        )
    )

    client = openai_client(url, client_id, key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="sim-gpt", messages=PROMPT, max_tokens=64
    )
    usage = raw.parse().usage
    rows.append(
        (
            "openai SDK (DPoP): chat",
            format_micro(int(raw.headers["apicredits-cost-micro"])),
            f"{usage.prompt_tokens if usage else '?'} in / "
            f"{usage.completion_tokens if usage else '?'} out tokens",
        )
    )

    _ok(
        admin.put(
            "/admin/v1/budgets",
            json={"tenant_id": tid, "scope": "tenant", "period": "day", "cap_micro": 50},
        )
    )
    try:
        client.chat.completions.create(model="sim-gpt", messages=PROMPT, max_tokens=64)
        raise DemoFailed("a call over budget was served")
    except openai.APIStatusError as exc:
        if exc.status_code != 402:
            raise DemoFailed(f"expected 402, got {exc.status_code}") from None
        rows.append(("openai SDK: over budget", "refused", f"402 {exc.body['code']}"))  # type: ignore[index]

    balance = _ok(admin.get(f"/admin/v1/tenants/{tid}/balance"))
    total = balance["available_micro"] + balance["spent_micro"]
    if balance["locked_micro"] or total != FUNDING_MICRO:
        raise DemoFailed(f"ledger does not add up: {balance}")
    verified = _settle_and_verify(
        url, admin, api, chain, deployment, settings, oracles, raw.headers, rows,
        wallet=chain.accounts[1], spent=balance["spent_micro"],
    )  # fmt: skip
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
    console.print("apicredits verify, on the openai SDK call's receipt, from the chain alone:")
    for line in verified:
        console.print(f"  {line}")
    console.print("[green]demo passed[/]: every micro-credit accounted for, on chain too")


def _settle_and_verify(
    url: str, admin: httpx.Client, api: httpx.Client, chain: Chain, d: Deployment,
    settings: Settings, oracles: demo_settlement.Oracles, headers: Any,
    rows: list[tuple[str, str, str]], *, wallet: str, spent: int,
) -> list[str]:  # fmt: skip
    """Settle the demo's calls on chain (3 oracle nodes, t = 2) and verify one receipt."""
    credits_before = int(chain.call(d.address("credit_token"), "credit_token", "balanceOf", wallet))
    time.sleep(0.5)  # the simulator emits its signed usage in the background
    token = str(admin.headers["Authorization"]).removeprefix("Bearer ")
    result = demo_settlement.settle(settings, url, token, chain, d, oracles)
    done = result["settled"][-1] if result["settled"] else None
    if done is None or done["state"] != "settled":
        raise DemoFailed(f"the epoch did not settle: {result}")
    submitted = result["submitted"][-1]
    rows.append(
        (
            f"epoch {done['epoch']} (oracles)",
            "",
            f"{submitted['events']} signed usage events, root signed by oracles "
            f"{submitted['signers']} of 3 (t = 2), {submitted['lines']} line(s)",
        )
    )
    paid = int(chain.call(d.stablecoin, "test_stablecoin", "balanceOf", oracles.payout))
    burned = credits_before - int(
        chain.call(d.address("credit_token"), "credit_token", "balanceOf", wallet)
    )
    if burned != spent:
        raise DemoFailed(f"burned {burned} credits on chain for {spent} spent in the ledger")
    rows.append(
        (
            "settled on chain",
            f"-{format_micro(burned)}",
            f"credits burned; provider paid {format_micro(paid)} USDC after a "
            f"{result['window']} s dispute window ({demo_settlement.FEE_BPS / 100:g}% fee)",
        )
    )
    receipt = _ok(api.get(f"/v1/usage/{headers['apicredits-receipt']}/proof"))
    return demo_settlement.verify(settings, receipt, result["gateway_meter"])
