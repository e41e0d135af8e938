"""The gateway's cost over a direct upstream call, measured in one run on this machine.

    .venv/bin/python bench/gateway.py [--seconds 5] [--rounds 3] [--rss-requests 100000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/15]

Starts the provider simulator, two bare Starlette proxies (the floor: no auth, no
metering; one on aiohttp's client, one on the gateway's own) and one gateway worker
(SQLite and in-process limits by default; with ``--postgres`` a new database on that
server, dropped afterwards; with ``--redis`` limits in that Redis; default logging), then
for non-streaming chat: requests/s at 8 connections and latency at 1 connection, direct
to the simulator and through the gateway's full path (auth, rate limit, lock, proxy,
meter, consume + usage record, metrics), with the CPU each server process spends per
request at 8 connections (one worker saturates one core: that figure is its ceiling); the
ratio; the gateway's RSS before and after ``--rss-requests`` more requests; and which
of the gateway's targets (≥ 1,500 req/s, ≥ 30% of direct, ≤ 1 ms added p50, RSS ≤ 150 MB
without growth) the run met. The load generator runs in its own process. The simulator's
and the gateway's 8-connection figures are medians of ``--rounds`` loads each, taken in
turn, and the ratio is the median of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
from scratch import scratch_database

BIN = Path(sys.executable).parent / "apicredits"
BODY = json.dumps(
    {"model": "sim-gpt", "max_tokens": 16, "messages": [{"role": "user", "content": "hello world"}]}
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    max_requests: int | None = None,
) -> loadgen.Result:
    request = loadgen.build_request("127.0.0.1", port, path, BODY, headers)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(
            loadgen.run, ("127.0.0.1", port, request, connections, seconds, max_requests)
        )


def gateway_env(
    data: str, sim_port: int, database_url: str | None = None, redis_url: str | None = None
) -> dict[str, str]:
    """A gateway with the simulator upstream: on the embedded defaults (SQLite under
    ``data``, in-process limits) unless given a database or a Redis."""
    env = {
        **os.environ,
        "APICREDITS_DATA_DIR": data,
        "APICREDITS_ADMIN_TOKEN": "bench",
        "APICREDITS_SIM_URL": f"http://127.0.0.1:{sim_port}",
    }
    env.pop("APICREDITS_DATABASE_URL", None)
    env.pop("APICREDITS_REDIS_URL", None)
    if database_url:
        env["APICREDITS_DATABASE_URL"] = database_url
    if redis_url:
        env["APICREDITS_REDIS_URL"] = redis_url
        env["APICREDITS_REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}:"
    return env


def funded_tenant(gw_port: int) -> tuple[httpx.Client, str, dict[str, str]]:
    """A tenant with credits to spare: the admin client, its id, and its API key's headers."""
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{gw_port}/admin/v1", headers={"Authorization": "Bearer bench"}
    )
    tid = admin.post("/tenants", json={"name": "bench", "legacy_keys": True}).json()["id"]
    admin.post(
        f"/tenants/{tid}/deposits", json={"amount_micro": 10**15, "idempotency_key": "bench"}
    )
    key = admin.post("/keys", json={"tenant_id": tid}).json()["key"]
    return admin, tid, {"Authorization": f"Bearer {key}"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Busy:
    """One load at 8 connections: its requests/s, slowest 1% and failures, and the CPU the
    server spent per request."""

    rps: float
    p99_ms: float
    errors: int
    cpu_us: float


def busy(port: int, headers: dict[str, str], seconds: float, server_pid: int) -> Busy:
    cpu_before = cpu_seconds(server_pid)
    result = load(port, "/v1/chat/completions", headers, 8, seconds)
    cpu = (cpu_seconds(server_pid) - cpu_before) / max(1, result.requests)
    return Busy(result.rps, result.percentile(99) * 1000, result.errors, cpu * 1e6)


def measure(
    name: str,
    port: int,
    headers: dict[str, str],
    seconds: float,
    server_pid: int,
    rounds: list[Busy] | None = None,
) -> dict[str, float]:
    """Throughput at 8 connections (and the server's CPU per request there), latency at 1.
    ``rounds``: 8-connection loads already made, whose medians stand for throughput
    instead of a load of its own."""
    load(port, "/v1/chat/completions", headers, 8, 1.0)  # warm up
    rounds = rounds or [busy(port, headers, seconds, server_pid)]
    single = load(port, "/v1/chat/completions", headers, 1, seconds)
    figures = {
        "rps": statistics.median(r.rps for r in rounds),
        "errors": sum(r.errors for r in rounds) + single.errors,
        "p50_ms": single.percentile(50) * 1000,
        "p99_ms": single.percentile(99) * 1000,
        "busy_p99_ms": statistics.median(r.p99_ms for r in rounds),
        "cpu_us": statistics.median(r.cpu_us for r in rounds),
    }
    print(
        f"{name:<12} {figures['rps']:8,.0f} req/s @8 conns (p99 {figures['busy_p99_ms']:.2f} ms,"
        f" {figures['cpu_us']:.0f} µs CPU/req in its process)"
        f" | @1 conn p50 {figures['p50_ms']:.3f} ms p99 {figures['p99_ms']:.3f} ms"
        f" | errors {figures['errors']:.0f}"
    )
    return figures


def paired_rounds(
    servers: dict[str, tuple[int, dict[str, str], int]], rounds: int, seconds: float
) -> dict[str, list[Busy]]:
    """8-connection loads of each server in turn, ``rounds`` times (the order flips every
    round), so that a ratio of two servers pairs loads made seconds apart: this VM's speed
    drifts by tens of percent within minutes, which separate loads would read as a gap."""
    for port, headers, _ in servers.values():
        load(port, "/v1/chat/completions", headers, 8, 1.0)  # warm up
    made: dict[str, list[Busy]] = {name: [] for name in servers}
    for n in range(rounds):
        order = list(servers.items())
        for name, (port, headers, pid) in order if n % 2 == 0 else reversed(order):
            made[name].append(busy(port, headers, seconds, pid))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="paired loads of the simulator and the gateway"
    )
    parser.add_argument("--rss-requests", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="the gateway on PostgreSQL")
    parser.add_argument("--redis", metavar="URL", help="the gateway's limits in Redis")
    args = parser.parse_args()
    with scratch_database(args.postgres) as database_url:
        return run(args, database_url)


def run(args: argparse.Namespace, database_url: str | None) -> int:
    sim_port, gw_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="apicredits-bench-")
    env = gateway_env(data, sim_port, database_url, args.redis)
    logs = open(Path(data) / "gateway.log", "wb")  # noqa: SIM115 - closed below
    sim = subprocess.Popen([str(BIN), "provider-sim", "--port", str(sim_port)], env=env)
    bare_ports = {client: free_port() for client in ("aiohttp", "own")}
    bares = {
        client: subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "bare_proxy.py"),
                str(port),
                f"http://127.0.0.1:{sim_port}",
                client,
            ]
        )
        for client, port in bare_ports.items()
    }
    gw = subprocess.Popen(
        [str(BIN), "serve", "--port", str(gw_port), "--workers", "1"], env=env, stderr=logs
    )
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        for port in bare_ports.values():
            wait_http(f"http://127.0.0.1:{port}/")
        admin, tid, auth = funded_tenant(gw_port)
        stores = ("PostgreSQL" if database_url else "SQLite") + (", Redis" if args.redis else "")
        print(
            f"bench/gateway.py on {os.cpu_count()} cores; 1 gateway worker ({stores}), "
            f"simulator upstream; non-streaming chat, {args.seconds:.0f} s per figure"
        )
        paired = paired_rounds(
            {"direct": (sim_port, {}, sim.pid), "gateway": (gw_port, auth, gw.pid)},
            args.rounds,
            args.seconds,
        )
        direct = measure("direct", sim_port, {}, args.seconds, sim.pid, paired["direct"])
        for client, port in bare_ports.items():
            measure(f"bare/{client}", port, {}, args.seconds, bares[client].pid)
        gateway = measure("gateway", gw_port, auth, args.seconds, gw.pid, paired["gateway"])
        ratios = [g.rps / d.rps for g, d in zip(paired["gateway"], paired["direct"], strict=True)]
        print(
            f"ratio        gateway/direct req/s = {statistics.median(ratios):.1%} (median of "
            f"{len(ratios)} paired rounds: {', '.join(f'{r:.1%}' for r in ratios)}); "
            f"added latency @1 conn p50 {gateway['p50_ms'] - direct['p50_ms']:.3f} ms, "
            f"p99 {gateway['p99_ms'] - direct['p99_ms']:.3f} ms"
        )
        before = rss_mb(gw.pid)
        half = load(
            gw_port,
            "/v1/chat/completions",
            auth,
            8,
            3600,
            args.rss_requests // 2,
        )
        middle = rss_mb(gw.pid)
        rest = load(
            gw_port,
            "/v1/chat/completions",
            auth,
            8,
            3600,
            args.rss_requests // 2,
        )
        after = rss_mb(gw.pid)
        done = half.requests + rest.requests
        print(
            f"rss          {before:.1f} MB before, {middle:.1f} MB after {half.requests:,}, "
            f"{after:.1f} MB after {done:,} requests ({half.errors + rest.errors} errors)"
        )
        balance = admin.get(f"/tenants/{tid}/balance").json()
        print(
            f"ledger       locked {balance['locked_micro']} micro after the run "
            f"(must be 0); spent {balance['spent_micro']:,} micro"
        )
        targets = {
            "≥ 1,500 req/s": gateway["rps"] >= 1_500,
            "≥ 30% of direct": statistics.median(ratios) >= 0.30,
            "≤ 1 ms added p50": gateway["p50_ms"] - direct["p50_ms"] <= 1.0,
            # growth over the second half of the run within a megabyte of noise
            "RSS ≤ 150 MB, no growth": after <= 150 and after - middle <= 1.0,
            "no errors, nothing left locked": not (
                gateway["errors"] or half.errors or rest.errors or balance["locked_micro"]
            ),
        }
        verdicts = [f"{name} {'met' if ok else 'NOT MET'}" for name, ok in targets.items()]
        print(f"targets      {'; '.join(verdicts)}")
    finally:
        for proc in (gw, *bares.values(), sim):
            proc.terminate()
            proc.wait(10)
        logs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
