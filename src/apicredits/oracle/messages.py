"""The exact bytes the settlement contracts verify: ids, settlement lines, epoch messages.

- ``provider_id(name)``, ``event_id(request_id)``, ``job_id(id)``: keccak256 of the UTF-8 text.
- A settlement line (per epoch, tenant and provider) is an OpenZeppelin standard leaf of
  ``(uint64 epoch, address tenant, bytes32 providerId, uint256 amountMicro, uint256 feeMicro)``.
- A usage event's leaf in the events tree is the standard leaf of ``(bytes32 digest)``, the
  digest being the event's EIP-712 hash (``apicredits.metering.events``).
- The oracles BLS-sign ``EpochSummary.message()``::

      keccak256(abi.encode(EPOCH_TAG, uint256 chainId, address receipts, uint64 epoch,
                           bytes32 eventsRoot, bytes32 linesRoot, uint32 lineCount,
                           uint256 totalMicro))

  with ``EPOCH_TAG = keccak256("apicredits.epoch.v1")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_checksum_address, to_canonical_address, to_checksum_address

from apicredits.oracle.errors import MessageError
from apicredits.oracle.merkle import keccak256, leaf_hash

__all__ = [
    "EPOCH_TAG",
    "SETTLEMENT_LINE_TYPES",
    "USAGE_EVENT_LEAF_TYPES",
    "EpochSummary",
    "SettlementLine",
    "event_id",
    "job_id",
    "provider_id",
    "usage_event_leaf",
]

EPOCH_TAG = keccak256(b"apicredits.epoch.v1")
SETTLEMENT_LINE_TYPES = ("uint64", "address", "bytes32", "uint256", "uint256")
USAGE_EVENT_LEAF_TYPES = ("bytes32",)
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def provider_id(name: str) -> bytes:
    return keccak256(name.encode())


def event_id(request_id: str) -> bytes:
    return keccak256(request_id.encode())


def job_id(job_or_lock_id: str) -> bytes:
    return keccak256(job_or_lock_id.encode())


def usage_event_leaf(digest: bytes) -> bytes:
    """The events-tree leaf of a usage event, from its EIP-712 digest."""
    return leaf_hash(USAGE_EVENT_LEAF_TYPES, (_bytes32("digest", digest),))


def _uint(name: str, value: Any, bits: int) -> int:
    if type(value) is not int or not 0 <= value < 1 << bits:
        raise MessageError(f"{name} must be a uint{bits}", field=name)
    return value


def _bytes32(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise MessageError(f"{name} must be 32 bytes", field=name)
    return value


def _address(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        raise MessageError(f"{name} must be a 0x-prefixed hex address", field=name)
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise MessageError(f"{name} has a bad checksum", field=name)
    return to_checksum_address(value)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """What one tenant owes one provider for one epoch: ``amount_micro`` is paid to the
    provider, ``fee_micro`` to the protocol, and both are burnt from the tenant's credits."""

    epoch: int
    tenant: str  # checksummed address
    provider_id: bytes
    amount_micro: int
    fee_micro: int

    def __post_init__(self) -> None:
        _uint("epoch", self.epoch, 64)
        object.__setattr__(self, "tenant", _address("tenant", self.tenant))
        _bytes32("provider_id", self.provider_id)
        _uint("amount_micro", self.amount_micro, 256)
        _uint("fee_micro", self.fee_micro, 256)

    def values(self) -> tuple[int, str, bytes, int, int]:
        """The leaf's values in ``SETTLEMENT_LINE_TYPES`` order."""
        return (self.epoch, self.tenant, self.provider_id, self.amount_micro, self.fee_micro)

    def leaf(self) -> bytes:
        return leaf_hash(SETTLEMENT_LINE_TYPES, self.values())


@dataclass(frozen=True, slots=True)
class EpochSummary:
    """What the oracles attest for one epoch, bound to one chain and one receipts contract."""

    chain_id: int
    receipts_contract: str  # checksummed address of UsageReceipts
    epoch: int
    events_root: bytes
    lines_root: bytes
    line_count: int
    total_micro: int

    def __post_init__(self) -> None:
        _uint("chain_id", self.chain_id, 256)
        contract = _address("receipts_contract", self.receipts_contract)
        object.__setattr__(self, "receipts_contract", contract)
        _uint("epoch", self.epoch, 64)
        _bytes32("events_root", self.events_root)
        _bytes32("lines_root", self.lines_root)
        _uint("line_count", self.line_count, 32)
        _uint("total_micro", self.total_micro, 256)

    def encode(self) -> bytes:
        """``abi.encode`` of the tag and every field: 8 words, 256 bytes."""
        return b"".join(
            (
                EPOCH_TAG,
                _word(self.chain_id),
                bytes(12) + to_canonical_address(self.receipts_contract),
                _word(self.epoch),
                self.events_root,
                self.lines_root,
                _word(self.line_count),
                _word(self.total_micro),
            )
        )

    def message(self) -> bytes:
        """The 32-byte digest the oracles BLS-sign."""
        return keccak256(self.encode())
