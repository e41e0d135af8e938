"""The two signed JWTs a service sends: client assertions and DPoP proofs.

A client assertion (RFC 7523 ``private_key_jwt``) proves to the token endpoint that the caller
holds its service key; a DPoP proof (RFC 9449) proves, request by request, that the caller holds
the key its capability token is bound to. Both are compact JWS signed by a ``ServiceKey``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from apicredits.sdk.keys import ServiceKey, b64url

__all__ = ["ASSERTION_LIFETIME", "access_token_hash", "client_assertion", "dpop_proof", "htu_of"]

ASSERTION_LIFETIME = 60


def _jws(key: ServiceKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    def segment(part: dict[str, Any]) -> str:
        return b64url(json.dumps(part, separators=(",", ":")).encode("utf-8"))

    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"


def client_assertion(
    key: ServiceKey,
    *,
    client_id: str,
    audience: str,
    now: int,
    lifetime: int = ASSERTION_LIFETIME,
    jti: str | None = None,
) -> str:
    """A client assertion: ``iss = sub = client_id``, ``aud`` the token endpoint URL exactly,
    signed by ``key`` under its ``kid``."""
    header = {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
    }
    return _jws(key, header, claims)


def htu_of(url: str) -> str:
    """The DPoP ``htu`` of a request URL: the URL without its query and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def access_token_hash(access_token: str) -> str:
    """The DPoP ``ath``: base64url SHA-256 of the access token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def dpop_proof(
    key: ServiceKey,
    *,
    method: str,
    url: str,
    now: int,
    nonce: str | None = None,
    access_token: str | None = None,
    jti: str | None = None,
) -> str:
    """A DPoP proof for one request; ``access_token`` adds its ``ath`` (resource requests)."""
    header = {"typ": "dpop+jwt", "alg": key.algorithm, "jwk": key.public_jwk(with_kid=False)}
    claims: dict[str, Any] = {
        "htm": method.upper(),
        "htu": htu_of(url),
        "iat": now,
        "jti": jti or secrets.token_urlsafe(16),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    return _jws(key, header, claims)
