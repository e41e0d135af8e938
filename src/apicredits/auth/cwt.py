"""The compact form of a capability token: a CWT (RFC 8392) in a COSE_Sign1 (RFC 9052).

pycose 1.1 cannot decode messages with the installed cbor2 6 (arrays inside tags decode as
tuples, which pycose rejects), so this module builds COSE_Sign1 with cbor2 and signs with
``cryptography``, following RFC 9052 section 4.4 exactly: the signature is Ed25519 over
``Sig_structure = ["Signature1", protected, h'', payload]``.

    COSE_Sign1 = 18([protected: bstr .cbor {1: -8 (EdDSA), 4: kid (bstr, ASCII)},
                     unprotected: {}, payload: bstr .cbor Claims, signature: bstr(64)])

    Claims  1 iss   tstr          -65537 tenant_id            tstr
            2 sub   tstr          -65538 project_id           tstr   (omitted when None)
            3 aud   tstr          -65539 scopes               [+ tstr]
            4 exp   uint          -65540 spend_cap_micro      uint   (omitted when None)
            5 nbf   uint          -65541 requests_per_minute  uint   (omitted when None)
            6 iat   uint          -65542 tokens_per_minute    uint   (omitted when None)
            7 cti   bstr (jti)    -65543 max_concurrent       uint   (omitted when None)
            8 cnf   {"jkt": bstr(32)}  the raw SHA-256 JWK thumbprint of the caller's key

Negative keys below -65536 are RFC 8392's private-use range. ``decode_cwt`` runs the checks of
``verify_token`` and raises the same ``TokenError`` reasons. The ``Usage-Auth`` header carries
the bytes as unpadded base64url (``cwt_to_header`` / ``cwt_from_header``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature

from apicredits.auth.assertions import b64url, unb64url
from apicredits.auth.capabilities import (
    CapabilityClaims,
    VerifiedCache,
    check_claims,
    claims_from_fields,
)
from apicredits.auth.errors import TokenError
from apicredits.auth.keys import KeyRing

__all__ = ["MAX_CWT_BYTES", "cwt_from_header", "cwt_to_header", "decode_cwt", "encode_cwt"]

MAX_CWT_BYTES = 4096
_COSE_SIGN1_TAG = 18
_ALG, _KID, _EDDSA = 1, 4, -8
_STANDARD = {1: "iss", 2: "sub", 3: "aud", 4: "exp", 5: "nbf", 6: "iat"}
_PRIVATE = {
    -65537: "tenant_id", -65538: "project_id", -65539: "scopes", -65540: "spend_cap_micro",
    -65541: "requests_per_minute", -65542: "tokens_per_minute", -65543: "max_concurrent",
}  # fmt: skip
_KEY_OF = {name: key for key, name in (_STANDARD | _PRIVATE).items()}
_REQUIRED = frozenset({1, 2, 3, 4, 5, 6, 7, 8, -65537, -65539})
_ALLOWED = frozenset(_STANDARD) | frozenset(_PRIVATE) | {7, 8}
_VERIFIED = VerifiedCache()


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def encode_cwt(ring: KeyRing, claims: CapabilityClaims) -> bytes:
    """``claims`` as a COSE_Sign1-wrapped CWT signed by the ring's current key."""
    key = ring.current
    document: dict[int, Any] = {7: claims.jti.encode("ascii"), 8: {"jkt": unb64url(claims.jkt)}}
    for name, label in _KEY_OF.items():
        value = getattr(claims, name)
        if value is not None:
            document[label] = list(value) if name == "scopes" else value
    payload = cbor2.dumps(document)
    protected = cbor2.dumps({_ALG: _EDDSA, _KID: key.kid.encode("ascii")})
    signature = key.private_key.sign(_sig_structure(protected, payload))
    return cbor2.dumps(cbor2.CBORTag(_COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def _loads(data: bytes) -> Any:
    # Only the gateway issues CWTs, so a valid one is in exactly the encoding cbor2 writes:
    # re-encoding and comparing rejects duplicate keys, indefinite lengths and odd encodings
    # with any cbor2 version (the 5.x line that py-evm pins has no strict decoding flags).
    try:
        value = cbor2.loads(data)
        canonical = cbor2.dumps(value)
    except (cbor2.CBORError, ValueError, TypeError, LookupError, OverflowError, RecursionError):
        raise TokenError("malformed") from None
    if canonical != data:
        raise TokenError("malformed", "not in the encoding the gateway issues")
    return value


def _verify_signature(ring: KeyRing, data: bytes, now: int) -> CapabilityClaims:
    message = _loads(data)
    if not isinstance(message, cbor2.CBORTag) or message.tag != _COSE_SIGN1_TAG:
        raise TokenError("malformed", "not a tagged COSE_Sign1")
    body = message.value
    if not isinstance(body, list | tuple) or len(body) != 4:
        raise TokenError("malformed", "a COSE_Sign1 has four members")
    protected, unprotected, payload, signature = body
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)):
        raise TokenError("malformed", "protected, payload and signature are byte strings")
    if not isinstance(unprotected, Mapping) or unprotected:
        raise TokenError("malformed", "the unprotected header must be empty")
    header = _loads(protected)
    if not isinstance(header, Mapping) or set(header) != {_ALG, _KID}:
        raise TokenError("malformed", "the protected header must be exactly alg and kid")
    if header[_ALG] != _EDDSA or type(header[_ALG]) is not int:
        raise TokenError("bad_signature", "only EdDSA capability tokens are accepted")
    kid = header[_KID]
    if not isinstance(kid, bytes) or not kid.isascii():
        raise TokenError("unknown_key")
    key = ring.verification_key(kid.decode("ascii"), now)
    try:
        key.public_key.verify(signature, _sig_structure(protected, payload))
    except InvalidSignature:
        raise TokenError("bad_signature") from None
    claims = _claims(_loads(payload))
    _VERIFIED.put(data, key, claims)
    return claims


def _claims(document: object) -> CapabilityClaims:
    if not isinstance(document, Mapping) or not _REQUIRED <= set(document) <= _ALLOWED:
        raise TokenError("malformed", "the CWT claims are not a capability claim set")
    fields = {
        name: document[key] for key, name in (_STANDARD | _PRIVATE).items() if key in document
    }
    cti, cnf, scopes = document[7], document[8], document[-65539]
    if not isinstance(cti, bytes) or not cti.isascii():
        raise TokenError("malformed", "cti must be an ASCII byte string")
    if not isinstance(cnf, Mapping) or set(cnf) != {"jkt"} or not isinstance(cnf["jkt"], bytes):
        raise TokenError("malformed", 'cnf must be {"jkt": bstr}')
    if not isinstance(scopes, list | tuple):
        raise TokenError("malformed", "scopes must be an array")
    fields |= {"jti": cti.decode("ascii"), "jkt": b64url(cnf["jkt"]), "scopes": tuple(scopes)}
    return claims_from_fields(CapabilityClaims, fields)


def decode_cwt(
    ring: KeyRing, data: object, *, now: int, audience: str, issuer: str, leeway: int = 30,
    is_revoked: Callable[[CapabilityClaims], bool] | None = None, jkt: str | None = None,
) -> CapabilityClaims:  # fmt: skip
    """The claims of a valid CWT capability token; ``TokenError`` like ``verify_token``."""
    if not isinstance(data, bytes) or not 0 < len(data) <= MAX_CWT_BYTES:
        raise TokenError("malformed")
    claims = _VERIFIED.get(ring, data, now) or _verify_signature(ring, data, now)
    return check_claims(
        claims, now=now, audience=audience, issuer=issuer, leeway=leeway,
        is_revoked=is_revoked, jkt=jkt,
    )  # fmt: skip


def cwt_to_header(data: bytes) -> str:
    """The ``Usage-Auth`` header value: unpadded base64url."""
    return b64url(data)


def cwt_from_header(value: object) -> bytes:
    """Inverse of ``cwt_to_header``; ``TokenError("malformed")`` for anything else."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CWT_BYTES * 4 // 3 + 4:
        raise TokenError("malformed")
    try:
        return unb64url(value)
    except ValueError:
        raise TokenError("malformed") from None
