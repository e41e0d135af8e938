"""What capability access costs at the gateway: req/s with DPoP, bearer tokens and static keys.

    .venv/bin/python bench/auth.py [--seconds 5]

Starts the provider simulator and one gateway worker (SQLite, in-process limits and replay
cache), registers a service, and measures non-streaming chat at 8 connections three ways, in
one run: a static API key (the legacy opt-in), a bearer capability token, and a DPoP-bound
token with a fresh proof (own ``jti``, server nonce, ``ath``) on every request — the proofs are
signed before the run so the load generator's CPU does not count. Also: how fast
``POST /v1/capabilities`` issues tokens (sequential, DPoP with nonce).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
from apicredits.sdk import CapabilityAuth, ServiceKey, client_assertion, dpop_proof
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
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
            f"upstream; non-streaming chat, {args.seconds:.0f} s per figure"
        )

        def fixed(headers: dict[str, str]) -> bytes:
            return loadgen.build_request("127.0.0.1", gw_port, PATH, BODY, headers)

        run_load(gw_port, fixed({"Authorization": f"Bearer {api_key}"}), 1.0)  # warm up
        base = report(
            "static API key",
            run_load(gw_port, fixed({"Authorization": f"Bearer {api_key}"}), args.seconds),
            None,
        )
        report(
            "bearer capability",
            run_load(gw_port, fixed({"Authorization": f"Bearer {bearer}"}), args.seconds),
            base,
        )
        count = int(max(base, 500) * args.seconds * 1.5)
        signing = time.perf_counter()
        proofs = [
            fixed(
                {
                    "Authorization": f"DPoP {dpop}",
                    "DPoP": dpop_proof(
                        key, method="POST", url=url + PATH, now=int(time.time()), nonce=nonce,
                        access_token=dpop,
                    ),
                }
            )
            for _ in range(count)
        ]  # fmt: skip
        signing = time.perf_counter() - signing
        report("DPoP (proof per call)", run_load(gw_port, proofs, args.seconds), base)
        print(f"(signed {count:,} proofs beforehand in {signing:.1f} s, outside the measurement)")
        rate = issuance_rate(url, client_id, key, 300)
        print(f"token issuance         {rate:8,.0f} tokens/s (sequential, client assertion + DPoP)")
    finally:
        for proc in (gw, sim):
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
