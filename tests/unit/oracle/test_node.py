"""An oracle node signs only what it re-derives itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account import Account

from apicredits.metering.events import Meter, SignedUsageEvent, UsageDomain
from apicredits.oracle import bls
from apicredits.oracle.epochs import build_epoch
from apicredits.oracle.messages import job_id
from apicredits.oracle.node import OracleNode, Refusal, SignRequest, StaticSources, line_document
from oracle_support import (
    GATEWAY_METER,
    PROVIDER_SIGNER,
    TARIFFS,
    TENANT_B,
    oracle_key,
    registry,
    usage_event,
)

DOMAIN = UsageDomain(31337, "0x" + "cd" * 20)
KEY = oracle_key("node-test")
JOBS = {job_id("job-1"): "job-1"}


def node(*, byzantine: bool = False, lock: int = 10_000) -> OracleNode:
    return OracleNode(
        KEY, DOMAIN, registry=registry, sources=StaticSources(TARIFFS, {job_id("job-1"): lock}),
        fee_bps=100, gateway_meter=GATEWAY_METER.address, byzantine=byzantine,
    )  # fmt: skip


def request_for(events: list[SignedUsageEvent], epoch: int = 1) -> SignRequest:
    build = build_epoch(epoch, events, DOMAIN, fee_bps=100)
    lines = [line_document(line) for line in build.lines]
    return SignRequest(build.summary(DOMAIN), events, JOBS, lines)


async def post(n: OracleNode, request: SignRequest) -> httpx.Response:
    transport = httpx.ASGITransport(app=n.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        return await client.post("/v1/epochs/sign", json=request.to_document())


EVENTS = [
    usage_event(DOMAIN, 1),
    usage_event(DOMAIN, 2, meter=Meter.PROVIDER, tenant=TENANT_B),
]


@pytest.mark.anyio
async def test_an_honest_epoch_gets_a_share_that_verifies() -> None:
    request = request_for(EVENTS)
    response = await post(node(), request)
    assert response.status_code == 200
    share: dict[str, Any] = response.json()
    assert share["public_key"] == "0x" + KEY.public_key.hex()
    signature = bytes.fromhex(share["signature"][2:])
    assert bls.verify(KEY.public_key, request.summary.message(), signature)


@pytest.mark.anyio
async def test_a_forged_provider_signature_is_refused() -> None:
    impostor = Account.from_key(b"\x07" * 32)
    forged = usage_event(DOMAIN, 3, meter=Meter.PROVIDER, key=impostor)
    response = await post(node(), request_for([EVENTS[0], forged]))
    assert response.status_code == 422
    reasons = response.json()["reasons"]
    assert len(reasons) == 1
    assert (
        f"signer {impostor.address.lower()} is not the provider's registered signer" in reasons[0]
    )
    assert PROVIDER_SIGNER.address.lower() in reasons[0]


def test_wrong_tariff_math_and_a_blown_lock_are_refused() -> None:
    overcharged = usage_event(DOMAIN, 4, cost_micro=201)  # 100 in + 50 out cost 200
    with pytest.raises(Refusal) as refused:
        node().sign(request_for([overcharged]), TARIFFS.__getitem__, {job_id("job-1"): 10_000})
    assert refused.value.reasons == [
        f"event 0 (0x{overcharged.event.event_id.hex()}): cost 201 exceeds tariff "
        "version 1's price of its units (200)"
    ]
    with pytest.raises(Refusal, match="costs 400 above its lock of 399"):
        node().sign(request_for(EVENTS), TARIFFS.__getitem__, {job_id("job-1"): 399})


def test_roots_that_differ_from_the_nodes_own_are_refused() -> None:
    honest = request_for(EVENTS)
    tampered = SignRequest(_with_total(honest, 1), honest.events, honest.jobs, honest.lines)
    with pytest.raises(Refusal, match="total_micro: request 1, computed 400"):
        node().sign(tampered, TARIFFS.__getitem__, {job_id("job-1"): 10_000})


def _with_total(request: SignRequest, total: int) -> Any:
    s = request.summary
    return type(s)(s.chain_id, s.receipts_contract, s.epoch, s.events_root, s.lines_root,
                   s.line_count, total)  # fmt: skip


def test_a_byzantine_node_signs_another_root() -> None:
    request = request_for(EVENTS)
    share = node(byzantine=True).sign(request, TARIFFS.__getitem__, {job_id("job-1"): 10_000})
    signature = bytes.fromhex(share["signature"][2:])
    assert not bls.verify(KEY.public_key, request.summary.message(), signature)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "change",
    [
        {"receipts": 5},
        {"receipts": "0x1234"},
        {"chain_id": "31337"},
        {"events": [{}]},
        {"events": [5]},
        {"jobs": {"0x12": "job-1"}},
        {"jobs": []},
        {"lines": "all"},
        {"epoch": None},
    ],
)
async def test_a_malformed_sign_request_is_a_400_not_an_outage(change: dict[str, Any]) -> None:
    document = {**request_for(EVENTS).to_document(), **change}
    transport = httpx.ASGITransport(app=node().app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        r = await client.post("/v1/epochs/sign", json=document)
    assert r.status_code == 400, r.text
    assert r.json()["refused"] is True
