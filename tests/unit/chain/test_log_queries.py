"""Log queries: indexed arguments encoded as topics, ranges read in bounded chunks (halved
when the node refuses one), and the embedded chain filtering by topics like a node."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from apicredits.chain import ChainError, Deployment, RawLog
from apicredits.chain.abi import ContractInterface, encode_topic
from apicredits.chain.base import default_artifacts, logs_in_chunks
from apicredits.chain.embedded import EmbeddedChain
from apicredits.chain.errors import LogRangeTooLarge
from apicredits.chain.rpc import _range_refused
from chain_support import deployed, pay_in

TENANT = "0x" + "ab" * 20
PROVIDER_ID = b"provider".ljust(32, b"\0")


def iface(name: str) -> ContractInterface:
    return ContractInterface.from_artifact(name, default_artifacts(name))


# -- topics
def test_value_types_encode_as_the_evm_logs_them() -> None:
    assert encode_topic("uint64", 5) == (5).to_bytes(32, "big")
    assert encode_topic("uint256", 2**256 - 1) == b"\xff" * 32
    assert encode_topic("int8", -1) == b"\xff" * 32
    assert encode_topic("address", TENANT) == bytes(12) + b"\xab" * 20
    assert encode_topic("address", TENANT.upper().replace("0X", "0x")) == bytes(12) + b"\xab" * 20
    assert encode_topic("bytes32", PROVIDER_ID) == PROVIDER_ID
    assert encode_topic("bytes32", "0x" + PROVIDER_ID.hex()) == PROVIDER_ID
    assert encode_topic("bytes4", b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04" + bytes(28)
    assert encode_topic("bool", True) == (1).to_bytes(32, "big")
    assert encode_topic("string", "acme") == keccak(b"acme")
    assert encode_topic("bytes", b"\x01\x02") == keccak(b"\x01\x02")


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("uint64", -1, "Cannot be encoded in 64 bits"),
        ("uint64", 2**64, "Cannot be encoded in 64 bits"),
        ("uint64", "5", "cannot be encoded by UnsignedIntegerEncoder"),
        ("uint64", True, "cannot be encoded by UnsignedIntegerEncoder"),
        ("address", "0x1234", "cannot be encoded by AddressEncoder"),
        ("bytes32", b"\x01" * 33, "cannot be encoded by BytesEncoder"),
        ("bytes32", "0xzz", "non-hexadecimal"),
        ("string", b"acme", "is not a string"),
        ("uint256[]", [1, 2], "not supported"),
    ],
)
def test_a_value_of_another_type_is_refused(kind: str, value: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        encode_topic(kind, value)


def test_a_filter_puts_each_value_at_its_argument_s_position() -> None:
    treasury = iface("settlement_treasury")
    epoch, tenant = (5).to_bytes(32, "big"), bytes(12) + b"\xab" * 20
    assert treasury.topic_filter("LineExecuted", {"epoch": 5}) == ((epoch,),)
    assert treasury.topic_filter("LineExecuted", {"provider_id": PROVIDER_ID, "epoch": 5}) == (
        (epoch,), None, (PROVIDER_ID,))  # fmt: skip
    assert treasury.topic_filter("LineExecuted", {"tenant": TENANT}) == (None, (tenant,))
    assert treasury.topic_filter("LineExecuted", {"epoch": [5, 6, 5]}) == (
        (epoch, (6).to_bytes(32, "big")),)  # fmt: skip
    assert treasury.topic_filter("LineExecuted", {}) == ()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"amount": 1}, "no indexed input 'amount' \\(indexed: epoch, tenant, provider_id\\)"),
        ({"epochs": 1}, "no indexed input 'epochs'"),
        ({"epoch": -1}, "epoch=-1 is not a uint64"),
        ({"tenant": "acme"}, "tenant='acme' is not a address"),
        ({"epoch": []}, "no value given for 'epoch'"),
    ],
)
def test_a_filter_on_what_the_event_does_not_index_is_refused(
    where: dict[str, Any], message: str
) -> None:
    with pytest.raises(ChainError, match=message):
        iface("settlement_treasury").topic_filter("LineExecuted", where)


def test_events_indexing_a_name_differently_cannot_share_a_query() -> None:
    chain = EmbeddedChain()
    try:
        vault = "0x" + "11" * 20
        with pytest.raises(ChainError, match="do not index tenant alike"):
            chain.events(
                vault, "credit_vault", ["Deposit", "Locked"], 0, 0, where={"tenant": TENANT}
            )
        with pytest.raises(ChainError, match="no indexed input 'payer'"):
            chain.events(
                vault, "credit_vault", ["Deposit", "Withdraw"], 0, 0, where={"payer": TENANT}
            )
    finally:
        chain.close()


# -- chunks
class Node:
    """A fake ``query(lo, hi)``: one log per block, refusing ranges wider than ``refuse_over``."""

    def __init__(self, refuse_over: int | None = None) -> None:
        self.refuse_over = refuse_over
        self.calls: list[tuple[int, int]] = []

    def __call__(self, lo: int, hi: int) -> list[int]:
        self.calls.append((lo, hi))
        if self.refuse_over is not None and hi - lo + 1 > self.refuse_over:
            raise LogRangeTooLarge(lo, hi, "query returned more than 10000 results")
        return list(range(lo, hi + 1))


def test_a_wide_range_is_read_in_consecutive_chunks_in_order() -> None:
    node = Node()
    assert logs_in_chunks(node, 10, 22, 5) == list(range(10, 23))
    assert node.calls == [(10, 14), (15, 19), (20, 22)]


def test_without_a_limit_a_range_is_one_query_and_an_empty_one_none() -> None:
    node = Node()
    assert logs_in_chunks(node, 3, 10_000, None) == list(range(3, 10_001))
    assert logs_in_chunks(node, 5, 4, 3) == []
    assert node.calls == [(3, 10_000)]
    with pytest.raises(ValueError, match="at least 1"):
        logs_in_chunks(node, 0, 1, 0)


def test_a_refused_chunk_is_halved_and_the_smaller_size_kept() -> None:
    node = Node(refuse_over=3)
    assert logs_in_chunks(node, 0, 9, 8) == list(range(10))
    assert node.calls == [(0, 7), (0, 3), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


def test_a_single_block_refused_fails_with_a_chain_error() -> None:
    node = Node(refuse_over=0)
    with pytest.raises(ChainError, match="blocks 4-4"):
        logs_in_chunks(node, 4, 9, 4)
    assert node.calls == [(4, 7), (4, 5), (4, 4)]


@given(
    st.integers(0, 1_000),
    st.integers(0, 300),
    st.one_of(st.none(), st.integers(1, 400)),
    st.one_of(st.none(), st.integers(1, 50)),
)
def test_chunks_cover_the_range_once_within_the_limits(
    start: int, width: int, max_range: int | None, refuse_over: int | None
) -> None:
    node = Node(refuse_over)
    end = start + width - 1
    assert logs_in_chunks(node, start, end, max_range) == list(range(start, end + 1))
    answered = [(lo, hi) for lo, hi in node.calls if refuse_over is None or hi - lo < refuse_over]
    if width:
        assert (answered[0][0], answered[-1][1]) == (start, end)
        assert all(b[0] == a[1] + 1 for a, b in pairwise(answered))
    else:
        assert node.calls == []
    assert all(hi - lo + 1 <= (max_range or width) for lo, hi in node.calls)


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32005, "message": "query returned more than 10000 results"},
        {"code": -32602, "message": "Log response size exceeded. (up to a 2K block range)"},
        {"code": -32000, "message": "block range is too wide"},
        {"code": -32000, "message": "exceed maximum block range: 5000"},
        {"code": -32000, "message": "query exceeds max block range 10000"},
        {"code": -32600, "message": "eth_getLogs: maximum [from, to] blocks distance: 3500"},
    ],
)
def test_the_ways_providers_refuse_a_range_are_recognised(error: dict[str, Any]) -> None:
    assert _range_refused(error)


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32601, "message": "the method eth_getLogs does not exist"},
        {"code": -32000, "message": "header not found"},
        {"code": 3, "message": "execution reverted"},
    ],
)
def test_other_errors_are_not_taken_for_a_range_refusal(error: dict[str, Any]) -> None:
    assert not _range_refused(error)


# -- the embedded chain
@pytest.fixture(scope="module")
def deposits() -> Iterator[tuple[EmbeddedChain, Deployment, list[str]]]:
    """Deposits to three tenants, round robin: tenant i deposits 10 * round + i."""
    chain = EmbeddedChain()
    d = deployed(chain)
    tenants = chain.accounts[1:4]
    for round_ in range(3):
        for i, tenant in enumerate(tenants):
            pay_in(chain, d, tenant, 10 * round_ + i + 1)
    yield chain, d, tenants
    chain.close()


def test_the_embedded_chain_returns_only_the_matching_logs(
    deposits: tuple[EmbeddedChain, Deployment, list[str]],
) -> None:
    chain, d, tenants = deposits
    head = chain.block_number()
    everything = chain.logs(d.vault, "credit_vault", "Deposit", 0, head)
    assert len(everything) == 9
    for tenant in tenants:
        mine = chain.logs(d.vault, "credit_vault", "Deposit", 0, head, where={"tenant": tenant})
        assert mine == [e for e in everything if e.args["tenant"] == tenant]
        assert len(mine) == 3
    a, b, _ = tenants
    both = chain.logs(d.vault, "credit_vault", "Deposit", 0, head, where={"tenant": [a, b]})
    assert both == [e for e in everything if e.args["tenant"] in (a, b)]
    stranger = chain.accounts[5]
    assert chain.logs(d.vault, "credit_vault", "Deposit", 0, head, where={"tenant": stranger}) == []
    # topic 2 alone, and both positions at once
    by_payer = chain.logs(d.vault, "credit_vault", "Deposit", 0, head, where={"payer": b})
    assert [e.args["tenant"] for e in by_payer] == [b, b, b]
    assert chain.logs(d.vault, "credit_vault", "Deposit", 0, head,
                      where={"tenant": a, "payer": b}) == []  # fmt: skip


def test_a_small_max_log_range_gives_the_same_logs_in_the_same_order(
    deposits: tuple[EmbeddedChain, Deployment, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    chain, d, tenants = deposits
    head = chain.block_number()
    everything = chain.events(d.vault, "credit_vault", ["Deposit", "Withdraw"], 0, head)
    mine = chain.logs(d.vault, "credit_vault", "Deposit", 0, head, where={"tenant": tenants[1]})
    calls: list[tuple[int, int]] = []
    query = chain._query_logs

    def counted(address: str, topics: Any, indexed: Any, lo: int, hi: int) -> list[RawLog]:
        calls.append((lo, hi))
        return query(address, topics, indexed, lo, hi)

    monkeypatch.setattr(chain, "_query_logs", counted)
    monkeypatch.setattr(chain, "max_log_range", 3)
    assert chain.events(d.vault, "credit_vault", ["Deposit", "Withdraw"], 0, head) == everything
    assert calls == [(lo, min(lo + 2, head)) for lo in range(0, head + 1, 3)]
    assert chain.logs(d.vault, "credit_vault", "Deposit", 0, head,
                      where={"tenant": tenants[1]}) == mine  # fmt: skip
