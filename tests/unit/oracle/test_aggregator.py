"""The aggregator: shares checked against registered keys, byzantine and dead nodes left out."""

from __future__ import annotations

import httpx
import pytest

from apicredits.metering.events import UsageDomain
from apicredits.oracle import bls
from apicredits.oracle.aggregator import NotEnoughShares, aggregate, collect_shares
from apicredits.oracle.epochs import build_epoch
from apicredits.oracle.merkle import keccak256
from apicredits.oracle.messages import job_id
from apicredits.oracle.node import OracleNode, SignRequest, StaticSources, line_document
from oracle_support import GATEWAY_METER, TARIFFS, oracle_key, registry, usage_event

DOMAIN = UsageDomain(31337, "0x" + "cd" * 20)
KEYS = [oracle_key(f"aggregator-{i}") for i in range(4)]
REGISTERED = {keccak256(k.public_key): i for i, k in enumerate(KEYS[:3])}  # KEYS[3] is not


class Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


def node_app(i: int, *, byzantine: bool = False) -> httpx.AsyncBaseTransport:
    node = OracleNode(
        KEYS[i], DOMAIN, registry=registry,
        sources=StaticSources(TARIFFS, {job_id("job-1"): 10_000}), fee_bps=0,
        gateway_meter=GATEWAY_METER.address, byzantine=byzantine,
    )  # fmt: skip
    return httpx.ASGITransport(app=node.app())


def sign_request() -> SignRequest:
    events = [usage_event(DOMAIN, n) for n in range(3)]
    build = build_epoch(1, events, DOMAIN, 0)
    lines = [line_document(line) for line in build.lines]
    return SignRequest(build.summary(DOMAIN), events, {job_id("job-1"): "job-1"}, lines)


@pytest.mark.anyio
async def test_a_byzantine_node_is_excluded_and_t_honest_shares_still_aggregate() -> None:
    transports = {
        "http://n0": node_app(0),
        "http://n1": node_app(1, byzantine=True),
        "http://n2": node_app(2),
        "http://n3": node_app(3),  # a valid signature, but not by a registered oracle
        "http://down": Down(),
    }
    request = sign_request()
    shares, excluded = await collect_shares(
        request, list(transports), REGISTERED, transport=transports.__getitem__
    )
    assert [s.index for s in shares] == [0, 2]
    kinds = {e["node"]: e["kind"] for e in excluded}
    assert kinds == {
        "http://n1": "byzantine",
        "http://n3": "byzantine",
        "http://down": "unreachable",
    }
    bitmap, keys, signature, signers = aggregate(shares, threshold=2)
    assert (bitmap, signers) == (0b101, [0, 2])
    assert keys == KEYS[0].public_key + KEYS[2].public_key
    message = request.summary.message()
    assert bls.verify_aggregate([KEYS[0].public_key, KEYS[2].public_key], message, signature)
    with pytest.raises(NotEnoughShares, match="2 valid share"):
        aggregate(shares, threshold=3)


@pytest.mark.anyio
async def test_a_node_that_refuses_is_reported_with_its_reasons() -> None:
    request = sign_request()
    stingy = OracleNode(
        KEYS[0], DOMAIN, registry=registry, sources=StaticSources(TARIFFS, {}), fee_bps=0,
        gateway_meter=GATEWAY_METER.address,
    )  # fmt: skip
    shares, excluded = await collect_shares(
        request, ["http://n0"], REGISTERED,
        transport=lambda url: httpx.ASGITransport(app=stingy.app()),
    )  # fmt: skip
    assert shares == []
    assert excluded[0]["kind"] == "refused"
    assert "has no known lock" in excluded[0]["reasons"][0]
