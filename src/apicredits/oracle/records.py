"""The epoch record ``UsageReceipts`` commits to, and reading it back from the chain.

``submit_epoch`` stores one word per epoch, the commitment of its record::

    keccak256(abi.encode(bytes32 eventsRoot, bytes32 linesRoot, uint32 lineCount,
                         uint256 totalMicro, uint64 submittedAt, uint256 signers))

with its lowest bit cleared (``VOID_FLAG``: ``void_epoch`` sets it), ``submittedAt`` being
the block timestamp of the submission. The ``EpochSubmitted`` log carries every field, so
a record is rebuilt from the log and trusted only once its commitment equals the stored
word; the settlement treasury takes the record in calldata and checks it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi.abi import encode

from apicredits.metering.store import hex32
from apicredits.oracle.merkle import keccak256
from apicredits.oracle.validation import as_bytes

if TYPE_CHECKING:
    from apicredits.chain import Chain

__all__ = ["RECORD_TYPES", "VOID_FLAG", "CommittedEpoch", "EpochRecord", "committed_epoch"]

RECORD_TYPES = ("bytes32", "bytes32", "uint32", "uint256", "uint64", "uint256")
VOID_FLAG = 1  # the lowest bit of a stored commitment
_NOT_SUBMITTED = bytes(32)


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One submitted epoch as ``UsageReceipts`` commits to it (its ``EpochRecord`` struct)."""

    events_root: bytes
    lines_root: bytes
    line_count: int
    total_micro: int
    submitted_at: int  # block timestamp of the submission
    signers: int  # bitmap of oracle indexes

    def values(self) -> tuple[bytes, bytes, int, int, int, int]:
        """The struct's fields in ``RECORD_TYPES`` order (a contract call's tuple argument)."""
        return (self.events_root, self.lines_root, self.line_count, self.total_micro,
                self.submitted_at, self.signers)  # fmt: skip

    def commitment(self) -> bytes:
        """What ``UsageReceipts.epoch_commitment`` returns: the hash, lowest bit cleared."""
        digest = int.from_bytes(keccak256(encode(list(RECORD_TYPES), list(self.values()))))
        return (digest & ~VOID_FLAG).to_bytes(32)

    @classmethod
    def from_log(cls, args: Mapping[str, Any]) -> EpochRecord:
        """The record an ``EpochSubmitted`` log's decoded arguments carry."""
        return cls(
            as_bytes(args["events_root"]), as_bytes(args["lines_root"]), int(args["line_count"]),
            int(args["total_micro"]), int(args["submitted_at"]), int(args["signers"]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CommittedEpoch:
    """What the chain says about one epoch: the word ``UsageReceipts`` stores (zero if never
    submitted) and the record of the ``EpochSubmitted`` log that matches it; when there is
    none, ``problem`` says why."""

    epoch: int
    stored: bytes
    record: EpochRecord | None
    problem: str | None = None

    @property
    def submitted(self) -> bool:
        return self.stored != _NOT_SUBMITTED

    @property
    def voided(self) -> bool:
        return bool(self.stored[-1] & VOID_FLAG)


def committed_epoch(
    chain: Chain,
    receipts: str,
    epoch: int,
    from_block: int,
    to_block: int,
    *,
    hint_block: Any = None,
) -> CommittedEpoch:
    """Read ``epoch``'s commitment and find the ``EpochSubmitted`` log whose record it commits
    to, searching the block ``hint_block`` first (where the submission is said to be: a
    hint, never trusted) and then ``from_block``..``to_block``; the node returns only the
    logs of ``epoch`` (its indexed topic), a chain's ``max_log_range`` blocks at a time."""
    stored = as_bytes(chain.call(receipts, "usage_receipts", "commitment", epoch))
    if stored == _NOT_SUBMITTED:
        return CommittedEpoch(epoch, stored, None, f"epoch {epoch} was never submitted")
    committed = (int.from_bytes(stored) & ~VOID_FLAG).to_bytes(32)
    ranges = [(from_block, to_block)]
    if type(hint_block) is int and from_block <= hint_block <= to_block:
        ranges.insert(0, (hint_block, hint_block))
    logged: list[EpochRecord] = []
    where = {"epoch": epoch}
    for lo, hi in ranges:
        for log in chain.logs(receipts, "usage_receipts", "EpochSubmitted", lo, hi, where=where):
            if int(log.args["epoch"]) != epoch:  # the node's filter, checked
                continue
            record = EpochRecord.from_log(log.args)
            if record.commitment() == committed:
                return CommittedEpoch(epoch, stored, record)
            logged.append(record)
    if logged:
        theirs = hex32(logged[0].commitment())
        why = (f"the EpochSubmitted log of epoch {epoch} commits to {theirs}, "
               f"UsageReceipts stores {hex32(committed)}")  # fmt: skip
    else:
        why = f"no EpochSubmitted log of epoch {epoch} in blocks {from_block}-{to_block}"
    return CommittedEpoch(epoch, stored, None, why)
