"""Log queries on a real anvil: epochs submitted over many blocks, read back by their indexed
``epoch`` topic in chunks of ``max_log_range`` blocks, with a node that refuses wide ranges
simulated in front of anvil (anvil itself has no limit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_utils import keccak

from apicredits.chain import ChainError, Deployment, connect, deploy
from apicredits.chain.errors import LogRangeTooLarge
from apicredits.chain.rpc import RpcChain
from apicredits.oracle.bls import OracleKey, aggregate_signatures
from apicredits.oracle.merkle import MerkleTree
from apicredits.oracle.messages import SETTLEMENT_LINE_TYPES, EpochSummary
from apicredits.oracle.records import EpochRecord, committed_epoch
from apicredits.settings import Settings
from oracle_support import oracle_key

pytestmark = pytest.mark.integration

EPOCHS = (1, 2, 3, 4)
VOIDED = 2


@dataclass
class Epochs:
    chain: RpcChain
    d: Deployment
    records: dict[int, EpochRecord]
    blocks: dict[int, int]  # epoch -> block of its submission

    @property
    def start(self) -> int:
        return self.d.deploy_block


def submit(chain: RpcChain, d: Deployment, oracle: OracleKey, epoch: int) -> tuple[int, Any]:
    line = (epoch, chain.accounts[1], b"provider".ljust(32, b"\0"), 1_000 * epoch, 0)
    tree = MerkleTree.build(SETTLEMENT_LINE_TYPES, [line])
    summary = EpochSummary(
        chain_id=chain.chain_id,
        receipts_contract=d.receipts,
        epoch=epoch,
        events_root=keccak(b"events-%d" % epoch),
        lines_root=tree.root,
        line_count=1,
        total_micro=line[3],
    )
    header = (epoch, summary.events_root, tree.root, 1, summary.total_micro)
    receipt = chain.transact(
        d.receipts, "usage_receipts", "submit_epoch", *header, 1, oracle.public_key,
        aggregate_signatures([oracle.sign(summary.message())]),
    )  # fmt: skip
    (logged,) = chain.receipt_events(receipt, "usage_receipts", "EpochSubmitted")
    return receipt.block_number, EpochRecord.from_log(logged.args)


@pytest.fixture(scope="module")
def epochs(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Epochs]:
    chain = RpcChain(anvil_url)
    try:
        d = deploy(chain, path=Path(tmp_path_factory.mktemp("logs")) / "deployment.json")
        oracle = oracle_key("log-queries-oracle")
        chain.transact(d.receipts, "usage_receipts", "register_oracle",
                       oracle.public_key, oracle.proof_of_possession())  # fmt: skip
        chain.transact(d.receipts, "usage_receipts", "set_threshold", 1)
        records, blocks = {}, {}
        for epoch in EPOCHS:
            chain.mine(2)  # spread the epochs over more blocks than one chunk
            blocks[epoch], records[epoch] = submit(chain, d, oracle, epoch)
        chain.transact(d.receipts, "usage_receipts", "void_epoch", VOIDED, records[VOIDED].values())
        chain.mine(2)
        yield Epochs(chain, d, records, blocks)
    finally:
        chain.close()


Requests = list[tuple[int, int, list[Any]]]
Query = dict[str, Any]


def intercept(
    chain: RpcChain,
    monkeypatch: pytest.MonkeyPatch,
    handle: Callable[[Query, Callable[[], Any]], Any],
) -> None:
    """Route every eth_getLogs through ``handle(query, forward)`` (web3 composes its request
    function once: drop that so the patched ``make_request`` is used)."""
    provider = chain.w3.provider
    forward = provider.make_request

    def make_request(method: Any, params: Any) -> Any:
        if method == "eth_getLogs":
            return handle(params[0], lambda: forward(method, params))
        return forward(method, params)

    monkeypatch.setattr(provider, "make_request", make_request)
    monkeypatch.setattr(provider, "_request_func_cache", (None, None))


def width(query: Query) -> int:
    return int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1


@pytest.fixture
def get_logs(epochs: Epochs, monkeypatch: pytest.MonkeyPatch) -> Requests:
    """Every eth_getLogs the chain sends, as (from, to, topics); at most 3 blocks each."""
    sent: Requests = []

    def spy(query: Query, forward: Callable[[], Any]) -> Any:
        sent.append((int(query["fromBlock"], 16), int(query["toBlock"], 16), query["topics"]))
        return forward()

    intercept(epochs.chain, monkeypatch, spy)
    monkeypatch.setattr(epochs.chain, "max_log_range", 3)
    return sent


def refusing(
    epochs: Epochs, monkeypatch: pytest.MonkeyPatch, widest: int, how: str = "json-rpc"
) -> list[int]:
    """A provider in front of anvil that refuses eth_getLogs over more than ``widest`` blocks
    the way Infura does (a JSON-RPC error), or with HTTP 413 as some gateways do; returns
    the widths asked for."""
    asked: list[int] = []

    def limited(query: Query, forward: Callable[[], Any]) -> Any:
        asked.append(width(query))
        if width(query) > widest:
            if how == "http-413":
                response = requests.Response()
                response.status_code, response._content = 413, b"Payload Too Large"
                raise requests.HTTPError("413 Client Error", response=response)
            error = {"code": -32005, "message": "query returned more than 10000 results"}
            return {"jsonrpc": "2.0", "id": 1, "error": error}
        return forward()

    intercept(epochs.chain, monkeypatch, limited)
    return asked


def topic(epoch: int) -> str:
    return "0x" + epoch.to_bytes(32, "big").hex()


def test_each_epoch_s_logs_come_back_alone_chunk_by_chunk(
    epochs: Epochs, get_logs: Requests
) -> None:
    chain, head = epochs.chain, epochs.chain.block_number()
    assert head - epochs.start + 1 > 3 * len(EPOCHS)
    for epoch in EPOCHS:
        get_logs.clear()
        [log] = chain.logs(epochs.d.receipts, "usage_receipts", "EpochSubmitted", epochs.start,
                           head, where={"epoch": epoch})  # fmt: skip
        assert log.args["epoch"] == epoch
        assert log.block_number == epochs.blocks[epoch]
        assert EpochRecord.from_log(log.args) == epochs.records[epoch]
        # the node filtered by topic, over consecutive chunks of at most 3 blocks
        assert {str(topics[1]) for _, _, topics in get_logs} == {topic(epoch)}
        assert [(lo, hi) for lo, hi, _ in get_logs] == [
            (lo, min(lo + 2, head)) for lo in range(epochs.start, head + 1, 3)
        ]
    none = chain.logs(epochs.d.receipts, "usage_receipts", "EpochSubmitted", epochs.start, head,
                      where={"epoch": 99})  # fmt: skip
    assert none == []


def test_several_events_share_the_epoch_filter_in_chain_order(
    epochs: Epochs, get_logs: Requests
) -> None:
    chain, head = epochs.chain, epochs.chain.block_number()
    found = chain.events(epochs.d.receipts, "usage_receipts", ["EpochSubmitted", "EpochVoided"],
                         epochs.start, head, where={"epoch": [VOIDED, 3]})  # fmt: skip
    assert [(e.event, e.args["epoch"]) for e in found] == [
        ("EpochSubmitted", VOIDED), ("EpochSubmitted", 3), ("EpochVoided", VOIDED)]  # fmt: skip
    assert all(topics[1] == [topic(VOIDED), topic(3)] for _, _, topics in get_logs)


def test_committed_epoch_looks_in_the_hinted_block_first(
    epochs: Epochs, get_logs: Requests
) -> None:
    chain, head = epochs.chain, epochs.chain.block_number()
    hinted = committed_epoch(chain, epochs.d.receipts, 3, epochs.start, head,
                             hint_block=epochs.blocks[3])  # fmt: skip
    assert hinted.record == epochs.records[3]
    assert [(lo, hi) for lo, hi, _ in get_logs] == [(epochs.blocks[3], epochs.blocks[3])]
    get_logs.clear()
    searched = committed_epoch(chain, epochs.d.receipts, 3, epochs.start, head, hint_block=1)
    assert searched.record == epochs.records[3]
    assert len(get_logs) > 1
    assert all(hi - lo < 3 and topics[1] == topic(3) for lo, hi, topics in get_logs)
    voided = committed_epoch(chain, epochs.d.receipts, VOIDED, epochs.start, head)
    assert (voided.record, voided.voided) == (epochs.records[VOIDED], True)


@pytest.mark.parametrize("how", ["json-rpc", "http-413"])
def test_a_range_the_node_refuses_is_halved_until_it_answers(
    epochs: Epochs, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    chain, head = epochs.chain, epochs.chain.block_number()
    everything = chain.events(epochs.d.receipts, "usage_receipts",
                              ["EpochSubmitted", "EpochVoided"], epochs.start, head)  # fmt: skip
    assert len(everything) == len(EPOCHS) + 1
    asked = refusing(epochs, monkeypatch, widest=2, how=how)
    monkeypatch.setattr(chain, "max_log_range", 8)
    again = chain.events(epochs.d.receipts, "usage_receipts", ["EpochSubmitted", "EpochVoided"],
                         epochs.start, head)  # fmt: skip
    assert again == everything
    blocks = head - epochs.start + 1
    assert asked[:3] == [8, 4, 2]  # refused, refused, answered: 2 blocks a call from then on
    assert asked[3:] == [2] * (blocks // 2 - 1) + [1] * (blocks % 2)
    [log] = chain.logs(epochs.d.receipts, "usage_receipts", "EpochSubmitted", epochs.start,
                       head, where={"epoch": 4})  # fmt: skip
    assert log.block_number == epochs.blocks[4]


def test_a_node_refusing_even_one_block_fails_with_a_chain_error(
    epochs: Epochs, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing(epochs, monkeypatch, widest=0)
    with pytest.raises(LogRangeTooLarge, match="more than 10000 results") as raised:
        epochs.chain.logs(epochs.d.receipts, "usage_receipts", "EpochSubmitted", epochs.start,
                          epochs.start + 5)  # fmt: skip
    assert isinstance(raised.value, ChainError)
    assert (raised.value.from_block, raised.value.to_block) == (epochs.start, epochs.start)


def test_the_chunk_size_comes_from_the_settings(anvil_url: str, tmp_path: Path) -> None:
    chain = connect(Settings(data_dir=tmp_path, chain_rpc_url=anvil_url, chain_log_range=7))
    try:
        assert chain.max_log_range == 7
    finally:
        chain.close()
    default = connect(Settings(data_dir=tmp_path, chain_rpc_url=anvil_url))
    try:
        assert default.max_log_range == 5_000
    finally:
        default.close()
