"""POST /v1/oracle/receipt: records the chain's receipt and cross-checks the ledger."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from apicredits.db.schema import epoch_lines, epochs, usage_records
from apicredits.gateway.oracle_receipts import record_receipt
from apicredits.metering.events import SignedUsageEvent, UsageDomain
from apicredits.oracle.epochs import seal_epoch
from apicredits.oracle.validation import Rejection
from gateway_support import Gateway
from oracle_support import TENANT_B, gateway_db, usage_event

DOMAIN = UsageDomain(31337, "0x" + "cd" * 20)


def accept(events: Sequence[SignedUsageEvent], locks: Mapping[bytes, int]) -> list[Rejection]:
    return []


@pytest.mark.anyio
async def test_a_receipt_is_recorded_and_a_ledger_mismatch_raises_an_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = await gateway_db(tmp_path / "gw.db")
    try:
        events = [usage_event(DOMAIN, 1), usage_event(DOMAIN, 2, tenant=TENANT_B)]
        await g.add_events(events[:1], DOMAIN, tenant_id="t-a")
        await g.add_events(events[1:], DOMAIN, tenant_id="t-b")
        now = time.time_ns() // 1000
        await g.db.write(lambda c: seal_epoch(
            c, epoch=1, domain=DOMAIN, fee_bps=0, validate=accept, max_events=10,
            max_seconds=0, now_us=now,
        ))  # fmt: skip
        lines = await g.db.read(lambda c: c.execute(select(epoch_lines)).all())
        body: dict[str, Any] = {
            "epoch": 1, "submit_tx": "0xsubmit", "submit_block": 7,
            "lines": [{"line_index": ln.line_index, "executed_tx": f"0xexec{ln.line_index}",
                       "executed_block": 9, "amount_micro": ln.amount_micro,
                       "fee_micro": ln.fee_micro, "leaf": ln.leaf} for ln in lines],
        }  # fmt: skip
        doc = await g.db.write(lambda c: record_receipt(c, body))
        assert doc == {"epoch": 1, "recorded_lines": 2, "alert": False, "mismatches": []}
        row = await g.db.read(lambda c: c.execute(select(epochs)).one())
        assert (row.state, row.submit_tx, row.submit_block) == ("settled", "0xsubmit", 7)
        executed = await g.db.read(lambda c: c.execute(select(epoch_lines.c.executed_tx)).all())
        assert sorted(r.executed_tx for r in executed) == ["0xexec0", "0xexec1"]

        # The ledger charged less than the line says: an alert, nothing corrected.
        await g.db.write(lambda c: c.execute(
            update(usage_records).where(usage_records.c.id == "req-2").values(cost_micro=1)
        ))  # fmt: skip
        doc = await g.db.write(lambda c: record_receipt(c, body))
        assert doc["alert"] is True
        assert doc["mismatches"] == [{
            "what": "ledger", "line_index": 1, "tenant_id": "t-b", "provider": "sim",
            "line_micro": 200, "ledger_micro": 1,
        }]  # fmt: skip
        assert "disagrees with the ledger" in caplog.text
    finally:
        await g.db.aclose()


def test_the_route_is_for_the_operator_only(gateway: Gateway) -> None:
    anonymous = httpx.post(gateway.url + "/v1/oracle/receipt", json={"epoch": 1}, timeout=10)
    assert anonymous.status_code == 401
    missing = gateway.admin.post("/v1/oracle/receipt", json={"epoch": 99})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
