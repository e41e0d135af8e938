"""One epoch settled end to end on the embedded chain by the ``Settler`` (2 oracle nodes,
t = 2), then its receipts verified against the chain, intact and tampered. Registering two
keys and one submission cost three pairings in py-evm (a few seconds)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from apicredits.chain import Chain, Deployment, deploy, deposit_test_funds
from apicredits.chain.embedded import EmbeddedChain
from apicredits.metering.events import Meter, UsageDomain
from apicredits.oracle.aggregator import Settler
from apicredits.oracle.epochs import receipt_document
from apicredits.oracle.node import DatabaseSources, OracleNode
from apicredits.oracle.validation import registry_history_from_chain
from apicredits.oracle.verify import verify_receipt
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


@dataclass
class Settled:
    chain: Chain
    d: Deployment
    g: GatewayDb
    receipts: list[dict[str, Any]]
    payout: str


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def settled(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settled]:
    chain = EmbeddedChain(None)
    d = deploy(chain, dispute_window_seconds=0)
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
    g = await gateway_db(tmp_path_factory.mktemp("verify") / "gw.db")
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
    try:
        reports = await settler.run_once()
        assert [(r.epoch, r.state, r.events, r.lines) for r in reports] == [(1, "settled", 3, 2)]
        assert reports[0].signers == [0, 1]
        docs = [
            await g.db.read(lambda c, e=e: receipt_document(c, "0x" + e.event.event_id.hex()))
            for e in events
        ]
        yield Settled(chain, d, g, [doc for doc in docs if doc is not None], payout)
    finally:
        await g.db.aclose()
        chain.close()


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
