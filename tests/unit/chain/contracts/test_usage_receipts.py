"""usage_receipts.vy: hashing to G1 as RFC 9380 does, the oracle set (proofs of possession,
removal, threshold), threshold-signed epoch receipts stored as one commitment each, and
voiding them.

A pairing check costs about a second of py-evm CPU, so only a few tests here make one (the
session fixtures make five more); many-pairing scenarios run on anvil in
``tests/integration/chain/test_receipts_anvil.py``."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from contracts_support import ZERO_ADDRESS, events, load, now
from eth_abi import encode
from eth_utils import keccak
from oracle_signing import (
    DISPUTE_WINDOW,
    POP_DST,
    SIG_DST,
    OracleKey,
    Settled,
    aggregate_signature,
    hash_to_g1,
)

from apicredits.oracle import bls
from apicredits.oracle.records import EpochRecord

EVENTS_ROOT = keccak(text="events")
LINES_ROOT = keccak(text="lines")
EPOCH_TYPES = ["bytes32", "uint256", "address", "uint64", "bytes32", "bytes32", "uint32", "uint256"]
RECORD_TYPES = ["bytes32", "bytes32", "uint32", "uint256", "uint64", "uint256"]


def header(epoch: int = 1, lines_root: bytes = LINES_ROOT) -> tuple[int, bytes, bytes, int, int]:
    return (epoch, EVENTS_ROOT, lines_root, 3, 12_345_678)


def signed(receipts: Any, keys: list[OracleKey], head: tuple[Any, ...]) -> bytes:
    return aggregate_signature(keys, receipts.epoch_message(*head))


def keys_of(oracle_keys: tuple[OracleKey, ...], *indexes: int) -> bytes:
    return b"".join(oracle_keys[i].public_key for i in indexes)


@pytest.fixture
def fresh() -> Any:
    return load("usage_receipts", DISPUTE_WINDOW)


# -- hashing


@pytest.mark.parametrize("message", [b"", b"abc", keccak(text="epoch"), bytes(range(256))])
def test_hash_to_g1_matches_rfc_9380_in_python(receipts: Any, message: bytes) -> None:
    assert receipts.hash_to_g1(message, False) == hash_to_g1(message, SIG_DST)
    assert receipts.hash_to_g1(message, True) == hash_to_g1(message, POP_DST)
    assert receipts.hash_to_g1(message, False) == bls.hash_to_g1(message, bls.SIGNATURE_DST)


def test_the_epoch_message_binds_chain_contract_and_header(receipts: Any) -> None:
    tag = keccak(text="apicredits.epoch.v1")
    assert receipts.EPOCH_TAG() == tag
    expected = keccak(encode(EPOCH_TYPES, [tag, boa.env.evm.chain.chain_id, receipts.address,
                                           *header()]))  # fmt: skip
    assert receipts.epoch_message(*header()) == expected


def commitment_of(record: tuple[Any, ...]) -> bytes:
    """keccak256(abi.encode(record)) with the lowest bit cleared, computed here."""
    digest = int.from_bytes(keccak(encode(RECORD_TYPES, list(record))))
    return (digest & ~1).to_bytes(32)


@pytest.mark.parametrize("field", range(6))
def test_the_commitment_hashes_every_field_of_the_record(receipts: Any, field: int) -> None:
    record = (EVENTS_ROOT, LINES_ROOT, 3, 12_345_678, 1_700_000_000, 0b101)
    assert receipts.VOID_FLAG() == 1
    assert receipts.epoch_commitment(record) == commitment_of(record)
    assert EpochRecord(*record).commitment() == commitment_of(record)
    changed = list(record)
    changed[field] = keccak(text="other") if field < 2 else record[field] + 1
    assert receipts.epoch_commitment(tuple(changed)) != receipts.epoch_commitment(record)


# -- oracle set


def test_the_session_oracles_are_registered(
    receipts: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    assert receipts.oracle_count() == 3
    assert receipts.active_oracle_count() == 3
    assert receipts.threshold() == 2
    for i in range(3):
        assert receipts.oracle_key_hash(i) == keccak(oracle_keys[i].public_key)
    assert receipts.oracle_key_hash(3) == bytes(32)


def test_register_oracle_checks_the_proof_of_possession(
    fresh: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    key = oracle_keys[0]
    assert fresh.register_oracle(key.public_key, key.pop) == 0
    (logged,) = events(fresh, "OracleRegistered")
    assert (logged.index, logged.key_hash) == (0, keccak(key.public_key))
    assert fresh.oracle_count() == 1
    with boa.reverts("usage_receipts: oracle already registered"):
        fresh.register_oracle(key.public_key, key.pop)


def test_a_wrong_proof_of_possession_is_refused(
    fresh: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    with boa.reverts("usage_receipts: invalid proof of possession"):
        fresh.register_oracle(oracle_keys[0].public_key, oracle_keys[1].pop)


def test_register_oracle_refuses_strangers_and_malformed_keys(
    fresh: Any, oracle_keys: tuple[OracleKey, ...], stranger: str
) -> None:
    key = oracle_keys[0]
    with boa.env.prank(stranger), boa.reverts("usage_receipts: caller is not the owner"):
        fresh.register_oracle(key.public_key, key.pop)
    with boa.reverts("usage_receipts: public key is not 256 bytes"):
        fresh.register_oracle(key.public_key[:-1], key.pop)
    with boa.reverts("usage_receipts: proof of possession is not 128 bytes"):
        fresh.register_oracle(key.public_key, key.pop[:-1])
    with boa.reverts("usage_receipts: public key is the point at infinity"):
        fresh.register_oracle(bytes(256), bytes(128))


def test_remove_oracle(receipts: Any, oracle_keys: tuple[OracleKey, ...], stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("usage_receipts: caller is not the owner"):
        receipts.remove_oracle(1)
    receipts.remove_oracle(1)
    (logged,) = events(receipts, "OracleRemoved")
    assert (logged.index, logged.key_hash) == (1, keccak(oracle_keys[1].public_key))
    assert receipts.oracle_key_hash(1) == bytes(32)
    assert (receipts.active_oracle_count(), receipts.oracle_count()) == (2, 3)
    with boa.reverts("usage_receipts: oracle is not active"):
        receipts.remove_oracle(1)
    with boa.reverts("usage_receipts: oracle is not active"):
        receipts.remove_oracle(7)
    with boa.reverts("usage_receipts: removal would leave fewer oracles than the threshold"):
        receipts.remove_oracle(0)


def test_set_threshold(receipts: Any, stranger: str) -> None:
    receipts.set_threshold(3)
    (logged,) = events(receipts, "ThresholdChanged")
    assert (logged.previous_threshold, logged.new_threshold) == (2, 3)
    with boa.env.prank(stranger), boa.reverts("usage_receipts: caller is not the owner"):
        receipts.set_threshold(1)
    with boa.reverts("usage_receipts: threshold is zero"):
        receipts.set_threshold(0)
    with boa.reverts("usage_receipts: threshold exceeds active oracles"):
        receipts.set_threshold(4)


def test_ownership_and_dispute_window(receipts: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("usage_receipts: caller is not the owner"):
        receipts.set_dispute_window(1)
    receipts.set_dispute_window(7200)
    (logged,) = events(receipts, "DisputeWindowChanged")
    assert (logged.previous_window, logged.new_window) == (DISPUTE_WINDOW, 7200)
    with boa.reverts("usage_receipts: new owner is the zero address"):
        receipts.transfer_ownership(ZERO_ADDRESS)
    receipts.transfer_ownership(stranger)
    assert receipts.owner() == stranger
    with boa.reverts("usage_receipts: caller is not the owner"):
        receipts.set_threshold(1)


# -- receipts


def test_a_2_of_3_receipt_is_recorded(receipts: Any, oracle_keys: tuple[OracleKey, ...]) -> None:
    signature = signed(receipts, [oracle_keys[0], oracle_keys[2]], header())
    receipts.submit_epoch(*header(), 0b101, keys_of(oracle_keys, 0, 2), signature)
    (logged,) = events(receipts, "EpochSubmitted")
    assert (logged.epoch, logged.events_root, logged.lines_root) == (1, EVENTS_ROOT, LINES_ROOT)
    assert (logged.line_count, logged.total_micro, logged.signers) == (3, 12_345_678, 0b101)
    assert logged.submitted_at == now()
    record = (EVENTS_ROOT, LINES_ROOT, 3, 12_345_678, now(), 0b101)
    assert receipts.commitment(1) == commitment_of(record)
    assert receipts.commitment(1) == receipts.epoch_commitment(record)
    assert receipts.commitment(1) != receipts.epoch_commitment((*record[:4], now() + 1, 0b101))
    assert receipts.voided(1) is False
    assert receipts.next_epoch() == 2
    assert receipts.commitment(2) == bytes(32)


def test_a_signature_over_another_root_is_refused(
    receipts: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    other = signed(receipts, [oracle_keys[0], oracle_keys[1]], header(lines_root=EVENTS_ROOT))
    with boa.reverts("usage_receipts: invalid signature"):
        receipts.submit_epoch(*header(), 0b011, keys_of(oracle_keys, 0, 1), other)


def test_receipts_out_of_order_are_refused(
    receipts: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    keys = keys_of(oracle_keys, 0, 1)
    for epoch in (0, 2):
        with boa.reverts("usage_receipts: epoch out of order"):
            receipts.submit_epoch(*header(epoch), 0b011, keys, bytes(range(128)))


@pytest.mark.parametrize(
    ("signers", "indexes", "message"),
    [
        (0b001, (0,), "too few signers"),
        (0b000, (), "too few signers"),
        (0b1001, (0, 3), "signer index beyond oracle count"),
        (1 << 200, (), "signer index beyond oracle count"),
        (0b011, (0, 2), "public key does not match signer"),
        (0b011, (1, 0), "public key does not match signer"),
        (0b011, (0,), "too few public keys"),
        (0b011, (0, 1, 2), "too many public keys"),
    ],
)
def test_wrong_signer_sets_are_refused_before_any_pairing(
    receipts: Any,
    oracle_keys: tuple[OracleKey, ...],
    signers: int,
    indexes: tuple[int, ...],
    message: str,
) -> None:
    keys = keys_of(oracle_keys, *indexes)
    with boa.reverts(f"usage_receipts: {message}"):
        receipts.submit_epoch(*header(), signers, keys, bytes(range(128)))


def test_a_removed_oracle_no_longer_signs(
    receipts: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    receipts.remove_oracle(2)
    with boa.reverts("usage_receipts: signer is not an active oracle"):
        receipts.submit_epoch(*header(), 0b101, keys_of(oracle_keys, 0, 2), bytes(range(128)))


def test_malformed_submissions_are_refused(
    receipts: Any, fresh: Any, oracle_keys: tuple[OracleKey, ...]
) -> None:
    keys = keys_of(oracle_keys, 0, 1)
    with boa.reverts("usage_receipts: signature is not 128 bytes"):
        receipts.submit_epoch(*header(), 0b011, keys, bytes(range(127)))
    with boa.reverts("usage_receipts: signature is the point at infinity"):
        receipts.submit_epoch(*header(), 0b011, keys, bytes(128))
    with boa.reverts("usage_receipts: threshold not set"):
        fresh.submit_epoch(*header(), 0, b"", bytes(range(128)))


# -- voiding


def test_the_settled_record_is_the_committed_one(settled: Settled) -> None:
    record = settled.record
    assert record[1] == settled.tree.root
    assert record[2:4] == (len(settled.lines), sum(line[3] for line in settled.lines))
    assert record[5] == 1
    assert settled.receipts.commitment(1) == commitment_of(record)


def test_the_owner_voids_a_receipt_within_its_dispute_window(
    settled: Settled, stranger: str
) -> None:
    receipts, record = settled.receipts, settled.record
    with boa.env.prank(stranger), boa.reverts("usage_receipts: caller is not the owner"):
        receipts.void_epoch(1, record)
    receipts.void_epoch(1, record)
    (logged,) = events(receipts, "EpochVoided")
    assert logged.epoch == 1
    assert receipts.voided(1) is True
    # The flag is the lowest bit; the rest still names the committed record.
    committed = int.from_bytes(commitment_of(record))
    assert receipts.commitment(1) == (committed | 1).to_bytes(32)
    with boa.reverts("usage_receipts: epoch already void"):
        receipts.void_epoch(1, record)


def test_voiding_needs_the_committed_record(settled: Settled) -> None:
    receipts, record = settled.receipts, settled.record
    for wrong in (
        (record[0], keccak(text="other lines"), *record[2:]),
        (*record[:4], record[4] + 1, record[5]),
        (*record[:5], 0b11),
    ):
        with boa.reverts("usage_receipts: epoch record does not match the receipt"):
            receipts.void_epoch(1, wrong)
    assert receipts.voided(1) is False


def test_no_voiding_after_the_window_or_of_missing_epochs(settled: Settled) -> None:
    receipts, record = settled.receipts, settled.record
    with boa.reverts("usage_receipts: epoch not submitted"):
        receipts.void_epoch(2, record)
    boa.env.time_travel(seconds=settled.submitted_at + DISPUTE_WINDOW - now())
    with boa.reverts("usage_receipts: dispute window closed"):
        receipts.void_epoch(1, record)
    # A later submitted_at would reopen the window, but it is not the committed record.
    later = (*record[:4], now(), record[5])
    with boa.reverts("usage_receipts: epoch record does not match the receipt"):
        receipts.void_epoch(1, later)
    assert receipts.voided(1) is False
