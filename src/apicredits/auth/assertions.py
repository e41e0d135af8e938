"""Client keys and client assertions (RFC 7523 ``private_key_jwt``).

A tenant registers its services' public keys as JWKs: Ed25519 (``OKP``) or P-256 (``EC``) only,
public members only. A service proves possession of its private key with a short-lived signed
JWT, the client assertion: ``iss`` and ``sub`` are its client id, ``aud`` is the token endpoint
URL, and ``exp``, ``iat`` and ``jti`` are required. ``verify_client_assertion`` checks one and
returns the matching ``kid`` and its claims; remembering ``jti`` against replay is the caller's.

JWS signatures are PyJWT's (the JOSE library used throughout ``apicredits.auth``); framing and
JSON are parsed strictly here (canonical base64url, no duplicate JSON keys), since PyJWT accepts
both. PyJWT has no JWK thumbprint function; ``jwk_thumbprint`` uses the one of ``dpop``.

Errors: a bad registered JWK is ``InvalidInput``; a bad assertion is ``TokenError``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from apicredits import json_input
from apicredits.auth import dpop
from apicredits.auth.errors import TokenError
from apicredits.errors import InvalidInput

__all__ = [
    "ClientAssertion",
    "ClientPublicKey",
    "b64url",
    "jwk_thumbprint",
    "parse_client_jwk",
    "unb64url",
    "verify_client_assertion",
]

ClientPublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey

MAX_ASSERTION_CHARS = 4096
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_JWK_MEMBERS = frozenset({"kty", "crv", "x", "y", "kid", "alg", "use", "key_ops"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ALG_OF = {"OKP": "EdDSA", "EC": "ES256"}
_HEADER_KEYS = frozenset({"alg", "kid", "typ"})
_CLAIM_KEYS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti"})
_JWS = jwt.PyJWS()


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Strict inverse of ``b64url``: ``ValueError`` unless ``text`` is its canonical output."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as error:
        raise ValueError("not unpadded base64url") from error
    tail = len(data) % 3  # only the last, partial group can hide non-zero padding bits
    if tail and b64url(data[len(data) - tail :]) != text[len(text) - tail - 1 :]:
        raise ValueError("not canonical base64url")
    return data


def _unique_keys(items: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(items)
    if len(result) != len(items):
        raise ValueError("duplicate JSON key")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)


def strict_json(data: bytes) -> Any:
    """JSON that rejects duplicate object keys, non-finite numbers and nesting deeper than
    ``json_input.MAX_DEPTH`` (``ValueError``)."""
    text = data.decode("utf-8")
    json_input.check_depth(text)
    return _STRICT_JSON.decode(text)


def _coordinate(doc: Mapping[str, Any], name: str) -> bytes:
    value = doc.get(name)
    try:
        raw = unb64url(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidInput(f"JWK member {name} must be 32 bytes in base64url", field=name)
    return raw


def _checked(doc: object) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping) or not all(isinstance(k, str) for k in doc):
        raise InvalidInput("a JWK is a JSON object")
    if _PRIVATE_MEMBERS & set(doc):
        raise InvalidInput("register public keys only: the JWK has private members")
    if not set(doc) <= _JWK_MEMBERS:
        raise InvalidInput("the JWK has unsupported members")
    kty, crv = doc.get("kty"), doc.get("crv")
    if (kty, crv) not in [("OKP", "Ed25519"), ("EC", "P-256")] or not isinstance(kty, str):
        raise InvalidInput("only Ed25519 (OKP) and P-256 (EC) keys are accepted", field="kty")
    if kty == "OKP" and "y" in doc:
        raise InvalidInput("an OKP key has no y member", field="y")
    if "alg" in doc and doc["alg"] != _ALG_OF[kty]:
        raise InvalidInput(f"a {crv} key signs with {_ALG_OF[kty]}", field="alg")
    if "use" in doc and doc["use"] != "sig":
        raise InvalidInput('a client key is for signatures: use must be "sig"', field="use")
    if "kid" in doc and not isinstance(doc["kid"], str):
        raise InvalidInput("kid must be a string", field="kid")
    if doc.get("key_ops", ["verify"]) != ["verify"]:
        raise InvalidInput('key_ops may only be ["verify"]', field="key_ops")
    return doc


def parse_client_jwk(doc: object) -> ClientPublicKey:
    """The public key of a registered client JWK, or ``InvalidInput``."""
    jwk = _checked(doc)
    if jwk["kty"] == "OKP":
        return Ed25519PublicKey.from_public_bytes(_coordinate(jwk, "x"))
    x = int.from_bytes(_coordinate(jwk, "x"), "big")
    y = int.from_bytes(_coordinate(jwk, "y"), "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError as error:
        raise InvalidInput("the EC point is not on P-256") from error


def jwk_thumbprint(doc: object) -> str:
    """RFC 7638 thumbprint: base64url SHA-256 of the required members in canonical JSON."""
    jwk = _checked(doc)
    parse_client_jwk(jwk)
    return dpop.jwk_thumbprint(jwk)  # one RFC 7638 implementation, cached per key


@dataclass(frozen=True)
class ClientAssertion:
    """The verified claims of a client assertion."""

    client_id: str
    audience: str
    exp: int
    iat: int
    jti: str


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if type(value) is not int or not 0 <= value < 2**53:
        raise TokenError("malformed", f"client assertion claim {name} must be an integer")
    return value


def _text_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise TokenError("malformed", f"client assertion claim {name} must be a short string")
    return value


def verify_client_assertion(
    assertion: object,
    registered: Mapping[str, Mapping[str, Any]],
    *,
    audience: str,
    now: int,
    max_age: int = 300,
    leeway: int = 30,
    client_id: str | None = None,
) -> tuple[str, ClientAssertion]:
    """Check a client assertion signed by one of ``registered`` (kid -> JWK).

    ``client_id``, when given, must be the assertion's ``iss`` and ``sub``. Raises
    ``TokenError`` for the assertion and ``InvalidInput`` if a registered JWK is invalid.
    """
    if not isinstance(assertion, str) or not 0 < len(assertion) <= MAX_ASSERTION_CHARS:
        raise TokenError("malformed")
    parts = assertion.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header = strict_json(unb64url(parts[0]))
        payload = unb64url(parts[1])
        unb64url(parts[2])
    except ValueError as error:
        raise TokenError("malformed") from error
    if (
        not isinstance(header, dict)
        or not {"alg", "kid"} <= set(header) <= _HEADER_KEYS
        or header.get("typ", "JWT") != "JWT"
    ):
        raise TokenError("malformed", "client assertion header must be alg, kid and typ JWT")
    kid = header["kid"]
    jwk = registered.get(kid) if isinstance(kid, str) else None
    if jwk is None:
        raise TokenError("unknown_key")
    key = parse_client_jwk(jwk)
    if header["alg"] != _ALG_OF[jwk["kty"]]:
        raise TokenError("bad_signature", "the assertion alg does not match the registered key")
    try:
        _JWS.decode_complete(assertion, key, algorithms=[header["alg"]])
    except jwt.InvalidSignatureError as error:
        raise TokenError("bad_signature") from error
    except jwt.PyJWTError as error:
        raise TokenError("malformed") from error
    try:
        claims = strict_json(payload)
    except ValueError as error:
        raise TokenError("malformed") from error
    if not isinstance(claims, dict) or not set(claims) <= _CLAIM_KEYS:
        raise TokenError("malformed", "client assertion claims are iss, sub, aud, exp, iat, jti")
    iss, sub, jti = (_text_claim(claims, n) for n in ("iss", "sub", "jti"))
    exp, iat = _int_claim(claims, "exp"), _int_claim(claims, "iat")
    nbf = _int_claim(claims, "nbf") if "nbf" in claims else iat
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenError("malformed", "client assertion aud must be a string or strings")
    if iss != sub or (client_id is not None and iss != client_id):
        raise TokenError("wrong_issuer", "client assertion iss and sub must be the client id")
    if audience not in audiences:
        raise TokenError("wrong_audience")
    if now >= exp + leeway:
        raise TokenError("expired")
    if iat > now + leeway or nbf > now + leeway:
        raise TokenError("not_yet_valid")
    if exp > now + max_age or exp - iat > max_age:
        raise TokenError("lifetime_too_long", f"a client assertion lives at most {max_age}s")
    return kid, ClientAssertion(iss, audience, exp, iat, jti)
