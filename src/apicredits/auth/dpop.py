"""DPoP proofs (RFC 9449): a fresh JWS per request, signed by the key a capability is bound to.

``verify_proof`` is pure: it checks one proof against one request and returns a ``DPoPProof``.
The caller checks ``jti`` replay with ``check_and_remember`` (see ``replay``) and nonces with
``nonces.NonceSource``. Only the compact JWS framing is parsed here; JWK import and signature
verification are the ``cryptography`` package's (measured faster than joserfc and PyJWT: both
add their own parsing on top of the same OpenSSL calls).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from apicredits import json_input
from apicredits.auth.replay import ReplayCache
from apicredits.errors import Unauthorized

__all__ = [
    "DPoPError",
    "DPoPProof",
    "Reason",
    "ath_of",
    "check_and_remember",
    "jwk_thumbprint",
    "normalize_htu",
    "verify_proof",
]

Reason = Literal[
    "missing", "malformed", "wrong_typ", "wrong_alg", "bad_signature", "wrong_htm", "wrong_htu",
    "stale", "future", "replayed", "missing_ath", "wrong_ath", "use_dpop_nonce", "key_mismatch",
]  # fmt: skip

# Fixed texts: nothing the client sent is echoed into a response header.
_DESCRIPTIONS: dict[str, str] = {
    "missing": "a DPoP proof is required",
    "malformed": "the DPoP proof is not a well-formed JWS with a public jwk",
    "wrong_typ": 'the DPoP proof typ must be "dpop+jwt"',
    "wrong_alg": "the DPoP proof alg is not supported or does not match its jwk",
    "bad_signature": "the DPoP proof signature is invalid",
    "wrong_htm": "the DPoP proof htm does not match the request method",
    "wrong_htu": "the DPoP proof htu does not match the request URL",
    "stale": "the DPoP proof is too old",
    "future": "the DPoP proof is issued in the future",
    "replayed": "the DPoP proof was already used",
    "missing_ath": "the DPoP proof has no ath for the access token",
    "wrong_ath": "the DPoP proof ath does not match the access token",
    "use_dpop_nonce": "the DPoP proof must carry the nonce from the DPoP-Nonce header",
    "key_mismatch": "the DPoP proof key is not the key the token is bound to",
}
ALGORITHMS = ("EdDSA", "ES256")
_KEY_TYPES = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{86})")
_B64URL = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes: Ed25519 x, P-256 x and y
_MAX_PROOF = 4096
_ES256 = ec.ECDSA(hashes.SHA256())
# Ed25519 proofs are checked with libsodium (PyNaCl): measured here at ~65 µs a check against
# ~117 µs through OpenSSL, and a proof is checked on every request (bench/auth.py).
_PublicKey = VerifyKey | ec.EllipticCurvePublicKey


class DPoPError(Unauthorized):
    """A DPoP proof was refused; ``reason`` is a stable code, ``headers`` go on the 401."""

    code = "invalid_dpop_proof"

    def __init__(self, reason: Reason, *, nonce: str | None = None) -> None:
        super().__init__(_DESCRIPTIONS[reason], reason=reason)
        self.reason: Reason = reason
        self.nonce = nonce  # a fresh server nonce for the DPoP-Nonce header

    @property
    def www_authenticate(self) -> str:
        error = "use_dpop_nonce" if self.reason == "use_dpop_nonce" else "invalid_dpop_proof"
        algs = " ".join(ALGORITHMS)
        return f'DPoP error="{error}", error_description="{self.message}", algs="{algs}"'

    @property
    def headers(self) -> dict[str, str]:
        headers = {"WWW-Authenticate": self.www_authenticate}
        if self.nonce is not None:
            headers["DPoP-Nonce"] = self.nonce
        return headers


@dataclass(frozen=True, slots=True)
class DPoPProof:
    jkt: str
    jti: str
    htm: str
    htu: str
    iat: int
    nonce: str | None
    ath: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ath_of(access_token: str) -> str:
    """``ath``: base64url SHA-256 of the ASCII access token (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


@functools.lru_cache(maxsize=4096)
def _load_key(kty: str, crv: str, x: str, y: str | None) -> tuple[str, _PublicKey]:
    """(RFC 7638 thumbprint, key): cached by the members the thumbprint is made of."""
    if not _B64URL.fullmatch(x) or (y is not None and not _B64URL.fullmatch(y)):
        raise ValueError("jwk coordinates must be 32 bytes, base64url")
    key: _PublicKey
    if (kty, crv, y) == ("OKP", "Ed25519", None):
        members = {"crv": crv, "kty": kty, "x": x}
        key = VerifyKey(_unb64(x))
    elif (kty, crv) == ("EC", "P-256") and y is not None:
        members = {"crv": crv, "kty": kty, "x": x, "y": y}
        point = b"\x04" + _unb64(x) + _unb64(y)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # on-curve
    else:
        raise ValueError("only OKP/Ed25519 and EC/P-256 public keys are supported")
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest()), key


def _import(jwk: Mapping[str, Any]) -> tuple[str, _PublicKey]:
    if _PRIVATE_MEMBERS & jwk.keys():
        raise ValueError("the jwk carries private key material")
    kty, crv, x, y = (jwk.get(m) for m in ("kty", "crv", "x", "y"))
    if not (isinstance(kty, str) and isinstance(crv, str) and isinstance(x, str)):
        raise ValueError("the jwk needs string kty, crv and x")
    if y is not None and not isinstance(y, str):
        raise ValueError("the jwk y must be a string")
    return _load_key(kty, crv, x, y)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an OKP/Ed25519 or EC/P-256 public JWK."""
    return _import(jwk)[0]


_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pct(match: re.Match[str]) -> str:
    byte = int(match.group()[1:], 16)
    return chr(byte) if byte in _UNRESERVED else match.group().upper()


@functools.lru_cache(maxsize=1024)
def normalize_htu(url: str) -> str:
    """RFC 9449 §4.3 / RFC 3986 §6.2.2-6.2.3: lower-case scheme and host, no default port,
    "/" for an empty path, canonical percent-encoding, no query or fragment."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port  # raises ValueError on a bad port
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc += f":{port}"
    return f"{scheme}://{netloc}{_PCT.sub(_pct, parts.path) or '/'}"


def _decode(segment: str) -> Any:
    try:
        return json_input.loads(_unb64(segment))
    except (ValueError, binascii.Error, RecursionError):
        raise DPoPError("malformed") from None


def _same_htu(htu: str, url: str) -> bool:
    try:
        return normalize_htu(htu) == normalize_htu(url)
    except ValueError:
        return False


def _same_ath(ath: str, access_token: str) -> bool:
    try:
        return ath == ath_of(access_token)
    except ValueError:  # a non-ASCII token has no ath
        return False


def verify_proof(
    proof: str | None,
    *,
    method: str,
    url: str,
    now: int,
    access_token: str | None,
    expected_jkt: str | None,
    nonce_required: bool,
    nonce_check: Callable[[str | None, int], bool] | None,
    max_age: int = 300,
    skew: int = 30,
    issue_nonce: Callable[[int], str] | None = None,
) -> DPoPProof:
    """Check one DPoP proof against the request it came with; raise ``DPoPError`` if refused.

    ``issue_nonce`` (e.g. ``NonceSource.issue``) puts a fresh nonce on a ``use_dpop_nonce``
    error. The ``jti`` is not checked for replay here: see ``check_and_remember``.
    """
    if nonce_required and nonce_check is None:
        raise ValueError("nonce_required needs a nonce_check")
    if not proof:
        raise DPoPError("missing")
    match = _COMPACT.fullmatch(proof) if len(proof) <= _MAX_PROOF else None
    if match is None:
        raise DPoPError("malformed")
    header_b64, claims_b64, signature_b64 = match.groups()
    header, claims = _decode(header_b64), _decode(claims_b64)
    signature = _unb64(signature_b64)
    if not isinstance(header, dict) or not isinstance(claims, dict) or "crit" in header:
        raise DPoPError("malformed")
    # Unused low bits must be zero: another spelling of the same signature is not accepted.
    if _b64(signature) != signature_b64:
        raise DPoPError("malformed")
    if header.get("typ") != "dpop+jwt":
        raise DPoPError("wrong_typ")
    alg, jwk = header.get("alg"), header.get("jwk")
    if not isinstance(alg, str) or alg not in _KEY_TYPES:  # a list is not even hashable
        raise DPoPError("wrong_alg")
    if not isinstance(jwk, dict):
        raise DPoPError("malformed")
    if (jwk.get("kty"), jwk.get("crv")) != _KEY_TYPES[alg]:
        raise DPoPError("wrong_alg")
    try:
        jkt, key = _import(jwk)
    except ValueError:
        raise DPoPError("malformed") from None
    signing_input = proof[: match.end(2)].encode("ascii")
    try:
        if isinstance(key, VerifyKey):
            key.verify(signing_input, signature)
        else:  # JWS carries r || s; OpenSSL wants DER
            r, s = int.from_bytes(signature[:32]), int.from_bytes(signature[32:])
            key.verify(encode_dss_signature(r, s), signing_input, _ES256)
    except (InvalidSignature, BadSignatureError):
        raise DPoPError("bad_signature") from None

    htm, htu, iat, jti = (claims.get(c) for c in ("htm", "htu", "iat", "jti"))
    nonce, ath = claims.get("nonce"), claims.get("ath")
    if htm != method:
        raise DPoPError("wrong_htm")
    if not isinstance(htu, str) or not _same_htu(htu, url):
        raise DPoPError("wrong_htu")
    if isinstance(iat, float) and math.isfinite(iat):
        iat = int(iat)
    if isinstance(iat, bool) or not isinstance(iat, int):  # a huge int is fine: stale/future
        raise DPoPError("malformed")
    if iat < now - max_age:
        raise DPoPError("stale")
    if iat > now + skew:
        raise DPoPError("future")
    if not isinstance(jti, str) or not 0 < len(jti) <= 128:
        raise DPoPError("malformed")
    if not (nonce is None or isinstance(nonce, str)) or not (ath is None or isinstance(ath, str)):
        raise DPoPError("malformed")
    if access_token is not None:
        if ath is None:
            raise DPoPError("missing_ath")
        if not _same_ath(ath, access_token):
            raise DPoPError("wrong_ath")
    if expected_jkt is not None and jkt != expected_jkt:
        raise DPoPError("key_mismatch")
    if nonce_required and (nonce is None or nonce_check is None or not nonce_check(nonce, now)):
        raise DPoPError("use_dpop_nonce", nonce=issue_nonce(now) if issue_nonce else None)
    return DPoPProof(jkt, jti, method, htu, iat, nonce, ath)


async def check_and_remember(
    cache: ReplayCache, proof: DPoPProof, *, ttl_seconds: int = 300 + 30
) -> None:
    """Refuse a ``jti`` seen before for the same key. The TTL must cover the whole time a
    proof is acceptable: ``max_age + skew`` of ``verify_proof``."""
    if not await cache.remember(f"dpop:{proof.jkt}:{proof.jti}", ttl_seconds):
        raise DPoPError("replayed")
