"""Latency of capability tokens: issue, verify (JWT) and decode (CWT), p50/p99 in µs.

    .venv/bin/python bench/auth_tokens.py [--iterations 20000]

"warm" presents the same token again (a service reuses its token for up to 15 minutes: the
signature is checked once per worker, later calls cost a lookup plus the per-call checks);
"cold" presents a fresh token every time (one Ed25519 verification each). The raw Ed25519
verification is printed as the floor of any cold verification on this machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from apicredits.auth import (
    CapabilityClaims,
    KeyRing,
    Revocations,
    decode_cwt,
    encode_cwt,
    issue_token,
    verify_token,
)

NOW = 1_700_000_000
JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _claims(i: int) -> CapabilityClaims:
    return CapabilityClaims.create(
        iss="https://gateway.example", aud="apicredits", sub=f"svc-{i % 50}", tenant_id="acme",
        scopes=("route:openai.chat", "route:anthropic.*", "model:sim-*"), jkt=JKT, now=NOW,
        project_id="search", spend_cap_micro=5_000_000, requests_per_minute=600,
        tokens_per_minute=100_000, max_concurrent=8, jti=f"bench-{i}",
    )  # fmt: skip


def _measure(name: str, step: Callable[[int], object], iterations: int) -> None:
    samples = []
    for i in range(iterations):
        start = time.perf_counter_ns()
        step(i)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    p50, p99 = samples[iterations // 2] / 1000, samples[iterations * 99 // 100] / 1000
    print(f"{name:<28} p50 {p50:8.1f} µs   p99 {p99:8.1f} µs")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    n = parser.parse_args(argv).iterations
    ring = KeyRing.create(NOW).rotate(NOW)  # a previous key too, as in production
    claims = [_claims(i) for i in range(n)]
    revoked = Revocations(jtis={f"revoked-{i}": NOW + 900 for i in range(1000)})
    check: dict[str, Any] = {"now": NOW + 1, "audience": "apicredits", "issuer": "https://gateway.example",
             "is_revoked": revoked.is_revoked, "jkt": JKT}  # fmt: skip

    tokens: list[str] = []
    _measure("issue_token", lambda i: tokens.append(issue_token(ring, claims[i])), n)
    cwts: list[bytes] = []
    _measure("encode_cwt", lambda i: cwts.append(encode_cwt(ring, claims[i])), n)
    _measure("verify_token (cold)", lambda i: verify_token(ring, tokens[i], **check), n)
    _measure("verify_token (warm)", lambda i: verify_token(ring, tokens[i % 100], **check), n)
    _measure("decode_cwt (cold)", lambda i: decode_cwt(ring, cwts[i], **check), n)
    _measure("decode_cwt (warm)", lambda i: decode_cwt(ring, cwts[i % 100], **check), n)
    message, signature = b"x" * 400, ring.current.private_key.sign(b"x" * 400)
    public = ring.current.public_key
    _measure("raw Ed25519 verify (floor)", lambda i: public.verify(signature, message), n)
    print(f"token sizes: JWT {len(tokens[0])} chars, CWT {len(cwts[0])} bytes")


if __name__ == "__main__":
    main()
