"""Signed usage events: what a provider (or the gateway, as meter) attests a call used.

An event is an EIP-712 typed message::

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
        name "apicredits usage", version "1", verifyingContract = the UsageReceipts contract
    UsageEvent(bytes32 eventId,bytes32 jobId,address tenant,bytes32 providerId,string model,
               Unit[] units,uint32 tariffVersion,uint256 costMicro,uint64 timestamp,
               bytes32 requestHash,uint64 sequence,uint8 meter)
    Unit(string kind,uint256 count)

``meter`` says who signed: 0 the provider's registered signing key, 1 the gateway's metering
key (for providers that do not sign). The event's EIP-712 digest is its leaf in the epoch's
events tree (``apicredits.oracle.messages.usage_event_leaf``). Signatures are 65 bytes,
``r || s || v`` with ``v`` 27 or 28, as ``ecrecover`` takes them.

Documents (``to_document`` / ``from_document``) are the JSON form ``POST /v1/usage/emit``
accepts: 0x-hex for bytes, integers for numbers, ``meter`` as "provider" or "gateway"; parsing
is strict and every problem is an ``InvalidInput`` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import coincurve
from eth_account.messages import SignableMessage
from eth_utils.address import is_checksum_address, to_checksum_address

from apicredits.errors import InvalidInput
from apicredits.oracle.merkle import keccak256

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_TYPEHASH",
    "DOMAIN_VERSION",
    "EIP712_TYPES",
    "MAX_MODEL_LENGTH",
    "MAX_UNITS",
    "MAX_UNIT_KIND_LENGTH",
    "UNIT_TYPEHASH",
    "USAGE_EVENT_TYPEHASH",
    "Meter",
    "SignedUsageEvent",
    "UsageDomain",
    "UsageEvent",
    "UsageUnit",
    "recover_signer",
    "sign",
]

DOMAIN_NAME = "apicredits usage"
DOMAIN_VERSION = "1"
MAX_MODEL_LENGTH = 256
MAX_UNITS = 32
MAX_UNIT_KIND_LENGTH = 64

_DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_UNIT_TYPE = b"Unit(string kind,uint256 count)"
_USAGE_EVENT_TYPE = (
    b"UsageEvent(bytes32 eventId,bytes32 jobId,address tenant,bytes32 providerId,string model,"
    b"Unit[] units,uint32 tariffVersion,uint256 costMicro,uint64 timestamp,bytes32 requestHash,"
    b"uint64 sequence,uint8 meter)"
)
DOMAIN_TYPEHASH = keccak256(_DOMAIN_TYPE)
UNIT_TYPEHASH = keccak256(_UNIT_TYPE)
USAGE_EVENT_TYPEHASH = keccak256(_USAGE_EVENT_TYPE + _UNIT_TYPE)

# the EIP-712 ``types`` of a UsageEvent, for wallets and eth-account's ``encode_typed_data``
EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "UsageEvent": [
        {"name": "eventId", "type": "bytes32"},
        {"name": "jobId", "type": "bytes32"},
        {"name": "tenant", "type": "address"},
        {"name": "providerId", "type": "bytes32"},
        {"name": "model", "type": "string"},
        {"name": "units", "type": "Unit[]"},
        {"name": "tariffVersion", "type": "uint32"},
        {"name": "costMicro", "type": "uint256"},
        {"name": "timestamp", "type": "uint64"},
        {"name": "requestHash", "type": "bytes32"},
        {"name": "sequence", "type": "uint64"},
        {"name": "meter", "type": "uint8"},
    ],
    "Unit": [{"name": "kind", "type": "string"}, {"name": "count", "type": "uint256"}],
}


class Meter(IntEnum):
    PROVIDER = 0  # signed by the provider's registered signing key
    GATEWAY = 1  # signed by the gateway's metering key


# --- field checks: every failure is an InvalidInput naming the field ----------------------


def _invalid(name: str, what: str) -> InvalidInput:
    return InvalidInput(f"{name} must be {what}", field=name)


def _uint(name: str, value: Any, bits: int) -> int:
    if type(value) is not int or not 0 <= value < 1 << bits:
        raise _invalid(name, f"an integer in [0, 2**{bits})")
    return value


def _bytes32(name: str, value: Any) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise _invalid(name, "32 bytes")
    return value


def _text(name: str, value: Any, limit: int) -> str:
    if type(value) is not str or not 0 < len(value) <= limit:
        raise _invalid(name, f"a non-empty string of at most {limit} characters")
    return value


def _address(name: str, value: Any) -> str:
    what = "a 0x-prefixed 20-byte hex address (checksummed if mixed-case)"
    if type(value) is not str or not _HEX_ADDRESS.fullmatch(value):
        raise _invalid(name, what)
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise _invalid(name, what)
    return to_checksum_address(value)


def _hex(name: str, value: Any, size: int) -> bytes:
    if type(value) is not str or not _HEX.fullmatch(value) or len(value) != 2 + 2 * size:
        raise _invalid(name, f"a 0x-prefixed hex string of {size} bytes")
    return bytes.fromhex(value[2:])


_HEX = re.compile(r"0x[0-9a-fA-F]*")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageDomain:
    """The EIP-712 domain: one chain, one UsageReceipts contract."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        _uint("chain_id", self.chain_id, 256)
        contract = _address("verifying_contract", self.verifying_contract)
        object.__setattr__(self, "verifying_contract", contract)

    def separator(self) -> bytes:
        return keccak256(
            DOMAIN_TYPEHASH
            + keccak256(DOMAIN_NAME.encode())
            + keccak256(DOMAIN_VERSION.encode())
            + _word(self.chain_id)
            + bytes(12)
            + bytes.fromhex(self.verifying_contract[2:])
        )

    def eip712(self) -> dict[str, Any]:
        """The domain as EIP-712 JSON (``eth_signTypedData_v4``'s ``domain``)."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True, slots=True)
class UsageUnit:
    kind: str  # e.g. "input_tokens"
    count: int

    def __post_init__(self) -> None:
        _text("units.kind", self.kind, MAX_UNIT_KIND_LENGTH)
        _uint("units.count", self.count, 256)

    def struct_hash(self) -> bytes:
        return keccak256(UNIT_TYPEHASH + keccak256(self.kind.encode()) + _word(self.count))


@dataclass(frozen=True, slots=True)
class UsageEvent:
    event_id: bytes  # keccak256 of the request id (apicredits.oracle.messages.event_id)
    job_id: bytes
    tenant: str  # checksummed address of the tenant's account
    provider_id: bytes
    model: str
    units: tuple[UsageUnit, ...]
    tariff_version: int
    cost_micro: int
    timestamp: int  # unix seconds
    request_hash: bytes
    sequence: int  # the signer's running counter
    meter: Meter

    def __post_init__(self) -> None:
        _bytes32("event_id", self.event_id)
        _bytes32("job_id", self.job_id)
        object.__setattr__(self, "tenant", _address("tenant", self.tenant))
        _bytes32("provider_id", self.provider_id)
        _text("model", self.model, MAX_MODEL_LENGTH)
        if type(self.units) is not tuple or not all(type(u) is UsageUnit for u in self.units):
            raise _invalid("units", "a tuple of UsageUnit")
        if len(self.units) > MAX_UNITS:
            raise _invalid("units", f"at most {MAX_UNITS} entries")
        if len({u.kind for u in self.units}) != len(self.units):
            raise _invalid("units", "distinct kinds")
        _uint("tariff_version", self.tariff_version, 32)
        _uint("cost_micro", self.cost_micro, 256)
        _uint("timestamp", self.timestamp, 64)
        _bytes32("request_hash", self.request_hash)
        _uint("sequence", self.sequence, 64)
        if type(self.meter) is not Meter:
            raise _invalid("meter", "a Meter")

    def struct_hash(self) -> bytes:
        """EIP-712 ``hashStruct(UsageEvent)``."""
        units = keccak256(b"".join(u.struct_hash() for u in self.units))
        return keccak256(
            b"".join(
                (
                    USAGE_EVENT_TYPEHASH,
                    self.event_id,
                    self.job_id,
                    bytes(12) + bytes.fromhex(self.tenant[2:]),
                    self.provider_id,
                    keccak256(self.model.encode()),
                    units,
                    _word(self.tariff_version),
                    _word(self.cost_micro),
                    _word(self.timestamp),
                    self.request_hash,
                    _word(self.sequence),
                    _word(self.meter),
                )
            )
        )

    def signable(self, domain: UsageDomain) -> SignableMessage:
        return SignableMessage(b"\x01", domain.separator(), self.struct_hash())

    def digest(self, domain: UsageDomain) -> bytes:
        """The EIP-712 hash ``keccak256(0x1901 || domainSeparator || hashStruct(event))``:
        what is signed, and the event's value in the events tree."""
        return keccak256(b"\x19\x01" + domain.separator() + self.struct_hash())

    def eip712(self) -> dict[str, Any]:
        """The message as EIP-712 JSON (``eth_signTypedData_v4``'s ``message``)."""
        return {
            "eventId": self.event_id,
            "jobId": self.job_id,
            "tenant": self.tenant,
            "providerId": self.provider_id,
            "model": self.model,
            "units": [{"kind": u.kind, "count": u.count} for u in self.units],
            "tariffVersion": self.tariff_version,
            "costMicro": self.cost_micro,
            "timestamp": self.timestamp,
            "requestHash": self.request_hash,
            "sequence": self.sequence,
            "meter": int(self.meter),
        }

    def to_document(self) -> dict[str, Any]:
        return {
            "event_id": "0x" + self.event_id.hex(),
            "job_id": "0x" + self.job_id.hex(),
            "tenant": self.tenant,
            "provider_id": "0x" + self.provider_id.hex(),
            "model": self.model,
            "units": [{"kind": u.kind, "count": u.count} for u in self.units],
            "tariff_version": self.tariff_version,
            "cost_micro": self.cost_micro,
            "timestamp": self.timestamp,
            "request_hash": "0x" + self.request_hash.hex(),
            "sequence": self.sequence,
            "meter": self.meter.name.lower(),
        }

    @classmethod
    def from_document(cls, document: Any) -> UsageEvent:
        """Parse a document strictly: exactly the keys ``to_document`` writes."""
        doc = _mapping("event", document, _EVENT_KEYS)
        units = doc["units"]
        if type(units) is not list or len(units) > MAX_UNITS:
            raise _invalid("units", f"a list of at most {MAX_UNITS} units")
        parsed = []
        for unit in units:
            u = _mapping("units[]", unit, frozenset({"kind", "count"}))
            parsed.append(UsageUnit(u["kind"], u["count"]))
        meter = doc["meter"]
        if meter not in ("provider", "gateway"):
            raise _invalid("meter", '"provider" or "gateway"')
        return cls(
            event_id=_hex("event_id", doc["event_id"], 32),
            job_id=_hex("job_id", doc["job_id"], 32),
            tenant=doc["tenant"],
            provider_id=_hex("provider_id", doc["provider_id"], 32),
            model=doc["model"],
            units=tuple(parsed),
            tariff_version=doc["tariff_version"],
            cost_micro=doc["cost_micro"],
            timestamp=doc["timestamp"],
            request_hash=_hex("request_hash", doc["request_hash"], 32),
            sequence=doc["sequence"],
            meter=Meter[meter.upper()],
        )


_EVENT_KEYS = frozenset(
    (
        "event_id", "job_id", "tenant", "provider_id", "model", "units", "tariff_version",
        "cost_micro", "timestamp", "request_hash", "sequence", "meter",
    )
)  # fmt: skip


def _mapping(name: str, value: Any, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(name, "a JSON object")
    present = set(value)
    if present != keys:
        missing, extra = sorted(keys - present, key=str), sorted(present - keys, key=str)
        raise InvalidInput(
            f"{name} has missing fields {missing} or unknown fields {extra}",
            field=name,
            missing=missing,
            unknown=[str(k) for k in extra],
        )
    return value


@dataclass(frozen=True, slots=True)
class SignedUsageEvent:
    event: UsageEvent
    signature: bytes  # r || s || v, v in {27, 28}

    def __post_init__(self) -> None:
        if type(self.event) is not UsageEvent:
            raise _invalid("event", "a UsageEvent")
        if type(self.signature) is not bytes or len(self.signature) != 65:
            raise _invalid("signature", "65 bytes")
        if self.signature[64] not in (27, 28):
            raise _invalid("signature", "r || s || v with v 27 or 28")

    def to_document(self) -> dict[str, Any]:
        return {"event": self.event.to_document(), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_document(cls, document: Any) -> SignedUsageEvent:
        doc = _mapping("signed event", document, frozenset({"event", "signature"}))
        return cls(UsageEvent.from_document(doc["event"]), _hex("signature", doc["signature"], 65))


class UsageSigner:
    """A secp256k1 key that signs usage events: the key object is built once (eth-account
    rebuilds it per signature, ~5x the cost of signing itself)."""

    def __init__(self, private_key: bytes | str) -> None:
        raw = (
            bytes.fromhex(private_key.removeprefix("0x"))
            if isinstance(private_key, str)
            else private_key
        )
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self.address = to_checksum_address(keccak256(public)[12:])

    def sign(self, event: UsageEvent, domain: UsageDomain) -> SignedUsageEvent:
        signature = self._key.sign_recoverable(event.digest(domain), hasher=None)
        return SignedUsageEvent(event, signature[:64] + bytes([signature[64] + 27]))


def sign(event: UsageEvent, domain: UsageDomain, private_key: bytes | str) -> SignedUsageEvent:
    """Sign ``event`` for ``domain`` with a secp256k1 key (raw bytes or hex)."""
    return UsageSigner(private_key).sign(event, domain)


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def recover_signer(signed: SignedUsageEvent, domain: UsageDomain) -> str:
    """The checksummed address whose key signed this event for ``domain``; raises
    ``InvalidInput`` if the signature is not a valid secp256k1 signature (as Ethereum
    accepts them: v 27 or 28, low s)."""
    signature = signed.signature
    v, s = signature[64], int.from_bytes(signature[32:64], "big")
    if v not in (27, 28) or not 0 < s <= _SECP256K1_N // 2:
        raise InvalidInput(
            "bad usage event signature: v must be 27 or 28, s low", field="signature"
        )
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), signed.event.digest(domain), hasher=None
        )
    except Exception as exc:  # coincurve raises ValueError on an unrecoverable signature
        raise InvalidInput(f"bad usage event signature: {exc}", field="signature") from None
    return to_checksum_address(keccak256(public.format(compressed=False)[1:])[12:])
