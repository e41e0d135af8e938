"""Sealing: the events tree, the settlement lines and the database step."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from apicredits.db.schema import epoch_lines, epochs, usage_events
from apicredits.metering.events import SignedUsageEvent, UsageDomain
from apicredits.oracle.epochs import (
    REJECTED_EPOCH,
    SealResult,
    build_epoch,
    receipt_document,
    seal_epoch,
    settlement_lines,
)
from apicredits.oracle.merkle import MerkleTree, verify_proof
from apicredits.oracle.messages import (
    SETTLEMENT_LINE_TYPES,
    USAGE_EVENT_LEAF_TYPES,
    SettlementLine,
    usage_event_leaf,
)
from apicredits.oracle.validation import Rejection, validate_events
from oracle_support import (
    GATEWAY_METER,
    NO_WALLET,
    PROVIDER_ID,
    PROVIDER_SIGNER,
    TARIFFS,
    TENANT_A,
    TENANT_B,
    gateway_db,
    registry,
    usage_event,
)

DOMAIN = UsageDomain(31337, "0x" + "cd" * 20)


def test_lines_sum_per_tenant_and_provider_with_the_fee_rounded_down() -> None:
    events = [
        usage_event(DOMAIN, 1, tenant=TENANT_B, tokens=(100, 50)),  # 200
        usage_event(DOMAIN, 2, tenant=TENANT_A, tokens=(1, 1)),  # 3
        usage_event(DOMAIN, 3, tenant=TENANT_B, tokens=(33, 0)),  # 33
        usage_event(DOMAIN, 4, tenant=NO_WALLET, tokens=(5, 5)),
    ]
    lines, unsettled = settlement_lines(7, events, fee_bps=250)
    assert lines == [
        SettlementLine(7, TENANT_A, PROVIDER_ID, 3, 0),  # 3 * 250 // 10000 = 0
        SettlementLine(7, TENANT_B, PROVIDER_ID, 233, 5),  # 233 * 0.025 = 5.825 -> 5
    ]
    assert unsettled == [3]


def test_build_epoch_makes_both_openzeppelin_trees() -> None:
    events = [usage_event(DOMAIN, n, tenant=(TENANT_A, TENANT_B)[n % 2]) for n in range(5)]
    build = build_epoch(2, events, DOMAIN, fee_bps=100)
    digests = [e.event.digest(DOMAIN) for e in events]
    assert (
        build.events_root == MerkleTree.build(USAGE_EVENT_LEAF_TYPES, [(d,) for d in digests]).root
    )
    for i, d in enumerate(digests):
        assert verify_proof(build.events_root, usage_event_leaf(d), build.events_tree.proof(i))
    assert (
        build.lines_root
        == MerkleTree.build(SETTLEMENT_LINE_TYPES, [line.values() for line in build.lines]).root
    )
    assert build.total_micro == sum(e.event.cost_micro for e in events) == 5 * 200
    summary = build.summary(DOMAIN)
    assert (summary.epoch, summary.line_count, summary.total_micro) == (2, 2, 1000)


def test_an_epoch_of_tenants_without_wallets_has_a_zero_lines_root() -> None:
    build = build_epoch(1, [usage_event(DOMAIN, 1, tenant=NO_WALLET)], DOMAIN, 0)
    assert build.lines == []
    assert build.lines_root == bytes(32)
    assert build.unsettled == [0]


@pytest.mark.anyio
async def test_seal_epoch_seals_by_count_or_age_and_rejects_bad_events(tmp_path: Path) -> None:
    g = await gateway_db(tmp_path / "gw.db")
    try:
        await g.add_job("job-1", 10_000)
        good = [usage_event(DOMAIN, n) for n in range(1, 4)]
        forged = usage_event(DOMAIN, 4, key=PROVIDER_SIGNER)  # not the gateway's key
        old = time.time_ns() // 1000 - 120_000_000
        await g.add_events([*good, forged], DOMAIN, created_at_us=old)

        def validate(
            events: Sequence[SignedUsageEvent], locks: Mapping[bytes, int]
        ) -> list[Rejection]:
            return validate_events(
                events, DOMAIN, registry(), TARIFFS.__getitem__, locks.get, GATEWAY_METER.address
            )

        async def seal(max_events: int, max_seconds: float) -> SealResult | None:
            now = time.time_ns() // 1000
            return await g.db.write(
                lambda c: seal_epoch(
                    c, epoch=1, domain=DOMAIN, fee_bps=100, validate=validate,
                    max_events=max_events, max_seconds=max_seconds, now_us=now,
                )
            )  # fmt: skip

        assert await seal(10, 600) is None  # 4 < 10 events and the oldest waited 120 s < 600 s
        result = await seal(10, 60)
        assert result is not None
        assert result.build is not None
        assert [r.index for r in result.rejected] == [3]
        assert "not the trusted gateway meter" in result.rejected[0].reason
        assert len(result.build.digests) == 3
        stmt = select(usage_events).order_by(usage_events.c.seq)
        rows = await g.db.read(lambda c: c.execute(stmt).all())
        placed = [(r.epoch, r.leaf_index) for r in rows]
        assert placed == [(1, 0), (1, 1), (1, 2), (REJECTED_EPOCH, None)]
        epoch = await g.db.read(lambda c: c.execute(select(epochs)).one())
        assert epoch.state == "sealed"
        assert epoch.events_root == "0x" + result.build.events_root.hex()
        lines = await g.db.read(lambda c: c.execute(select(epoch_lines)).all())
        assert [(ln.tenant_id, ln.amount_micro, ln.fee_micro) for ln in lines] == [("t-a", 600, 6)]
        doc = await g.db.read(lambda c: receipt_document(c, "0x" + good[1].event.event_id.hex()))
        assert doc is not None
        assert doc["leaf_index"] == 1
        assert doc["line"]["amount_micro"] == 600
        assert json.dumps(doc)  # JSON-safe
        rejected_id = "0x" + forged.event.event_id.hex()
        assert await g.db.read(lambda c: receipt_document(c, rejected_id)) is None
    finally:
        await g.db.aclose()
