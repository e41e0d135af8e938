"""``POST /v1/oracle/receipt``: the settler reports an epoch's on-chain receipt and the
transactions that executed its lines; the gateway records them against its ``epochs`` and
``epoch_lines`` rows and cross-checks the amounts against the ledger.

Operator only (``Authorization: Bearer <admin token>``). Body::

    {"epoch": 3, "events_root": "0x...", "lines_root": "0x...", "submit_tx": "0x...",
     "submit_block": 12, "lines": [{"line_index": 0, "executed_tx": "0x...",
     "executed_block": 14, "amount_micro": 7000, "fee_micro": 70, "leaf": "0x..."}]}

The cross-check: each line's amount must equal what the gateway's ledger charged for that
epoch's usage events of the line's tenant and provider (``usage_records.cost_micro`` joined
through ``usage_events.request_id``; a provider-emitted event without a usage record counts
its own cost), and the roots and leaves must be the ones the epoch was sealed with. A
mismatch is logged at ERROR and returned under ``mismatches`` with ``"alert": true``; nothing
is corrected. The rows record what the chain says happened either way.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from sqlalchemy import Connection, select, update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apicredits.db.schema import epoch_lines, epochs, usage_events, usage_records
from apicredits.errors import ApicreditsError, InvalidInput, NotFound, Unauthorized
from apicredits.gateway.dataplane import json_object, proxy_of
from apicredits.gateway.errors import domain_error_response
from apicredits.gateway.headers import bearer_token

__all__ = ["record_receipt", "routes"]

log = logging.getLogger("apicredits.oracle")


def _int(doc: dict[str, Any], name: str, *, optional: bool = False) -> int | None:
    value = doc.get(name)
    if value is None and optional:
        return None
    if type(value) is not int or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    return value


def _consumed(conn: Connection, epoch: int) -> dict[tuple[str, str], int]:
    """What the ledger charged per (tenant id, provider) for the epoch's events."""
    stmt = (
        select(
            usage_events.c.tenant_id,
            usage_events.c.provider,
            usage_events.c.cost_micro,
            usage_records.c.cost_micro.label("charged"),
        )
        .select_from(
            usage_events.outerjoin(usage_records, usage_records.c.id == usage_events.c.request_id)
        )
        .where(usage_events.c.epoch == epoch)
    )
    totals: dict[tuple[str, str], int] = {}
    for row in conn.execute(stmt):
        charged = row.charged if row.charged is not None else row.cost_micro
        key = (row.tenant_id, row.provider)
        totals[key] = totals.get(key, 0) + int(charged)
    return totals


def record_receipt(conn: Connection, body: dict[str, Any]) -> dict[str, Any]:
    """Record the receipt in one transaction; returns the response document."""
    epoch = int(_int(body, "epoch") or 0)
    row = conn.execute(select(epochs).where(epochs.c.epoch == epoch)).first()
    if row is None:
        raise NotFound(f"no epoch {epoch}", epoch=epoch)
    mismatches: list[dict[str, Any]] = []
    for name in ("events_root", "lines_root"):
        if body.get(name) is not None and str(body[name]).lower() != row._mapping[name].lower():
            mismatches.append({"what": name, "sealed": row._mapping[name], "reported": body[name]})
    lines = {int(ln.line_index): ln for ln in conn.execute(
        select(epoch_lines).where(epoch_lines.c.epoch == epoch)
    )}  # fmt: skip
    consumed = _consumed(conn, epoch)
    reported = body.get("lines", [])
    if not isinstance(reported, list):
        raise InvalidInput("lines must be a list", field="lines")
    executed = 0
    for item in reported:
        if not isinstance(item, dict):
            raise InvalidInput("each line is an object", field="lines")
        index = _int(item, "line_index")
        line = lines.get(index)  # type: ignore[arg-type]
        if line is None:
            mismatches.append({"what": "line", "line_index": index, "reason": "no such line"})
            continue
        for name in ("amount_micro", "fee_micro"):
            sealed = int(line._mapping[name])
            if item.get(name) is not None and int(item[name]) != sealed:
                mismatch = {"what": name, "line_index": index, "sealed": sealed}
                mismatches.append({**mismatch, "reported": item[name]})
        if item.get("leaf") is not None and str(item["leaf"]).lower() != line.leaf.lower():
            mismatches.append({"what": "leaf", "line_index": index})
        tx = item.get("executed_tx")
        if tx is not None:
            executed += 1
            conn.execute(
                update(epoch_lines)
                .where(epoch_lines.c.epoch == epoch, epoch_lines.c.line_index == index)
                .values(
                    executed_tx=str(tx), executed_block=_int(item, "executed_block", optional=True)
                )
            )
    for index, line in lines.items():
        charged = consumed.get((line.tenant_id, line.provider), 0)
        if charged != int(line.amount_micro):
            mismatches.append({"what": "ledger", "line_index": index, "tenant_id": line.tenant_id,
                               "provider": line.provider, "line_micro": int(line.amount_micro),
                               "ledger_micro": charged})  # fmt: skip
    values: dict[str, Any] = {}
    if body.get("submit_tx") is not None:
        values.update(submit_tx=str(body["submit_tx"]),
                      submit_block=_int(body, "submit_block", optional=True))  # fmt: skip
        if row.state == "sealed":
            values["state"] = "submitted"
    if (lines and executed == len(lines)) or (not lines and values):
        values["state"] = "settled"
    if values:
        conn.execute(update(epochs).where(epochs.c.epoch == epoch).values(**values))
    if mismatches:
        log.error("epoch %d receipt disagrees with the ledger: %s", epoch, mismatches)
    return {"epoch": epoch, "recorded_lines": executed, "alert": bool(mismatches),
            "mismatches": mismatches}  # fmt: skip


def _is_operator(request: Request) -> bool:
    token: str = proxy_of(request).rt.admin_token
    presented = bearer_token(request)
    return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())


async def receipt(request: Request) -> Response:
    try:
        if not _is_operator(request):
            raise Unauthorized("admin token required: Authorization: Bearer <admin token>")
        body = await json_object(request)
        doc = await proxy_of(request).rt.db.write(lambda conn: record_receipt(conn, body))
        return JSONResponse(doc)
    except ApicreditsError as exc:
        return domain_error_response(exc)


def routes() -> list[Route]:
    return [Route("/v1/oracle/receipt", receipt, methods=["POST"])]
