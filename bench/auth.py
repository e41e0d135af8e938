"""What capability access costs at the gateway: req/s with DPoP, bearer tokens and static keys.

    .venv/bin/python bench/auth.py [--seconds 5] [--rounds 3]

First, in process: how long the authority takes to check a capability token and a fresh DPoP
proof (p50, p99). Then it starts the provider simulator and one gateway worker (SQLite,
in-process limits and replay cache), registers a service, and measures non-streaming chat at
8 connections three ways, in rotating rounds of one run: a static API key (the legacy opt-in),
a bearer capability token, and a DPoP-bound token with a fresh proof (own ``jti``, server
nonce, ``ath``) on every request; the proofs are signed before each run so the load
generator's CPU does not count. Also: how fast ``POST /v1/capabilities`` issues tokens
(sequential, DPoP with nonce).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
from apicredits.auth import CapabilityClaims
from apicredits.auth.authority import CapabilityAuthority
from apicredits.db import Database, upgrade
from apicredits.sdk import CapabilityAuth, ServiceKey, client_assertion, dpop_proof
from apicredits.settings import Settings
from gateway import BIN, BODY, free_port, wait_http

PATH = "/v1/chat/completions"


def run_load(port: int, requests: bytes | list[bytes], seconds: float) -> loadgen.Result:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(loadgen.run, ("127.0.0.1", port, requests, 8, seconds))


def report(name: str, result: loadgen.Result, base: float | None) -> float:
    versus = f" ({result.rps / base:.0%} of static keys)" if base else ""
    print(
        f"{name:<22} {result.rps:8,.0f} req/s @8 conns, p50 {result.percentile(50) * 1000:.2f} ms"
        f" p99 {result.percentile(99) * 1000:.2f} ms, errors {result.errors}{versus}"
    )
    return result.rps


def token(url: str, client_id: str, key: ServiceKey, *, dpop: bool) -> tuple[str, str | None]:
    auth = CapabilityAuth(url, client_id, key, dpop=dpop)
    with httpx.Client(auth=auth) as client:
        assert client.post(url + PATH, content=BODY).status_code == 200
    assert auth.token is not None
    nonce = next(iter(auth._nonces.values()), None)
    return auth.token.value, nonce


def issuance_rate(url: str, client_id: str, key: ServiceKey, n: int) -> float:
    endpoint = f"{url}/v1/capabilities"
    grant = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    nonce = None
    with httpx.Client() as client:
        started = time.perf_counter()
        for _ in range(n):
            now = int(time.time())
            r = client.post(
                endpoint,
                data={
                    **grant,
                    "client_assertion": client_assertion(
                        key, client_id=client_id, audience=endpoint, now=now
                    ),
                },
                headers={
                    "DPoP": dpop_proof(key, method="POST", url=endpoint, now=now, nonce=nonce)
                },
            )
            nonce = r.headers.get("DPoP-Nonce", nonce)
            if r.status_code == 401:  # the first answer is the nonce challenge
                continue
            assert r.status_code == 200, r.text
        return n / (time.perf_counter() - started)


async def verification_latency(n: int) -> tuple[float, float]:
    """p50 and p99 (µs) of what a DPoP request costs the authority in process: the capability
    token (verified once, then from the cache, as on a gateway) plus a fresh proof: its
    signature, claims, nonce and replay check."""
    data = tempfile.mkdtemp(prefix="apicredits-bench-verify-")
    db = Database(f"sqlite:///{data}/auth.db")
    await upgrade(db)
    authority = CapabilityAuthority(db, Settings(data_dir=Path(data), admin_token="x"))
    await authority.start()
    key, now = ServiceKey.generate(), int(time.time())
    claims = CapabilityClaims.create(
        iss=authority.issuer, aud=authority.issuer, sub="svc_bench", tenant_id="ten_bench",
        scopes=["route:/v1/*", "model:*"], jkt=key.thumbprint(), now=now,
    )  # fmt: skip
    access, _ = authority.issue(claims)
    url, nonce = f"https://gateway.example{PATH}", authority.fresh_nonce(now)
    proofs = [
        dpop_proof(key, method="POST", url=url, now=now, nonce=nonce, access_token=access)
        for _ in range(n)
    ]
    timings = []
    for proof in proofs:
        started = time.perf_counter()
        checked = authority.verify(access, now)
        await authority.check_proof(
            proof, method="POST", url=url, now=now, access_token=access, expected_jkt=checked.jkt
        )
        timings.append(time.perf_counter() - started)
    await authority.aclose()
    await db.aclose()
    timings.sort()
    return timings[n // 2] * 1e6, timings[int(n * 0.99)] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every mode, rotated")
    args = parser.parse_args()
    p50, p99 = asyncio.run(verification_latency(20_000))
    print(f"token + DPoP proof verification: p50 {p50:.0f} µs, p99 {p99:.0f} µs (in process)")
    sim_port, gw_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="apicredits-bench-auth-")
    env = {
        **os.environ,
        "APICREDITS_DATA_DIR": data,
        "APICREDITS_ADMIN_TOKEN": "bench",
        "APICREDITS_SIM_URL": f"http://127.0.0.1:{sim_port}",
    }
    for name in ("APICREDITS_DATABASE_URL", "APICREDITS_REDIS_URL"):
        env.pop(name, None)
    sim = subprocess.Popen([str(BIN), "provider-sim", "--port", str(sim_port)], env=env)
    gw = subprocess.Popen(
        [str(BIN), "serve", "--port", str(gw_port), "--workers", "1"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{gw_port}"
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        wait_http(f"{url}/healthz")
        admin = httpx.Client(base_url=f"{url}/admin/v1", headers={"Authorization": "Bearer bench"})
        tid = admin.post(
            "/tenants", json={"name": "bench", "legacy_keys": True, "dpop_required": False}
        ).json()["id"]
        admin.post(
            f"/tenants/{tid}/deposits", json={"amount_micro": 10**15, "idempotency_key": "b"}
        )
        api_key = admin.post("/keys", json={"tenant_id": tid}).json()["key"]
        key = ServiceKey.generate()
        client_id = admin.post(
            "/services", json={"tenant_id": tid, "jwk": key.public_jwk()}
        ).json()["client_id"]
        bearer, _ = token(url, client_id, key, dpop=False)
        dpop, nonce = token(url, client_id, key, dpop=True)
        print(
            f"bench/auth.py on {os.cpu_count()} cores; 1 gateway worker (SQLite), simulator "
            f"upstream; non-streaming chat, {args.rounds} rounds x {args.seconds:.0f} s per mode"
        )

        def fixed(headers: dict[str, str]) -> bytes:
            return loadgen.build_request("127.0.0.1", gw_port, PATH, BODY, headers)

        def proofs(count: int) -> list[bytes]:
            now = int(time.time())
            return [
                fixed({
                    "Authorization": f"DPoP {dpop}",
                    "DPoP": dpop_proof(
                        key, method="POST", url=url + PATH, now=now, nonce=nonce,
                        access_token=dpop,
                    ),
                })
                for _ in range(count)
            ]  # fmt: skip

        modes: dict[str, Callable[[], bytes | list[bytes]]] = {
            "static API key": lambda: fixed({"Authorization": f"Bearer {api_key}"}),
            "bearer capability": lambda: fixed({"Authorization": f"Bearer {bearer}"}),
            "DPoP (proof per call)": lambda: proofs(int(2_000 * args.seconds)),
        }
        run_load(gw_port, modes["static API key"](), 1.0)  # warm up
        # Rounds in rotating order, so the database's growth and any drift in the machine's
        # load fall on every mode alike.
        totals = {name: loadgen.Result(0, 0, 0.0, []) for name in modes}
        names = list(modes)
        for round_ in range(args.rounds):
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                result = run_load(gw_port, modes[name](), args.seconds)
                total = totals[name]
                total.requests += result.requests
                total.errors += result.errors
                total.seconds += result.seconds
                total.latencies += result.latencies
        base = report("static API key", totals["static API key"], None)
        bearer_rps = report("bearer capability", totals["bearer capability"], base)
        dpop_rps = report("DPoP (proof per call)", totals["DPoP (proof per call)"], base)
        print(f"DPoP costs {1 - dpop_rps / bearer_rps:.1%} of the bearer-token req/s")
        rate = issuance_rate(url, client_id, key, 300)
        print(f"token issuance         {rate:8,.0f} tokens/s (sequential, client assertion + DPoP)")
    finally:
        for proc in (gw, sim):
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
