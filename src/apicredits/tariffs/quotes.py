"""Quotes: the worst-case price of a planned job under one tariff version, signed and expiring.

A quote is signed with Ed25519 over its canonical JSON (sorted keys, no whitespace, UTF-8, no
ASCII escaping); the signature travels as unpadded base64url next to the signer's ``key_id``
(first 16 hex digits of the SHA-256 of the raw public key). Documents are parsed strictly —
exact field sets, ints never bools or floats, canonical base64 — so no two distinct documents
carry the same signed quote, and ``verify_quote`` turns anything malformed into
``QuoteInvalid(reason="malformed")`` rather than another error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from apicredits.errors import ApicreditsError, InvalidInput, QuoteInvalid
from apicredits.money import MAX_MICRO
from apicredits.tariffs.pricing import worst_case_micro
from apicredits.tariffs.ratecard import TariffBook, require_name
from apicredits.tariffs.units import Unit, require_count, require_usage

MAX_CALLS = 1000
_SIGNATURE_CHARS = 86  # 64 bytes of Ed25519 signature in unpadded base64url
_QUOTE_KEYS = frozenset(
    {"quote_id", "tariff_version", "lines", "total_micro", "issued_at", "expires_at", "tenant_id"}
)
_LINE_KEYS = frozenset({"model", "provider", "tariff_version", "max_cost_micro"})
_SIGNED_KEYS = frozenset({"quote", "key_id", "signature"})


@dataclass(frozen=True)
class PlannedCall:
    """One call a job intends to make: its model, prompt size, output cap and other units."""

    model: str
    input_tokens: int
    max_output_tokens: int
    units: Mapping[Unit, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        require_name(self.model, "model")
        require_count(self.input_tokens, "input_tokens")
        require_count(self.max_output_tokens, "max_output_tokens")
        units = require_usage(self.units, where="units")
        object.__setattr__(self, "units", MappingProxyType(units))


@dataclass(frozen=True)
class QuoteLine:
    model: str
    provider: str
    tariff_version: int
    max_cost_micro: int

    def __post_init__(self) -> None:
        require_name(self.model, "model")
        require_name(self.provider, "provider")
        _int(self.tariff_version, "tariff_version", minimum=1)
        _int(self.max_cost_micro, "max_cost_micro")

    def to_document(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "tariff_version": self.tariff_version,
            "max_cost_micro": self.max_cost_micro,
        }

    @classmethod
    def from_document(cls, document: object) -> QuoteLine:
        doc = _fields(document, _LINE_KEYS, "quote line")
        return cls(doc["model"], doc["provider"], doc["tariff_version"], doc["max_cost_micro"])


@dataclass(frozen=True)
class Quote:
    """The most a job may cost, priced from one tariff version, valid until ``expires_at``."""

    quote_id: str
    tariff_version: int
    lines: tuple[QuoteLine, ...]
    total_micro: int
    issued_at: int
    expires_at: int
    tenant_id: str | None = None

    def __post_init__(self) -> None:
        require_name(self.quote_id, "quote_id", max_chars=128)
        _int(self.tariff_version, "tariff_version", minimum=1)
        if not isinstance(self.lines, tuple | list) or not 1 <= len(self.lines) <= MAX_CALLS:
            raise InvalidInput(f"a quote has 1 to {MAX_CALLS} lines", field="lines")
        object.__setattr__(self, "lines", tuple(self.lines))
        for line in self.lines:
            if not isinstance(line, QuoteLine) or line.tariff_version != self.tariff_version:
                raise InvalidInput("every quote line is priced from the quote's tariff version")
        if _int(self.total_micro, "total_micro") != sum(li.max_cost_micro for li in self.lines):
            raise InvalidInput("total_micro must be the sum of the lines", field="total_micro")
        if _int(self.expires_at, "expires_at") <= _int(self.issued_at, "issued_at"):
            raise InvalidInput("a quote must expire after it is issued", field="expires_at")
        if self.tenant_id is not None:
            require_name(self.tenant_id, "tenant_id")

    def to_document(self) -> dict[str, Any]:
        return {
            "quote_id": self.quote_id,
            "tariff_version": self.tariff_version,
            "lines": [line.to_document() for line in self.lines],
            "total_micro": self.total_micro,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "tenant_id": self.tenant_id,
        }

    @classmethod
    def from_document(cls, document: object) -> Quote:
        doc = _fields(document, _QUOTE_KEYS, "quote")
        if not isinstance(doc["lines"], list):
            raise InvalidInput("quote lines must be a list", field="lines")
        return cls(
            quote_id=doc["quote_id"],
            tariff_version=doc["tariff_version"],
            lines=tuple(QuoteLine.from_document(line) for line in doc["lines"][: MAX_CALLS + 1]),
            total_micro=doc["total_micro"],
            issued_at=doc["issued_at"],
            expires_at=doc["expires_at"],
            tenant_id=doc["tenant_id"],
        )


def build_quote(
    book: TariffBook,
    calls: Iterable[PlannedCall],
    *,
    now: int,
    ttl_seconds: int,
    tenant_id: str | None = None,
    quote_id: str | None = None,
) -> Quote:
    """Price ``calls`` at their worst case from the tariff in effect at ``now``."""
    calls = list(calls)
    if not 1 <= len(calls) <= MAX_CALLS:
        raise InvalidInput(
            f"a quote prices 1 to {MAX_CALLS} calls, got {len(calls)}", field="calls"
        )
    _int(now, "now")
    _int(ttl_seconds, "ttl_seconds", minimum=1)
    tariff = book.current(now)
    lines = []
    for index, call in enumerate(calls):
        if not isinstance(call, PlannedCall):
            raise InvalidInput(f"calls[{index}] is not a PlannedCall", field="calls")
        rate = tariff.rate(call.model)
        try:
            cost = worst_case_micro(rate, call.input_tokens, call.max_output_tokens, call.units)
        except InvalidInput as exc:
            raise InvalidInput(f"calls[{index}]: {exc.message}", **exc.details) from exc
        lines.append(QuoteLine(call.model, rate.provider, tariff.version, cost))
    total = _int(sum(line.max_cost_micro for line in lines), "total_micro")
    return Quote(
        quote_id=quote_id if quote_id is not None else f"q_{secrets.token_hex(16)}",
        tariff_version=tariff.version,
        lines=tuple(lines),
        total_micro=total,
        issued_at=now,
        expires_at=now + ttl_seconds,
        tenant_id=tenant_id,
    )


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8 without escaping."""
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class QuoteSigner:
    """Signs quotes with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def sign(self, quote: Quote) -> SignedQuote:
        signature = self._private_key.sign(canonical_json(quote.to_document()))
        encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")
        return SignedQuote(quote, self.key_id, encoded)


@dataclass(frozen=True)
class SignedQuote:
    quote: Quote
    key_id: str
    signature: str  # unpadded base64url of the Ed25519 signature over canonical JSON

    def __post_init__(self) -> None:
        if not isinstance(self.quote, Quote):
            raise InvalidInput("quote must be a Quote", field="quote")
        require_name(self.key_id, "key_id", max_chars=64)
        _signature_bytes(self.signature)

    def to_document(self) -> dict[str, Any]:
        return {
            "quote": self.quote.to_document(),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_document(cls, document: object) -> SignedQuote:
        doc = _fields(document, _SIGNED_KEYS, "signed quote")
        return cls(Quote.from_document(doc["quote"]), doc["key_id"], doc["signature"])


def verify_quote(
    signed: SignedQuote | Mapping[str, Any],
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    now: int,
) -> Quote:
    """The quote, if signed by a known key and not expired at ``now``; else QuoteInvalid."""
    if not isinstance(signed, SignedQuote):
        try:
            signed = SignedQuote.from_document(signed)
        except (ApicreditsError, TypeError, ValueError) as exc:
            # The one place a malformed document is reported; never anything but QuoteInvalid.
            message = str(exc)[:300]  # garbage may be huge; the message need not be
            raise QuoteInvalid(f"malformed quote: {message}", reason="malformed") from None
    public_key = public_keys.get(signed.key_id)
    if public_key is None:
        raise QuoteInvalid(f"unknown quote key {signed.key_id!r}", reason="unknown_key")
    try:
        public_key.verify(
            _signature_bytes(signed.signature), canonical_json(signed.quote.to_document())
        )
    except InvalidSignature:
        raise QuoteInvalid("quote signature does not verify", reason="bad_signature") from None
    # Checked after the signature, so an unauthenticated document learns nothing about time.
    if now >= signed.quote.expires_at:
        raise QuoteInvalid(
            f"quote {signed.quote.quote_id} expired at {signed.quote.expires_at}",
            reason="expired",
            quote_id=signed.quote.quote_id,
        )
    return signed.quote


def _signature_bytes(signature: object) -> bytes:
    if isinstance(signature, str) and len(signature) == _SIGNATURE_CHARS:
        try:
            raw = base64.urlsafe_b64decode(signature + "==")
        except (binascii.Error, ValueError):
            raw = b""
        # Re-encoding rejects non-canonical forms (stray bits in the last character, '+', '/').
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == signature:
            return raw
    raise InvalidInput("signature must be 64 bytes in unpadded base64url", field="signature")


def _fields(document: object, keys: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise InvalidInput(f"a {what} must be an object")
    if document.keys() != keys:
        raise InvalidInput(f"a {what} has exactly the fields {', '.join(sorted(keys))}")
    return document


def _int(value: object, field: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field)
    if not minimum <= value <= MAX_MICRO:
        raise InvalidInput(f"{field} must be between {minimum} and {MAX_MICRO}", field=field)
    return value
