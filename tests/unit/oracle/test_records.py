"""The epoch record UsageReceipts commits to: its commitment against eth-abi, and the record
an ``EpochSubmitted`` log carries. (The contract's own ``epoch_commitment`` is held to this
in ``tests/unit/chain/contracts/test_usage_receipts.py``.)"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apicredits.oracle.merkle import keccak256
from apicredits.oracle.records import VOID_FLAG, CommittedEpoch, EpochRecord

TYPES = ["bytes32", "bytes32", "uint32", "uint256", "uint64", "uint256"]

records = st.builds(
    EpochRecord,
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**256 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
)


def test_the_commitment_is_the_abi_encoded_records_hash_lowest_bit_cleared() -> None:
    record = EpochRecord(b"\x01" * 32, b"\x02" * 32, 3, 1_500_000, 1_700_000_000, 0b101)
    encoded = (
        b"\x01" * 32 + b"\x02" * 32 + (3).to_bytes(32) + (1_500_000).to_bytes(32)
        + (1_700_000_000).to_bytes(32) + (0b101).to_bytes(32)
    )  # fmt: skip
    digest = keccak256(encoded)
    assert record.commitment() == digest[:31] + bytes([digest[31] & 0xFE])


@given(records, records)
def test_commitments_differ_exactly_when_records_do(a: EpochRecord, b: EpochRecord) -> None:
    assert a.commitment()[-1] & VOID_FLAG == 0
    assert (a.commitment() == b.commitment()) == (a == b)


@given(records)
def test_a_log_gives_back_its_record(record: EpochRecord) -> None:
    args = {
        "epoch": 7, "events_root": "0x" + record.events_root.hex(),
        "lines_root": "0x" + record.lines_root.hex(), "line_count": record.line_count,
        "total_micro": record.total_micro, "submitted_at": record.submitted_at,
        "signers": record.signers,
    }  # fmt: skip
    assert EpochRecord.from_log(args) == record


def test_the_stored_word_says_submitted_and_void() -> None:
    record = EpochRecord(b"\x01" * 32, b"\x02" * 32, 1, 1, 1, 1)
    stored = record.commitment()
    live = CommittedEpoch(1, stored, record)
    void = CommittedEpoch(1, stored[:31] + bytes([stored[31] | VOID_FLAG]), record)
    missing = CommittedEpoch(2, bytes(32), None, "epoch 2 was never submitted")
    assert (live.submitted, live.voided) == (True, False)
    assert (void.submitted, void.voided) == (True, True)
    assert (missing.submitted, missing.voided) == (False, False)
