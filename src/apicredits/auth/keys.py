"""The gateway's token signing keys: one current Ed25519 key signs, retired keys still verify.

A ``KeyRing`` holds the current ``SigningKey`` and the keys it replaced. ``rotate(now)`` makes a
new current key and retires the old one at ``now``; a retired key keeps verifying tokens until
``retired_at + overlap_seconds`` (default one hour, the longest token lifetime, so every token
signed before a rotation lives out its life) and is then reported as ``key_retired``. Keys retired
for more than twice the overlap are dropped at the next rotation and become ``unknown_key``.

A key's ``kid`` is its RFC 7638 JWK thumbprint. ``jwks(now)`` is the public document served at
``/.well-known/jwks.json``. ``to_document()`` is SECRET: it holds every private key in PEM
(PKCS#8); ``load_or_create`` keeps it in a file of mode 0600.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from apicredits.auth.assertions import b64url, jwk_thumbprint
from apicredits.auth.errors import TokenError
from apicredits.errors import InvalidInput
from apicredits.secret_files import write_secret

__all__ = ["DEFAULT_OVERLAP_SECONDS", "KeyRing", "SigningKey"]

DEFAULT_OVERLAP_SECONDS = 3600
_DOCUMENT_VERSION = 1


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 signing key; ``retired_at`` is None while it is (or was never replaced as)
    the current key."""

    kid: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    created_at: int
    retired_at: int | None = None
    public_key: Ed25519PublicKey = field(init=False, repr=False, compare=False)
    public_raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, Ed25519PrivateKey):
            raise InvalidInput("a signing key is an Ed25519 private key")
        public = self.private_key.public_key()
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "public_raw", public.public_bytes(Encoding.Raw, PublicFormat.Raw))
        if self.kid != jwk_thumbprint(self.public_jwk(with_kid=False)):
            raise InvalidInput("a signing key's kid is the thumbprint of its public key")
        _time(self.created_at, "created_at")
        if self.retired_at is not None and _time(self.retired_at, "retired_at") < self.created_at:
            raise InvalidInput("a key cannot retire before it is created", field="retired_at")

    @classmethod
    def generate(cls, now: int) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        return cls(_kid_of(private), private, now)

    def public_jwk(self, *, with_kid: bool = True) -> dict[str, str]:
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(self.public_raw)}
        if with_kid:
            jwk |= {"kid": self.kid, "alg": "EdDSA", "use": "sig"}
        return jwk

    def verifies_at(self, now: int, overlap_seconds: int) -> bool:
        return self.retired_at is None or now < self.retired_at + overlap_seconds


@dataclass(frozen=True)
class KeyRing:
    """The current signing key first, then retired keys, newest first."""

    current: SigningKey
    previous: tuple[SigningKey, ...] = ()
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
    _by_kid: Mapping[str, SigningKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current.retired_at is not None:
            raise InvalidInput("the current signing key cannot be retired")
        if any(key.retired_at is None for key in self.previous):
            raise InvalidInput("previous signing keys must carry retired_at")
        _time(self.overlap_seconds, "overlap_seconds")
        keys = (self.current, *self.previous)
        by_kid = {key.kid: key for key in keys}
        if len(by_kid) != len(keys):
            raise InvalidInput("signing key ids must be unique")
        object.__setattr__(self, "_by_kid", MappingProxyType(by_kid))

    @classmethod
    def create(cls, now: int, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS) -> KeyRing:
        return cls(SigningKey.generate(now), (), overlap_seconds)

    def rotate(self, now: int) -> KeyRing:
        """A ring with a fresh current key; the old one retires at ``now``."""
        old = self.current
        retired = SigningKey(old.kid, old.private_key, old.created_at, now)
        keep = tuple(
            key for key in self.previous if now < (key.retired_at or 0) + 2 * self.overlap_seconds
        )
        return KeyRing(SigningKey.generate(now), (retired, *keep), self.overlap_seconds)

    def verification_key(self, kid: object, now: int) -> SigningKey:
        """The key ``kid`` names if it still verifies at ``now``, else ``TokenError``."""
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown_key")
        if not key.verifies_at(now, self.overlap_seconds):
            raise TokenError("key_retired")
        return key

    def jwks(self, now: int) -> dict[str, Any]:
        """The public JWKS document: only keys that still verify at ``now``."""
        keys = (self.current, *self.previous)
        return {"keys": [k.public_jwk() for k in keys if k.verifies_at(now, self.overlap_seconds)]}

    def to_document(self) -> dict[str, Any]:
        """SECRET: every private key in PEM. Store it like a password."""
        return {
            "version": _DOCUMENT_VERSION,
            "overlap_seconds": self.overlap_seconds,
            "keys": [_key_document(key) for key in (self.current, *self.previous)],
        }

    @classmethod
    def from_document(cls, document: object) -> KeyRing:
        if (
            not isinstance(document, dict)
            or set(document) != {"version", "overlap_seconds", "keys"}
            or document["version"] != _DOCUMENT_VERSION
            or not isinstance(document["keys"], list)
            or not document["keys"]
        ):
            raise InvalidInput("not a version 1 key ring document")
        keys = [_key_from_document(item) for item in document["keys"]]
        return cls(keys[0], tuple(keys[1:]), document["overlap_seconds"])

    def save(self, path: Path) -> None:
        """Write the (secret) document to ``path`` atomically, mode 0600."""
        _write_secret(Path(path), self.to_document(), replace=True)

    @classmethod
    def load_or_create(
        cls, path: Path, now: int, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
    ) -> KeyRing:
        """The ring stored at ``path``, created (mode 0600, parents too) if missing."""
        path = Path(path)
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        ring = cls.create(now, overlap_seconds)
        if not _write_secret(path, ring.to_document(), replace=False):
            return cls._load(path)  # another process created it meanwhile
        return ring

    @classmethod
    def _load(cls, path: Path) -> KeyRing:
        try:
            document = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidInput(f"{path} does not hold a key ring document") from error
        return cls.from_document(document)


def _time(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    return value


def _kid_of(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)})


def _key_document(key: SigningKey) -> dict[str, Any]:
    pem = key.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return {
        "kid": key.kid,
        "private_key_pem": pem.decode("ascii"),
        "created_at": key.created_at,
        "retired_at": key.retired_at,
    }


def _key_from_document(item: object) -> SigningKey:
    if not isinstance(item, dict) or set(item) != {
        "kid", "private_key_pem", "created_at", "retired_at"
    } or not isinstance(item["private_key_pem"], str):  # fmt: skip
        raise InvalidInput("not a signing key document")
    try:
        private = load_pem_private_key(item["private_key_pem"].encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidInput("a signing key document holds an unencrypted Ed25519 PEM key")
    return SigningKey(item["kid"], private, item["created_at"], item["retired_at"])


def _write_secret(path: Path, document: dict[str, Any], *, replace: bool) -> bool:
    return write_secret(path, json.dumps(document, indent=2).encode(), replace=replace)
