"""A service's private key: loads it, names it, signs with it.

``ServiceKey`` wraps an Ed25519 (JWS alg ``EdDSA``) or P-256 (``ES256``) private key. Register
``public_jwk()`` with the gateway; its ``kid`` defaults to the key's RFC 7638 thumbprint (which
is also the DPoP ``jkt`` the capability token is bound to). ``sign`` returns JWS signature
bytes: Ed25519's 64 bytes, or ES256's ``r || s`` (32 bytes each, not DER).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    KeySerializationEncryption,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from apicredits.sdk.errors import InvalidKey

__all__ = ["Algorithm", "Curve", "ServiceKey"]

Curve = Literal["Ed25519", "P-256"]
Algorithm = Literal["EdDSA", "ES256"]
PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
_ES256 = ec.ECDSA(hashes.SHA256())


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidKey(f"JWK member {name} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidKey(f"JWK member {name} is not base64url") from error


class ServiceKey:
    """An Ed25519 or P-256 private key and the ``kid`` it is registered under."""

    __slots__ = ("_key", "_public_jwk", "kid")

    def __init__(self, private_key: PrivateKey, *, kid: str | None = None) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise InvalidKey(f"EC keys must be on P-256, not {private_key.curve.name}")
        elif not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidKey("a service key is an Ed25519 or P-256 private key")
        self._key = private_key
        self._public_jwk = _public_members(private_key)
        self.kid: str = kid if kid is not None else self.thumbprint()
        if not self.kid:
            raise InvalidKey("kid must not be empty")

    @classmethod
    def generate(cls, curve: Curve = "Ed25519", *, kid: str | None = None) -> ServiceKey:
        """A fresh random key."""
        if curve == "Ed25519":
            return cls(Ed25519PrivateKey.generate(), kid=kid)
        if curve == "P-256":
            return cls(ec.generate_private_key(ec.SECP256R1()), kid=kid)
        raise InvalidKey(f"curve must be Ed25519 or P-256, not {curve!r}")

    @classmethod
    def from_pem(
        cls, data: bytes | str, *, password: bytes | None = None, kid: str | None = None
    ) -> ServiceKey:
        """A key from PEM (PKCS#8, or SEC1 for EC), encrypted when ``password`` is given."""
        pem = data.encode("ascii") if isinstance(data, str) else data
        try:
            private = load_pem_private_key(pem, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise InvalidKey(f"not a readable PEM private key: {error}") from error
        if not isinstance(private, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidKey("a service key is an Ed25519 or P-256 private key")
        return cls(private, kid=kid)

    @classmethod
    def from_pem_file(
        cls, path: str | Path, *, password: bytes | None = None, kid: str | None = None
    ) -> ServiceKey:
        return cls.from_pem(Path(path).read_bytes(), password=password, kid=kid)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object] | str, *, kid: str | None = None) -> ServiceKey:
        """A key from a private JWK (an ``OKP``/``Ed25519`` or ``EC``/``P-256`` one with ``d``).

        The ``kid`` is the argument, else the JWK's ``kid``, else the thumbprint. Public members,
        when present, must match the private key.
        """
        try:
            doc = json.loads(jwk) if isinstance(jwk, str) else jwk
        except ValueError as error:
            raise InvalidKey("the JWK is not JSON") from error
        if not isinstance(doc, Mapping):
            raise InvalidKey("a JWK is a JSON object")
        kind, d = (doc.get("kty"), doc.get("crv")), _unb64url(doc.get("d"), "d")
        private: PrivateKey
        try:
            if kind == ("OKP", "Ed25519"):
                private = Ed25519PrivateKey.from_private_bytes(d)
            elif kind == ("EC", "P-256") and len(d) == 32:
                private = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
            else:
                raise InvalidKey("only OKP/Ed25519 and EC/P-256 private JWKs are supported")
        except ValueError as error:
            raise InvalidKey(f"the JWK private key is invalid: {error}") from error
        public = _public_members(private)
        for member in ("x", "y"):
            if member in doc and doc[member] != public.get(member):
                raise InvalidKey(f"JWK member {member} does not match the private key")
        named = doc.get("kid")
        if kid is None and named is not None:
            if not isinstance(named, str):
                raise InvalidKey("JWK member kid must be a string")
            kid = named
        return cls(private, kid=kid)

    @property
    def curve(self) -> Curve:
        return "Ed25519" if isinstance(self._key, Ed25519PrivateKey) else "P-256"

    @property
    def algorithm(self) -> Algorithm:
        """The JWS ``alg`` this key signs with."""
        return "EdDSA" if isinstance(self._key, Ed25519PrivateKey) else "ES256"

    def public_jwk(self, *, with_kid: bool = True) -> dict[str, str]:
        """The public JWK to register (with ``kid``, ``alg`` and ``use``), or only the
        required members (``with_kid=False``: what a DPoP proof header carries)."""
        jwk = dict(self._public_jwk)
        if with_kid:
            jwk |= {"kid": self.kid, "alg": self.algorithm, "use": "sig"}
        return jwk

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint of the public key (the DPoP ``jkt``)."""
        canonical = json.dumps(self._public_jwk, separators=(",", ":"), sort_keys=True)
        return b64url(hashlib.sha256(canonical.encode("ascii")).digest())

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of ``data`` (64 bytes for both algorithms)."""
        if isinstance(self._key, Ed25519PrivateKey):
            return self._key.sign(data)
        r, s = decode_dss_signature(self._key.sign(data, _ES256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def private_pem(self, password: bytes | None = None) -> bytes:
        """SECRET: the private key as PKCS#8 PEM, encrypted when ``password`` is given."""
        encryption: KeySerializationEncryption = (
            BestAvailableEncryption(password) if password else NoEncryption()
        )
        return self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)

    def __repr__(self) -> str:
        return f"ServiceKey({self.curve}, kid={self.kid!r})"


def _public_members(private: PrivateKey) -> dict[str, str]:
    """The RFC 7638 required members of the public JWK, in lexicographic order."""
    if isinstance(private, Ed25519PrivateKey):
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    numbers = private.public_key().public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
