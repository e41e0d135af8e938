"""The capability authority: who may call what, for how much, proven by signed tokens.

Tenants register their services' public keys (``assertions.parse_client_jwk``); a service
proves possession of its private key with a client assertion (``verify_client_assertion``,
RFC 7523) and receives a short-lived capability token (``issue_token``, an RFC 9068 ``at+jwt``
signed with EdDSA by the gateway's ``KeyRing``; or ``encode_cwt``, the same claims as a
COSE/CWT for the ``Usage-Auth`` header). Each request presents the token with a DPoP proof
(``dpop``); ``verify_token``/``decode_cwt`` check it, ``cnf.jkt`` binds it to the proof's key,
``require_scope`` checks route and model, and ``Revocations`` cuts tokens off early.

Everything here is pure: storage, HTTP and Redis are wired by the gateway.
"""

from __future__ import annotations

from apicredits.auth.assertions import (
    ClientAssertion,
    ClientPublicKey,
    jwk_thumbprint,
    parse_client_jwk,
    verify_client_assertion,
)
from apicredits.auth.capabilities import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    CapabilityClaims,
    Scope,
    allows,
    issue_token,
    require_scope,
    verify_token,
)
from apicredits.auth.cwt import cwt_from_header, cwt_to_header, decode_cwt, encode_cwt
from apicredits.auth.errors import ScopeError, TokenError, TokenReason
from apicredits.auth.keys import DEFAULT_OVERLAP_SECONDS, KeyRing, SigningKey
from apicredits.auth.revocation import MemoryRevocationStore, Revocations, RevocationStore

__all__ = [
    "DEFAULT_OVERLAP_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "MAX_TTL_SECONDS",
    "CapabilityClaims",
    "ClientAssertion",
    "ClientPublicKey",
    "KeyRing",
    "MemoryRevocationStore",
    "RevocationStore",
    "Revocations",
    "Scope",
    "ScopeError",
    "SigningKey",
    "TokenError",
    "TokenReason",
    "allows",
    "cwt_from_header",
    "cwt_to_header",
    "decode_cwt",
    "encode_cwt",
    "issue_token",
    "jwk_thumbprint",
    "parse_client_jwk",
    "require_scope",
    "verify_client_assertion",
    "verify_token",
]
