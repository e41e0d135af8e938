"""Capability tokens: what one service may call, for how much, until when, bound to its key.

A capability token is a JWT (RFC 9068 ``at+jwt``) signed by the gateway's current key with
EdDSA. Its claims (``CapabilityClaims``) are the standard ``iss aud sub client_id iat nbf exp
jti``, ``cnf.jkt`` (RFC 9449: the caller's key thumbprint), ``scope`` (space-separated, each
``route:<glob>`` or ``model:<glob>``, fnmatch-style) and the private ``tenant_id``,
``project_id``, ``spend_cap_micro``, ``requests_per_minute``, ``tokens_per_minute`` and
``max_concurrent`` (omitted when None). Tokens live 15 minutes by default, an hour at most.

``verify_token`` parses strictly (exact header ``{alg: EdDSA, typ: at+jwt, kid}``, exact claim
set, canonical base64url, no duplicate JSON keys, ints never bools or floats) and raises
``TokenError`` with a stable ``reason``. Ed25519 verification alone costs ~140 µs on the
reference machine, so tokens whose signature verified are remembered (by their exact text,
bounded, only ever gateway-signed ones) and a repeat costs a dict lookup plus the per-call
checks: key still verifying, issuer, audience, time, binding and revocation.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from apicredits.auth.assertions import strict_json, unb64url
from apicredits.auth.errors import ScopeError, TokenError
from apicredits.auth.keys import KeyRing, SigningKey
from apicredits.errors import InvalidInput
from apicredits.money import MAX_MICRO

__all__ = [
    "DEFAULT_TTL_SECONDS", "MAX_TTL_SECONDS", "CapabilityClaims", "Scope", "allows",
    "check_claims", "issue_token", "require_scope", "verify_token",
]  # fmt: skip

DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 3600
MAX_TOKEN_CHARS = 8192
MAX_SCOPES = 64
_MAX_LIMIT = 10**12
_NAME = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?")
_SCOPE = re.compile(r"(route|model):([\x21\x23-\x5b\x5d-\x7e]{1,200})")
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
_EDDSA = get_default_algorithms()["EdDSA"]
_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_OPTIONAL = ("project_id", "spend_cap_micro", "requests_per_minute", "tokens_per_minute",
             "max_concurrent")  # fmt: skip
_REQUIRED = frozenset({"iss", "aud", "sub", "client_id", "iat", "nbf", "exp", "jti", "cnf",
                       "scope", "tenant_id"})  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """One scope string, ``route:<glob>`` or ``model:<glob>``."""

    kind: str
    pattern: str

    @staticmethod
    def parse(text: object) -> Scope:
        if not isinstance(text, str):
            raise InvalidInput("a scope is a string")
        return _parse_scope(text)

    def matches(self, kind: str, value: str) -> bool:
        return self.kind == kind and fnmatch.fnmatchcase(value, self.pattern)


@functools.lru_cache(maxsize=4096)
def _parse_scope(text: str) -> Scope:
    match = _SCOPE.fullmatch(text)
    if match is None:
        raise InvalidInput(f"a scope is route:<glob> or model:<glob>, got {text[:210]!r}")
    return Scope(match[1], match[2])


def allows(scopes: Iterable[str], route: str, model: str | None = None) -> bool:
    """True if some scope allows ``route`` and, when a model is named, some scope allows it."""
    return _allows(tuple(scopes), route, model)


@functools.lru_cache(maxsize=8192)  # a principal's scopes give the same few answers every call
def _allows(scopes: tuple[str, ...], route: str, model: str | None) -> bool:
    parsed = [Scope.parse(s) for s in scopes]
    return any(s.matches("route", route) for s in parsed) and (
        model is None or any(s.matches("model", model) for s in parsed)
    )


def require_scope(scopes: Iterable[str], route: str, model: str | None = None) -> None:
    """``ScopeError`` (403 insufficient_scope) unless ``allows(scopes, route, model)``."""
    if not allows(scopes, route, model):
        needed = [f"route:{route}"] + ([f"model:{model}"] if model is not None else [])
        raise ScopeError(route, model, needed)


def _name(value: object, field: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(f"{field} must be 1-256 printable ASCII characters", field=field)


def _int(value: object, field: str, low: int, high: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if type(value) is not int or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer in [{low}, {high}]", field=field)


@dataclass(frozen=True)
class CapabilityClaims:
    iss: str
    aud: str
    sub: str
    tenant_id: str
    project_id: str | None
    scopes: tuple[str, ...]
    spend_cap_micro: int | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_concurrent: int | None
    iat: int
    nbf: int
    exp: int
    jti: str
    jkt: str

    def __post_init__(self) -> None:
        for field in ("iss", "aud", "sub", "tenant_id", "jti"):
            _name(getattr(self, field), field)
        if self.project_id is not None:
            _name(self.project_id, "project_id")
        if not isinstance(self.scopes, tuple) or not 1 <= len(self.scopes) <= MAX_SCOPES:
            raise InvalidInput(f"scopes is a tuple of 1 to {MAX_SCOPES} scopes", field="scopes")
        for scope in self.scopes:
            Scope.parse(scope)
        _int(self.spend_cap_micro, "spend_cap_micro", 0, MAX_MICRO, optional=True)
        for field in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
            _int(getattr(self, field), field, 1, _MAX_LIMIT, optional=True)
        for field in ("iat", "nbf", "exp"):
            _int(getattr(self, field), field, 0, 2**53 - 1)
        if not self.iat <= self.nbf < self.exp:
            raise InvalidInput("claims need iat <= nbf < exp", field="exp")
        if self.exp - self.iat > MAX_TTL_SECONDS:
            raise InvalidInput(f"a token lives at most {MAX_TTL_SECONDS}s", field="exp")
        if not isinstance(self.jkt, str) or not _JKT.fullmatch(self.jkt):
            raise InvalidInput("jkt is a base64url SHA-256 JWK thumbprint", field="jkt")

    @classmethod
    def create(
        cls, *, iss: str, aud: str, sub: str, tenant_id: str, scopes: Iterable[str], jkt: str,
        now: int, ttl: int = DEFAULT_TTL_SECONDS, project_id: str | None = None,
        spend_cap_micro: int | None = None, requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None, max_concurrent: int | None = None,
        jti: str | None = None,
    ) -> CapabilityClaims:  # fmt: skip
        """Claims issued at ``now`` for ``ttl`` seconds with a random ``jti``."""
        _int(ttl, "ttl", 1, MAX_TTL_SECONDS)
        return cls(
            iss, aud, sub, tenant_id, project_id, tuple(scopes), spend_cap_micro,
            requests_per_minute, tokens_per_minute, max_concurrent, now, now, now + ttl,
            jti or secrets.token_urlsafe(18), jkt,
        )  # fmt: skip

    def to_jwt_claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.iss, "aud": self.aud, "sub": self.sub, "client_id": self.sub,
            "iat": self.iat, "nbf": self.nbf, "exp": self.exp, "jti": self.jti,
            "cnf": {"jkt": self.jkt}, "scope": " ".join(self.scopes), "tenant_id": self.tenant_id,
        }  # fmt: skip
        claims.update((k, getattr(self, k)) for k in _OPTIONAL if getattr(self, k) is not None)
        return claims

    @classmethod
    def from_jwt_claims(cls, claims: object) -> CapabilityClaims:
        """Strict inverse of ``to_jwt_claims``; ``TokenError`` for anything else."""
        if not isinstance(claims, dict) or not _REQUIRED <= set(claims) <= _REQUIRED | set(
            _OPTIONAL
        ):
            raise TokenError("malformed", "the token claims are not a capability claim set")
        cnf, scope = claims["cnf"], claims["scope"]
        if not isinstance(cnf, dict) or set(cnf) != {"jkt"} or not isinstance(scope, str):
            raise TokenError("malformed", "cnf must be {jkt} and scope a string")
        if claims["client_id"] != claims["sub"]:
            raise TokenError("malformed", "client_id must equal sub")
        fields = {**claims, "scopes": tuple(scope.split(" ")), "jkt": cnf["jkt"]}
        return claims_from_fields(cls, fields)


def claims_from_fields(cls: type[CapabilityClaims], fields: Mapping[str, Any]) -> CapabilityClaims:
    """Claims from decoded fields: ``lifetime_too_long`` or ``malformed`` if invalid."""
    if any(name in fields and fields[name] is None for name in _OPTIONAL):
        raise TokenError("malformed", "absent optional claims are omitted, never null")
    iat, exp = fields.get("iat"), fields.get("exp")
    if type(iat) is int and type(exp) is int and exp - iat > MAX_TTL_SECONDS:
        raise TokenError("lifetime_too_long")
    try:
        return cls(
            fields["iss"], fields["aud"], fields["sub"], fields["tenant_id"],
            fields.get("project_id"), fields["scopes"], fields.get("spend_cap_micro"),
            fields.get("requests_per_minute"), fields.get("tokens_per_minute"),
            fields.get("max_concurrent"), fields["iat"], fields["nbf"], fields["exp"],
            fields["jti"], fields["jkt"],
        )  # fmt: skip
    except InvalidInput as error:
        raise TokenError("malformed", f"invalid claim: {error.message}") from error


def issue_token(ring: KeyRing, claims: CapabilityClaims, now: int | None = None) -> str:
    """The JWS compact capability token for ``claims``, signed by the ring's current key.

    With ``now``, refuses (``InvalidInput``) claims that would already be expired.
    """
    if now is not None and now >= claims.exp:
        raise InvalidInput("the claims have already expired", field="exp")
    key = ring.current
    return jwt.encode(
        claims.to_jwt_claims(), key.private_key, algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": key.kid},
    )  # fmt: skip


class VerifiedCache:
    """Bounded memo of signature-verified tokens: token -> (kid, public key, claims)."""

    def __init__(self, size: int = 16384) -> None:
        self._size = size
        self._entries: dict[str | bytes, tuple[str, bytes, CapabilityClaims]] = {}

    def get(self, ring: KeyRing, token: str | bytes, now: int) -> CapabilityClaims | None:
        hit = self._entries.get(token)
        if hit is None:
            return None
        key = ring.verification_key(hit[0], now)  # a retired key fails even when remembered
        return hit[2] if key.public_raw == hit[1] else None

    def put(self, token: str | bytes, key: SigningKey, claims: CapabilityClaims) -> None:
        if len(self._entries) >= self._size:
            # oldest first; a concurrent eviction of the same entry is harmless
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                del self._entries[next(iter(self._entries))]
        self._entries[token] = (key.kid, key.public_raw, claims)

    def clear(self) -> None:
        self._entries.clear()


_VERIFIED = VerifiedCache()


def _verify_signature(ring: KeyRing, token: str, now: int) -> CapabilityClaims:
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header = strict_json(unb64url(parts[0]))
        payload, signature = unb64url(parts[1]), unb64url(parts[2])
    except ValueError as error:
        raise TokenError("malformed") from error
    if not isinstance(header, dict) or set(header) != _HEADER_KEYS:
        raise TokenError("malformed", "the token header must be exactly alg, typ and kid")
    if header["typ"] != "at+jwt":
        raise TokenError("malformed", 'the token typ must be "at+jwt"')
    if header["alg"] != "EdDSA":
        raise TokenError("bad_signature", "only EdDSA capability tokens are accepted")
    key = ring.verification_key(header["kid"], now)
    if not _EDDSA.verify(f"{parts[0]}.{parts[1]}".encode(), key.public_key, signature):
        raise TokenError("bad_signature")
    try:
        document = strict_json(payload)
    except ValueError as error:
        raise TokenError("malformed") from error
    claims = CapabilityClaims.from_jwt_claims(document)
    _VERIFIED.put(token, key, claims)
    return claims


def check_claims(
    claims: CapabilityClaims, *, now: int, audience: str, issuer: str, leeway: int = 30,
    is_revoked: Callable[[CapabilityClaims], bool] | None = None, jkt: str | None = None,
) -> CapabilityClaims:  # fmt: skip
    """The per-call checks shared by JWT and CWT tokens, after the signature."""
    if claims.iss != issuer:
        raise TokenError("wrong_issuer")
    if claims.aud != audience:
        raise TokenError("wrong_audience")
    if now >= claims.exp + leeway:
        raise TokenError("expired")
    if now + leeway < claims.nbf:
        raise TokenError("not_yet_valid")
    if jkt is not None and jkt != claims.jkt:
        raise TokenError("token_bound_to_other_key")
    if is_revoked is not None and is_revoked(claims):
        raise TokenError("revoked")
    return claims


def verify_token(
    ring: KeyRing, token: object, *, now: int, audience: str, issuer: str, leeway: int = 30,
    is_revoked: Callable[[CapabilityClaims], bool] | None = None, jkt: str | None = None,
) -> CapabilityClaims:  # fmt: skip
    """The claims of a valid capability token, else ``TokenError`` with its reason.

    ``jkt``, when given (the thumbprint of the DPoP proof's key), must be the token's cnf.jkt.
    """
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        raise TokenError("malformed")
    claims = _VERIFIED.get(ring, token, now) or _verify_signature(ring, token, now)
    return check_claims(
        claims, now=now, audience=audience, issuer=issuer, leeway=leeway,
        is_revoked=is_revoked, jkt=jkt,
    )  # fmt: skip
