"""The exact encodings the settlement contracts verify, against eth-abi and pinned vectors."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode

from apicredits.oracle.errors import MessageError
from apicredits.oracle.merkle import MerkleTree, keccak256, verify_proof
from apicredits.oracle.messages import (
    EPOCH_TAG,
    SETTLEMENT_LINE_TYPES,
    EpochSummary,
    SettlementLine,
    event_id,
    job_id,
    provider_id,
    usage_event_leaf,
)

TENANT = "0x" + "12" * 20
RECEIPTS = "0x" + "ab" * 20


def summary(**changes: Any) -> EpochSummary:
    fields: dict[str, Any] = {
        "chain_id": 8453,
        "receipts_contract": RECEIPTS,
        "epoch": 42,
        "events_root": b"\x01" * 32,
        "lines_root": b"\x02" * 32,
        "line_count": 3,
        "total_micro": 1_500_000,
    }
    return EpochSummary(**(fields | changes))


def test_ids_are_keccak_of_utf8() -> None:
    assert provider_id("openai") == keccak256(b"openai")
    assert event_id("req-é") == keccak256("req-é".encode())
    assert job_id("lock_1") == keccak256(b"lock_1")
    assert keccak256(b"apicredits.epoch.v1") == EPOCH_TAG
    assert EPOCH_TAG.hex() == "683b48ad1f19c0d29f2e97d96697d8a89d47f01f25988f642bad2a96053fc6f7"


def test_settlement_line_leaf_is_the_standard_leaf_of_its_abi_values() -> None:
    line = SettlementLine(42, TENANT, provider_id("openai"), 1_000_000, 25_000)
    assert line.tenant == "0x1212121212121212121212121212121212121212"
    expected = keccak256(keccak256(encode(list(SETTLEMENT_LINE_TYPES), list(line.values()))))
    assert line.leaf() == expected
    assert line.leaf().hex() == "f77b7c0b1c54eed0461a5411a3f039e664a3a0c21c462830a9cc2843349c7009"


def test_settlement_lines_tree_proves_each_line() -> None:
    lines = [SettlementLine(7, TENANT, provider_id(f"p{i}"), i * 1000, i) for i in range(5)]
    tree = MerkleTree.build(SETTLEMENT_LINE_TYPES, [line.values() for line in lines])
    for i, line in enumerate(lines):
        assert tree.leaf_hash(i) == line.leaf()
        assert verify_proof(tree.root, line.leaf(), tree.proof(i))


def test_usage_event_leaf() -> None:
    digest = b"\x09" * 32
    assert usage_event_leaf(digest) == keccak256(keccak256(digest))
    with pytest.raises(MessageError):
        usage_event_leaf(b"\x09" * 31)


def test_epoch_message_is_keccak_of_abi_encoded_fields() -> None:
    s = summary()
    expected = encode(
        ["bytes32", "uint256", "address", "uint64", "bytes32", "bytes32", "uint32", "uint256"],
        [EPOCH_TAG, 8453, RECEIPTS, 42, b"\x01" * 32, b"\x02" * 32, 3, 1_500_000],
    )
    assert s.encode() == expected
    assert s.message() == keccak256(expected)
    assert s.message().hex() == "2f88d50ce2f0d865537518dfe321be79cc03d765493289641bba30b240e7d8eb"


def test_every_field_changes_the_epoch_message() -> None:
    base = summary().message()
    changes: dict[str, Any] = {
        "chain_id": 1,
        "receipts_contract": TENANT,
        "epoch": 43,
        "events_root": b"\x03" * 32,
        "lines_root": b"\x03" * 32,
        "line_count": 4,
        "total_micro": 1,
    }
    for name, value in changes.items():
        assert summary(**{name: value}).message() != base, name


@pytest.mark.parametrize(
    "changes",
    [
        {"chain_id": -1},
        {"receipts_contract": "0x1234"},
        {"receipts_contract": "0x" + "aB" * 20},
        {"epoch": 2**64},
        {"events_root": b"\x01" * 31},
        {"lines_root": "0x" + "02" * 32},
        {"line_count": 2**32},
        {"total_micro": True},
    ],
)
def test_epoch_summary_rejects_out_of_range_fields(changes: dict[str, Any]) -> None:
    with pytest.raises(MessageError):
        summary(**changes)


@pytest.mark.parametrize(
    "args",
    [
        (-1, TENANT, b"\0" * 32, 0, 0),
        (0, "nope", b"\0" * 32, 0, 0),
        (0, TENANT, b"\0" * 33, 0, 0),
        (0, TENANT, b"\0" * 32, 2**256, 0),
        (0, TENANT, b"\0" * 32, 0, -5),
    ],
)
def test_settlement_line_rejects_out_of_range_fields(args: tuple[Any, ...]) -> None:
    with pytest.raises(MessageError):
        SettlementLine(*args)
