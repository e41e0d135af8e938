"""DPoP proof verification and replay-cache latency, p50/p99 in microseconds.

    .venv/bin/python bench/auth_dpop.py [--iterations 20000] [--no-compare]

Every iteration verifies a distinct, freshly signed proof (its own jti) from one client key,
as a gateway sees them. ``--compare`` (the default) also times the signature step through
joserfc and PyJWT on the same proofs, the measurement behind using ``cryptography`` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from apicredits.auth.dpop import ath_of, verify_proof
from apicredits.auth.replay import MemoryReplayCache

URL = "https://api.example.com/v1/execute"
TOKEN = "capability.token.value"
NOW = 1_750_000_000
Key = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_proofs(key: Key, count: int) -> tuple[dict[str, str], list[str]]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().public_bytes_raw())}
    else:
        alg, n = "ES256", key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32)), "y": b64(n.y.to_bytes(32))}
    header = b64(json.dumps({"typ": "dpop+jwt", "alg": alg, "jwk": jwk}).encode())
    proofs = []
    for i in range(count):
        claims = {
            "jti": f"jti-{i:08d}",
            "htm": "POST",
            "htu": URL,
            "iat": NOW,
            "ath": ath_of(TOKEN),
        }
        signing_input = f"{header}.{b64(json.dumps(claims).encode())}".encode()
        if isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(signing_input)
        else:
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32) + s.to_bytes(32)
        proofs.append(f"{signing_input.decode()}.{b64(signature)}")
    return jwk, proofs


def percentiles(samples: list[int]) -> str:
    samples.sort()
    p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    return f"p50 {p50 / 1000:7.1f} µs   p99 {p99 / 1000:7.1f} µs   (n={len(samples)})"


def timed(name: str, items: list[Any], step: Callable[[Any], object]) -> None:
    for item in items[:200]:  # warm caches and the allocator
        step(item)
    samples = []
    for item in items:
        start = time.perf_counter_ns()
        step(item)
        samples.append(time.perf_counter_ns() - start)
    print(f"{name:42s} {percentiles(samples)}")


def verify(proof: str) -> object:
    return verify_proof(
        proof, method="POST", url=URL, now=NOW, access_token=TOKEN, expected_jkt=None,
        nonce_required=False, nonce_check=None,
    )  # fmt: skip


def floor_step(key: Key, proof: str) -> Callable[[object], None]:
    """The signature check alone on a ready key: what no implementation can go below."""
    signing_input, _, signature_b64 = proof.rpartition(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "==")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        public = key.public_key()
        return lambda _: public.verify(signature, signing_input.encode())
    der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
    ec_public = key.public_key()
    return lambda _: ec_public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))


def compare(alg: str, jwk: dict[str, str], proofs: list[str]) -> None:
    """The signature step alone (key import from the header included) in each library."""
    import jwt
    from joserfc import jws
    from joserfc.jwk import ECKey, OKPKey

    def joserfc_step(proof: str) -> object:
        header = json.loads(base64.urlsafe_b64decode(proof.split(".", 1)[0] + "=="))
        key = (OKPKey if alg == "EdDSA" else ECKey).import_key(header["jwk"])
        return jws.deserialize_compact(proof, key, algorithms=[alg])

    def pyjwt_step(proof: str) -> object:
        key = jwt.PyJWK(jwt.get_unverified_header(proof)["jwk"], algorithm=alg)
        return jwt.api_jws.decode_complete(proof, key.key, algorithms=[alg])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc: "EdDSA is deprecated via RFC 9864"
        timed(f"  joserfc deserialize_compact ({alg})", proofs, joserfc_step)
        timed(f"  PyJWT decode_complete ({alg})", proofs, pyjwt_step)


async def replay(iterations: int) -> None:
    cache = MemoryReplayCache()
    keys = [f"dpop:jkt:jti-{i:08d}" for i in range(iterations)]
    samples = []
    for key in keys:
        start = time.perf_counter_ns()
        await cache.remember(key, 330)
        samples.append(time.perf_counter_ns() - start)
    print(f"{'MemoryReplayCache.remember':42s} {percentiles(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    args = parser.parse_args()
    keys: dict[str, Key] = {
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
    }
    for alg, key in keys.items():
        jwk, proofs = make_proofs(key, args.iterations)
        timed(f"verify_proof ({alg})", proofs, verify)
        timed(f"  floor: OpenSSL verify alone ({alg})", proofs, floor_step(key, proofs[0]))
        if args.compare:
            compare(alg, jwk, proofs[: max(1, args.iterations // 4)])
    asyncio.run(replay(args.iterations))


if __name__ == "__main__":
    main()
