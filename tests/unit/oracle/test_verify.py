"""One epoch settled end to end on the embedded chain by the ``Settler`` (2 oracle nodes,
t = 2), then its receipts verified against the chain, intact and tampered; and one epoch
voided within its dispute window, which the settler then never pays and verify reports.
Registering two keys and one submission cost three pairings in py-evm (a few seconds) per
fixture."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from apicredits.chain import (
    Chain,
    Deployment,
    TransactionReverted,
    deploy,
    deposit_test_funds,
)
from apicredits.chain.embedded import EmbeddedChain
from apicredits.metering.events import Meter, UsageDomain
from apicredits.oracle.aggregator import Settler
from apicredits.oracle.epochs import receipt_document
from apicredits.oracle.node import DatabaseSources, OracleNode
from apicredits.oracle.records import VOID_FLAG, CommittedEpoch, EpochRecord, committed_epoch
from apicredits.oracle.validation import registry_history_from_chain
from apicredits.oracle.verify import ChainReader, verify_receipt
from oracle_support import (
    GATEWAY_METER,
    PROVIDER_ID,
    PROVIDER_SIGNER,
    TARIFFS,
    GatewayDb,
    gateway_db,
    oracle_key,
    usage_event,
)

KEYS = [oracle_key(f"verify-{i}") for i in range(2)]
WINDOW = 3600


@dataclass
class Settled:
    chain: Chain
    d: Deployment
    g: GatewayDb
    receipts: list[dict[str, Any]]
    payout: str


@dataclass
class Setup:
    chain: Chain
    d: Deployment
    g: GatewayDb
    settler: Settler
    events: list[Any]
    payout: str

    async def receipt_documents(self) -> list[dict[str, Any]]:
        docs = [
            await self.g.db.read(lambda c, e=e: receipt_document(c, "0x" + e.event.event_id.hex()))
            for e in self.events
        ]
        return [doc for doc in docs if doc is not None]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def setup(tmp_path: Any, window: int) -> Setup:
    """Two oracles (t = 2), a provider, two funded tenants and three usage events in the
    gateway's database, a settler over them; both dispute windows ``window`` seconds."""
    chain = EmbeddedChain(None)
    d = deploy(chain, dispute_window_seconds=window)
    admin, payout, tenant_a, tenant_b = chain.accounts[1:5]
    registry = d.address("provider_registry")
    chain.transact(registry, "provider_registry", "register", PROVIDER_ID,
                   PROVIDER_SIGNER.address, payout, sender=admin)  # fmt: skip
    for tenant in (tenant_a, tenant_b):
        deposit_test_funds(chain, d, tenant=tenant, amount=5_000_000)
    for key in KEYS:
        chain.transact(d.receipts, "usage_receipts", "register_oracle",
                       key.public_key, key.proof_of_possession())  # fmt: skip
    chain.transact(d.receipts, "usage_receipts", "set_threshold", 2)

    domain = UsageDomain(chain.chain_id, d.receipts)
    g = await gateway_db(tmp_path / "gw.db")
    await g.add_job("job-1", 1_000_000)
    later = int(time.time()) + 60  # after the provider's registration
    events = [
        usage_event(domain, 1, tenant=tenant_a),
        usage_event(domain, 2, tenant=tenant_b, tokens=(10, 10)),
        usage_event(domain, 3, tenant=tenant_a, meter=Meter.PROVIDER, timestamp=later),
    ]
    await g.add_events(events, domain)

    def history() -> Any:
        return registry_history_from_chain(chain, registry, d.deploy_block)

    nodes = {
        f"http://n{i}": httpx.ASGITransport(app=OracleNode(
            key, domain, registry=history, sources=DatabaseSources(g.db), fee_bps=100,
            gateway_meter=GATEWAY_METER.address,
        ).app())
        for i, key in enumerate(KEYS)
    }  # fmt: skip
    settler = Settler(
        g.db, chain, d, list(nodes), tariffs=TARIFFS.__getitem__, fee_bps=100,
        gateway_meter=GATEWAY_METER.address, max_events=100, max_seconds=0,
        transport=nodes.__getitem__,
    )  # fmt: skip
    return Setup(chain, d, g, settler, events, payout)


@pytest.fixture(scope="module")
async def settled(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settled]:
    s = await setup(tmp_path_factory.mktemp("verify"), 0)
    try:
        reports = await s.settler.run_once()
        assert [(r.epoch, r.state, r.events, r.lines) for r in reports] == [(1, "settled", 3, 2)]
        assert reports[0].signers == [0, 1]
        yield Settled(s.chain, s.d, s.g, await s.receipt_documents(), s.payout)
    finally:
        await s.g.db.aclose()
        s.chain.close()


def committed(s: Settled | Setup, epoch: int = 1, hint: Any = None) -> CommittedEpoch:
    return committed_epoch(s.chain, s.d.receipts, epoch, s.d.deploy_block,
                           s.chain.block_number(), hint_block=hint)  # fmt: skip


def failures(receipt: dict[str, Any], s: Settled) -> list[str]:
    checks = verify_receipt(receipt, s.chain, s.d, gateway_meter=GATEWAY_METER.address)
    return [c.line() for c in checks if not c.ok]


@pytest.mark.anyio
async def test_the_settler_paid_the_provider_and_burnt_the_credits(settled: Settled) -> None:
    s = settled
    balance = int(s.chain.call(s.d.stablecoin, "test_stablecoin", "balanceOf", s.payout))
    amount = 200 + 200 + 30  # tenant a: two events of 200, tenant b: 10 in + 10 out
    fees = 4 + 0  # 400 * 1% and 30 * 1% rounded down
    assert balance == amount - fees
    assert all(r["executed_tx"] for r in s.receipts)


@pytest.mark.anyio
async def test_verify_passes_on_every_receipt(settled: Settled) -> None:
    for receipt in settled.receipts:
        checks = verify_receipt(receipt, settled.chain, settled.d,
                                gateway_meter=GATEWAY_METER.address)  # fmt: skip
        assert [c.line() for c in checks if not c.ok] == []
        names = [c.name for c in checks]
        assert names == ["event digest", "event signature", "epoch on chain", "merkle proof",
                         "settlement line", "line proof", "line executed"]  # fmt: skip


@pytest.mark.anyio
async def test_verify_says_exactly_what_a_tampered_receipt_breaks(settled: Settled) -> None:
    s = settled
    receipt = copy.deepcopy(s.receipts[0])
    receipt["events_proof"][0] = "0x" + "11" * 32
    failed = [c for c in verify_receipt(receipt, s.chain, s.d, gateway_meter=GATEWAY_METER.address)
              if not c.ok]  # fmt: skip
    assert [c.name for c in failed] == ["merkle proof"]
    assert "the on-chain events root is 0x" in failed[0].line()

    receipt = copy.deepcopy(s.receipts[0])
    receipt["line"]["amount_micro"] += 1
    failed = [c for c in verify_receipt(receipt, s.chain, s.d, gateway_meter=GATEWAY_METER.address)
              if not c.ok]  # fmt: skip
    assert [c.name for c in failed] == ["line proof", "line executed"]

    receipt = copy.deepcopy(s.receipts[0])
    receipt["event"]["event"]["cost_micro"] += 1  # the signature no longer matches
    checks = verify_receipt(receipt, s.chain, s.d, gateway_meter=GATEWAY_METER.address)
    assert [c.name for c in checks if not c.ok][:2] == ["event digest", "event signature"]

    checks = verify_receipt(s.receipts[0], s.chain, s.d)  # no trusted gateway meter
    assert [c.line() for c in checks if not c.ok] == [
        "event signature: FAILED — signed by "
        f"{GATEWAY_METER.address} as gateway meter; pass --gateway-meter to trust one"
    ]


@pytest.mark.anyio
async def test_verify_reads_the_gateways_proof_document(settled: Settled) -> None:
    mine = settled.receipts[0]
    gateways = {
        "event_id": mine["event"]["event"]["event_id"], "state": "settled",
        "signed_event": mine["event"], "digest": mine["digest"],
        "epoch": {"epoch": mine["epoch"], "state": "settled"},
        "events_root": mine["events_root"], "leaf_index": mine["leaf_index"],
        "proof": mine["events_proof"], "receipt": {"tx": mine["submit_tx"], "block": 1},
        "settlement": [{
            "line_index": mine["line_index"], "tenant_address": mine["line"]["tenant"],
            "provider_id": mine["line"]["provider_id"],
            "amount_micro": mine["line"]["amount_micro"], "fee_micro": mine["line"]["fee_micro"],
            "lines_root": mine["lines_root"], "proof": mine["lines_proof"],
            "executed_tx": mine["executed_tx"], "executed_block": mine["executed_block"],
        }],
    }  # fmt: skip
    checks = verify_receipt(gateways, settled.chain, settled.d, gateway_meter=GATEWAY_METER.address)
    assert [c.line() for c in checks if not c.ok] == []
    assert len(checks) == 7


@pytest.mark.anyio
async def test_verify_asks_for_the_epoch_s_logs_by_topic_in_bounded_chunks(
    settled: Settled, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, receipt = settled, copy.deepcopy(settled.receipts[0])
    for hint in ("submit_tx", "submit_block", "executed_tx", "executed_block"):
        receipt.pop(hint)
    asked: list[tuple[bytes, Any, int, int]] = []
    query = s.chain._query_logs

    def spy(address: str, topics: Any, indexed: Any, lo: int, hi: int) -> list[Any]:
        asked.append((topics[0], indexed, lo, hi))
        return query(address, topics, indexed, lo, hi)

    monkeypatch.setattr(s.chain, "_query_logs", spy)
    monkeypatch.setattr(s.chain, "max_log_range", 2)
    assert failures(receipt, s) == []
    assert all(hi - lo < 2 for *_, lo, hi in asked)
    submitted = s.chain.interface("usage_receipts").topic("EpochSubmitted")
    executed = s.chain.interface("settlement_treasury").topic("LineExecuted")
    epoch = (receipt["epoch"]).to_bytes(32, "big")
    tenant = bytes(12) + bytes.fromhex(receipt["line"]["tenant"][2:])
    provider = bytes.fromhex(receipt["line"]["provider_id"][2:])
    assert {str(i) for t, i, *_ in asked if t == submitted} == {str(((epoch,),))}
    assert {str(i) for t, i, *_ in asked if t == executed} == {
        str(((epoch,), (tenant,), (provider,)))}  # fmt: skip
    head, start = s.chain.block_number(), s.d.deploy_block
    assert [(lo, hi) for t, _, lo, hi in asked if t == executed] == [
        (lo, min(lo + 1, head)) for lo in range(start, head + 1, 2)]  # fmt: skip


@pytest.mark.anyio
async def test_one_reader_reads_each_epoch_registry_and_line_once(
    settled: Settled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A usage export of many receipts: one registry replay, one epoch lookup, one
    LineExecuted query per line, whatever the number of receipts."""
    s = settled
    receipts = [copy.deepcopy(r) for _ in range(5) for r in s.receipts]  # 1 epoch, 2 lines
    for receipt in receipts:
        for hint in ("submit_tx", "submit_block", "executed_tx", "executed_block"):
            receipt.pop(hint)
    asked: list[bytes] = []
    calls: list[str] = []
    query, call = s.chain._query_logs, s.chain.call

    def spy_logs(address: str, topics: Any, indexed: Any, lo: int, hi: int) -> list[Any]:
        asked.append(topics[0])
        return query(address, topics, indexed, lo, hi)

    def spy_call(address: str, artifact: str, function: str, *args: Any) -> Any:
        calls.append(function)
        return call(address, artifact, function, *args)

    monkeypatch.setattr(s.chain, "_query_logs", spy_logs)
    monkeypatch.setattr(s.chain, "call", spy_call)
    reader = ChainReader(s.chain, s.d)
    for receipt in receipts:
        checks = verify_receipt(receipt, s.chain, s.d, gateway_meter=GATEWAY_METER.address,
                                reader=reader)  # fmt: skip
        assert [c.line() for c in checks if not c.ok] == []
    registry = s.chain.interface("provider_registry")
    replays = [t for t in asked if t in {registry.topic("ProviderRegistered")}]
    submitted = s.chain.interface("usage_receipts").topic("EpochSubmitted")
    executed = s.chain.interface("settlement_treasury").topic("LineExecuted")
    provider_signed = [r for r in receipts if r["event"]["event"]["meter"] != "gateway"]
    assert len(replays) == (1 if provider_signed else 0)
    assert asked.count(submitted) == 1
    lines = {(r["line"]["tenant"], r["line"]["provider_id"]) for r in receipts}
    assert asked.count(executed) == len(lines) == 2
    assert calls.count("commitment") == 1
    assert calls.count("executed") == len(lines)


# -- the epoch record: rebuilt from the EpochSubmitted log, held to the stored commitment


def test_the_committed_record_is_what_the_settler_submitted(settled: Settled) -> None:
    s, mine = settled, settled.receipts[0]
    found = committed(s, hint=mine["submit_block"])
    record = found.record
    assert record is not None
    assert found.problem is None
    assert not found.voided
    assert "0x" + record.events_root.hex() == mine["events_root"]
    assert "0x" + record.lines_root.hex() == mine["lines_root"]
    assert (record.line_count, record.signers) == (2, 0b11)
    assert record.submitted_at == s.chain.block_timestamp(mine["submit_block"])
    stored = s.chain.call(s.d.receipts, "usage_receipts", "commitment", 1)
    assert stored == "0x" + record.commitment().hex()
    on_chain = s.chain.call(s.d.receipts, "usage_receipts", "epoch_commitment", record.values())
    assert on_chain == stored
    assert committed(s, hint=1).record == record  # a wrong hint only costs a wider search


@pytest.mark.anyio
async def test_verify_holds_the_receipts_roots_to_the_committed_ones(settled: Settled) -> None:
    s = settled
    record = committed(s).record
    assert record is not None
    for name, ours in (("events_root", record.events_root), ("lines_root", record.lines_root)):
        receipt = copy.deepcopy(s.receipts[0])
        receipt[name] = "0x" + "22" * 32
        assert failures(receipt, s) == [
            f"epoch on chain: FAILED — receipt {name} 0x{'22' * 32} != committed on chain "
            f"0x{ours.hex()}"
        ]
    receipt = copy.deepcopy(s.receipts[0])
    receipt["submit_block"] = 10**9  # a hint beyond the head is ignored
    assert failures(receipt, s) == []
    receipt["epoch"] = 2
    assert failures(receipt, s)[0] == "epoch on chain: FAILED — epoch 2 was never submitted"


class OtherCommitment:
    """The settled chain, except that UsageReceipts stores ``stored`` for every epoch."""

    def __init__(self, chain: Chain, stored: bytes) -> None:
        self._chain, self._stored = chain, stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)

    def call(self, address: str, artifact: str, fn: str, *args: Any, **kw: Any) -> Any:
        if fn == "commitment":
            return "0x" + self._stored.hex()
        return self._chain.call(address, artifact, fn, *args, **kw)


@pytest.mark.anyio
async def test_verify_refuses_a_log_that_the_commitment_does_not_name(settled: Settled) -> None:
    s = settled
    record = committed(s).record
    assert record is not None
    chain: Any = OtherCommitment(s.chain, b"\x44" * 32)
    checks = verify_receipt(s.receipts[0], chain, s.d, gateway_meter=GATEWAY_METER.address)
    assert [c.line() for c in checks if not c.ok] == [
        "epoch on chain: FAILED — the EpochSubmitted log of epoch 1 commits to "
        f"0x{record.commitment().hex()}, UsageReceipts stores 0x{'44' * 32}"
    ]
    assert [c.name for c in checks][-1] == "epoch on chain"  # nothing is proven against it


@pytest.mark.anyio
async def test_a_voided_epoch_is_never_paid_and_verify_says_so(tmp_path: Path) -> None:
    s = await setup(tmp_path, WINDOW)
    try:
        (report,) = await s.settler.run_once(wait=False)
        assert (report.epoch, report.state, report.error) == (1, "submitted", None)
        before = committed(s)
        record = before.record
        assert record is not None
        assert not before.voided
        wrong = EpochRecord(*record.values()[:4], record.submitted_at - WINDOW, record.signers)
        with pytest.raises(TransactionReverted, match="epoch record does not match"):
            s.chain.transact(s.d.receipts, "usage_receipts", "void_epoch", 1, wrong.values())
        s.chain.transact(s.d.receipts, "usage_receipts", "void_epoch", 1, record.values())
        after = committed(s)
        assert after.voided
        assert after.record == record
        assert int.from_bytes(after.stored) == int.from_bytes(record.commitment()) | VOID_FLAG

        s.chain.time_travel(WINDOW)
        s.chain.mine(1)
        (report,) = await s.settler.run_once(wait=False)  # resumes from the database
        assert (report.state, report.executed_txs) == ("submitted", [])
        assert report.error == "epoch 1 was voided on chain"
        doc = (await s.receipt_documents())[0]
        line = doc["line"]
        with pytest.raises(TransactionReverted, match="settlement_treasury: epoch is void"):
            s.chain.transact(
                s.d.treasury, "settlement_treasury", "execute_line", 1, record.values(),
                line["tenant"], bytes.fromhex(line["provider_id"][2:]), line["amount_micro"],
                line["fee_micro"], [bytes.fromhex(p[2:]) for p in doc["lines_proof"]],
            )  # fmt: skip
        assert int(s.chain.call(s.d.stablecoin, "test_stablecoin", "balanceOf", s.payout)) == 0
        checks = verify_receipt(doc, s.chain, s.d, gateway_meter=GATEWAY_METER.address)
        assert [c.line() for c in checks if not c.ok] == [
            "epoch on chain: FAILED — the epoch was voided",
            "line executed: FAILED — the treasury has not executed this line",
        ]
    finally:
        await s.g.db.aclose()
        s.chain.close()
