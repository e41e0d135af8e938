"""Verifiable usage through a running gateway: per-call receipts, the producer's signed
events, the public signer list, provider emits over HTTP, and proofs before and after an
epoch is sealed (the epoch rows written here as the aggregator would)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, update

from apicredits.db import Database
from apicredits.db.schema import epoch_lines, epochs, usage_events
from apicredits.demo import running_gateway
from apicredits.metering.events import Meter, SignedUsageEvent, UsageDomain, recover_signer, sign
from apicredits.oracle.merkle import MerkleTree, verify_proof
from apicredits.oracle.messages import (
    SETTLEMENT_LINE_TYPES,
    USAGE_EVENT_LEAF_TYPES,
    SettlementLine,
    event_id,
    usage_event_leaf,
)
from apicredits.settings import Settings
from gateway_support import Gateway, gateway_on, wait_for

ADMIN = "usage-admin"
CHAT = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("usage-gw")


@pytest.fixture(scope="module")
def gw(sim_url: str, data_dir: Path) -> Iterator[Gateway]:
    settings = Settings(
        data_dir=data_dir,
        admin_token=ADMIN,
        sim_url=sim_url,
        upstream_timeout_seconds=2.0,
        usage_producer_interval_seconds=0.05,
        usage_events=True,
    )
    with gateway_on(settings) as gateway:
        yield gateway


def call(gw: Gateway, key: str, **extra: Any) -> httpx.Response:
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={**CHAT, **extra},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r


def proof_of(gw: Gateway, key: str, eid: str) -> httpx.Response:
    return httpx.get(f"{gw.url}/v1/usage/{eid}/proof", headers={"Authorization": f"Bearer {key}"})


def signed_proof(gw: Gateway, key: str, eid: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        r = proof_of(gw, key, eid)
        if r.status_code == 200:
            found.update(r.json())
        return r.status_code == 200

    wait_for(ready)
    return found


def test_every_charged_response_carries_its_receipt(gw: Gateway) -> None:
    _, key = gw.tenant()
    r = call(gw, key)
    eid = "0x" + event_id(r.headers["apicredits-request-id"]).hex()
    assert r.headers["apicredits-receipt"] == eid
    assert r.headers["apicredits-receipt-url"] == f"/v1/usage/{eid}/proof"

    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
    ) as s:
        assert s.status_code == 200
        request_id = s.headers["apicredits-request-id"]
        assert s.headers["apicredits-receipt"] == "0x" + event_id(request_id).hex()
        s.read()


def test_calls_become_gateway_signed_events_with_pending_proofs(gw: Gateway) -> None:
    signers = httpx.get(f"{gw.url}/v1/usage/signers").json()
    assert httpx.get(f"{gw.url}/.well-known/apicredits.json").json() == signers
    assert signers["receipts"] is None  # no chain configured
    assert "sim" in signers["providers"]
    assert signers["providers"]["sim"] is None

    _, key = gw.tenant()
    r = call(gw, key)
    eid = r.headers["apicredits-receipt"]
    doc = signed_proof(gw, key, eid)
    assert doc["state"] == "pending"
    assert doc["meter"] == "gateway"
    assert doc["request_id"] == r.headers["apicredits-request-id"]
    signed = SignedUsageEvent.from_document(doc["signed_event"])
    domain = UsageDomain(signers["chain_id"], "0x" + "00" * 20)
    assert recover_signer(signed, domain) == signers["gateway_meter"]
    assert doc["digest"] == "0x" + signed.event.digest(domain).hex()
    assert signed.event.cost_micro == int(r.headers["apicredits-cost-micro"])

    # another tenant cannot see it; an unknown id is 404
    _, other = gw.tenant()
    assert proof_of(gw, other, eid).status_code == 404
    assert proof_of(gw, key, "0x" + "00" * 32).status_code == 404
    assert proof_of(gw, "nope", eid).status_code == 401


def test_emit_rejects_and_reports_per_event(gw: Gateway) -> None:
    _, key = gw.tenant()
    eid = call(gw, key).headers["apicredits-receipt"]
    doc = signed_proof(gw, key, eid)["signed_event"]

    bad = httpx.post(f"{gw.url}/v1/usage/emit", json={**doc, "signature": "0x00"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"

    # a provider event from a key the provider never registered: 403
    gateway_event = SignedUsageEvent.from_document(doc)
    provider_event = replace(gateway_event.event, meter=Meter.PROVIDER)
    signed = sign(provider_event, UsageDomain(0, "0x" + "00" * 20), "0x" + "44" * 32).to_document()
    one = httpx.post(f"{gw.url}/v1/usage/emit", json=signed)
    assert one.status_code == 403
    assert one.json()["error"]["code"] == "unknown_signer"

    batch = httpx.post(f"{gw.url}/v1/usage/emit", json={"events": [signed, {"x": 1}]})
    assert batch.status_code == 200
    results = batch.json()
    assert (results["accepted"], results["rejected"]) == (0, 2)
    codes = [r["error"]["code"] for r in results["results"]]
    assert codes == ["unknown_signer", "invalid_request"]
    assert results["results"][0]["event_id"] == eid

    too_many = httpx.post(f"{gw.url}/v1/usage/emit", json={"events": [signed] * 1001})
    assert too_many.status_code == 400


def test_a_sealed_event_has_a_proof_that_verifies(gw: Gateway, data_dir: Path) -> None:
    _, key = gw.tenant()
    ids = [call(gw, key).headers["apicredits-receipt"] for _ in range(3)]
    docs = [signed_proof(gw, key, eid) for eid in ids]
    digests = [bytes.fromhex(d["digest"][2:]) for d in docs]
    events = [SignedUsageEvent.from_document(d["signed_event"]).event for d in docs]
    amount = sum(e.cost_micro for e in events)
    line = SettlementLine(7, events[0].tenant, events[0].provider_id, amount, amount // 100)
    other = SettlementLine(7, "0x" + "99" * 20, events[0].provider_id, 5, 0)
    events_tree = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, [(d,) for d in digests])
    lines_tree = MerkleTree.build(SETTLEMENT_LINE_TYPES, [line.values(), other.values()])
    receipts = "0x" + "00" * 20

    def seal(conn: Connection) -> None:
        for i, eid in enumerate(ids):
            stmt = update(usage_events).where(usage_events.c.event_id == eid)
            conn.execute(stmt.values(epoch=7, leaf_index=i))
        conn.execute(
            epochs.insert(),
            {
                "epoch": 7, "chain_id": 0, "receipts": receipts,
                "events_root": "0x" + events_tree.root.hex(),
                "lines_root": "0x" + lines_tree.root.hex(), "line_count": 2,
                "total_micro": amount + 5, "first_seq": 1, "last_seq": 3, "state": "submitted",
                "signers": "[1, 2]", "submit_tx": "0x" + "aa" * 32, "submit_block": 12,
                "created_at_us": time.time_ns() // 1000,
            },
        )  # fmt: skip
        for index, ln in enumerate((line, other)):
            conn.execute(
                epoch_lines.insert(),
                {
                    "epoch": 7, "line_index": index, "tenant_id": "t",
                    "tenant_address": ln.tenant, "provider": "sim",
                    "provider_id": "0x" + ln.provider_id.hex(), "amount_micro": ln.amount_micro,
                    "fee_micro": ln.fee_micro, "leaf": "0x" + ln.leaf().hex(),
                    "executed_tx": "0x" + "bb" * 32 if index == 0 else None,
                    "executed_block": 14 if index == 0 else None,
                },
            )  # fmt: skip

    async def write() -> None:
        db = Database(f"sqlite:///{data_dir / 'apicredits.db'}")
        try:
            await db.write(seal)
        finally:
            await db.aclose()

    asyncio.run(write())

    r = proof_of(gw, key, ids[1])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["state"] == "submitted"
    assert doc["leaf_index"] == 1
    assert doc["events_root"] == "0x" + events_tree.root.hex()
    assert doc["leaf"] == "0x" + usage_event_leaf(digests[1]).hex()
    proof = [bytes.fromhex(p[2:]) for p in doc["proof"]]
    assert verify_proof(events_tree.root, usage_event_leaf(digests[1]), proof)
    assert doc["receipt"] == {"tx": "0x" + "aa" * 32, "block": 12}
    assert doc["epoch"]["signers"] == [1, 2]
    assert doc["domain"]["chainId"] == 0
    [settled] = doc["settlement"]  # only the tenant's own line
    assert settled["amount_micro"] == amount
    assert settled["executed_tx"] == "0x" + "bb" * 32
    line_proof = [bytes.fromhex(p[2:]) for p in settled["proof"]]
    assert verify_proof(lines_tree.root, line.leaf(), line_proof)
    assert json.loads(json.dumps(doc)) == doc


def test_an_event_validation_refused_says_so(gw: Gateway, data_dir: Path) -> None:
    _, key = gw.tenant()
    eid = call(gw, key).headers["apicredits-receipt"]
    signed_proof(gw, key, eid)
    stmt = update(usage_events).where(usage_events.c.event_id == eid).values(epoch=0)

    async def write() -> None:
        db = Database(f"sqlite:///{data_dir / 'apicredits.db'}")
        try:
            await db.write(lambda c: c.execute(stmt))
        finally:
            await db.aclose()

    asyncio.run(write())
    doc = proof_of(gw, key, eid).json()
    assert doc["state"] == "rejected"
    assert "proof" not in doc


# -- a provider that signs its own usage (the simulator with a signing key) ---------------------

SIM_KEY = "0x" + "55" * 32


def test_the_simulator_signs_its_own_usage(tmp_path: Path) -> None:
    from eth_account import Account

    from apicredits.demo import serving
    from apicredits.metering.signer import ProviderUsageSigner
    from apicredits.providers.simulator import create_sim_app

    signer = ProviderUsageSigner(SIM_KEY, None)
    with serving(create_sim_app(signer)) as sim:
        settings = Settings(
            data_dir=tmp_path,
            admin_token=ADMIN,
            sim_url=sim,
            sim_signs_usage=True,
            sim_usage_signer=Account.from_key(SIM_KEY).address,
            usage_producer_interval_seconds=0.05,
            usage_events=True,
        )
        with (
            running_gateway(settings) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin,
        ):
            signer.emit_url = f"{url}/v1/usage/emit"
            gw = Gateway(url, admin)
            signers = httpx.get(f"{url}/v1/usage/signers").json()
            assert signers["providers"]["sim"] == signer.address
            _, key = gw.tenant()
            eid = call(gw, key).headers["apicredits-receipt"]
            doc: dict[str, Any] = {}

            def provider_signed() -> bool:
                doc.update(proof_of(gw, key, eid).json())
                return doc.get("meter") == "provider"

            wait_for(provider_signed)
            signed = SignedUsageEvent.from_document(doc["signed_event"])
            assert signed.event.meter is Meter.PROVIDER
            domain = UsageDomain(signers["chain_id"], "0x" + "00" * 20)
            assert recover_signer(signed, domain) == signer.address
            assert doc["signer"] == signer.address
            assert doc["digest"] == "0x" + signed.event.digest(domain).hex()


# -- on the embedded chain: the receipts domain, the registry's signer, the tenant's wallet --


def test_on_a_chain_events_bind_to_its_receipts_contract(tmp_path: Path, sim_url: str) -> None:
    from eth_account import Account

    from apicredits.demo import embedded_deployment
    from apicredits.oracle.messages import provider_id

    settings = Settings(data_dir=tmp_path, admin_token=ADMIN, sim_url=sim_url,
                        usage_producer_interval_seconds=0.05, chain_poll_seconds=0.05,
                        usage_events=True)  # fmt: skip
    sim_signer = Account.from_key(SIM_KEY).address
    with embedded_deployment(settings) as (chain, deployment):
        registry = deployment.address("provider_registry")
        payout = chain.accounts[3]
        chain.transact(registry, "provider_registry", "register", provider_id("sim"),
                       sim_signer, payout)  # fmt: skip
        with (
            running_gateway(settings) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin,
        ):
            signers = httpx.get(f"{url}/v1/usage/signers").json()
            assert signers["chain_id"] == deployment.chain_id
            assert signers["receipts"] == deployment.receipts
            assert signers["providers"]["sim"] == sim_signer

            gw = Gateway(url, admin)
            tid, key = gw.tenant()
            wallet = chain.accounts[4]
            r = admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": wallet})
            assert r.status_code in (200, 201), r.text
            eid = call(gw, key).headers["apicredits-receipt"]
            doc = signed_proof(gw, key, eid)
            signed = SignedUsageEvent.from_document(doc["signed_event"])
            assert signed.event.tenant == wallet
            domain = UsageDomain(deployment.chain_id, deployment.receipts)
            assert doc["domain"] == domain.eip712()
            assert recover_signer(signed, domain) == signers["gateway_meter"]
