"""The whole loop on anvil: calls through the gateway become gateway-signed usage events, the
settler seals them, three oracle nodes (t = 2) sign, the epoch goes on chain, its line is
executed (provider paid, credits burnt), the gateway records the receipt without an alert,
and the tenant's ``GET /v1/usage/{event_id}/proof`` passes ``verify`` against the chain."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from apicredits.chain import deploy
from apicredits.chain.rpc import RpcChain
from apicredits.db import Database
from apicredits.demo import fund_on_chain, running_gateway, serving
from apicredits.metering.events import UsageDomain
from apicredits.oracle.aggregator import Settler
from apicredits.oracle.messages import provider_id
from apicredits.oracle.node import DatabaseSources, OracleNode
from apicredits.oracle.validation import registry_history_from_chain
from apicredits.oracle.verify import verify_receipt
from apicredits.providers.simulator import create_sim_app
from apicredits.settings import Settings
from apicredits.tariffs.store import TariffStore
from oracle_support import oracle_key

pytestmark = pytest.mark.integration

TOKEN = "oracle-loop-admin"
CHAT = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def test_calls_settle_on_chain_and_their_receipts_verify(anvil_url: str, tmp_path: Path) -> None:
    chain = RpcChain(anvil_url)
    deployment_file = tmp_path / "deployment.json"
    d = deploy(chain, dispute_window_seconds=1, path=deployment_file)
    admin_wallet, payout, wallet = chain.accounts[1:4]
    registry = d.address("provider_registry")
    chain.transact(registry, "provider_registry", "register", provider_id("sim"),
                   admin_wallet, payout, sender=admin_wallet)  # fmt: skip
    keys = [oracle_key(f"loop-{i}") for i in range(3)]
    for key in keys:
        chain.transact(d.receipts, "usage_receipts", "register_oracle",
                       key.public_key, key.proof_of_possession())  # fmt: skip
    chain.transact(d.receipts, "usage_receipts", "set_threshold", 2)

    with serving(create_sim_app()) as sim_url:
        settings = Settings(
            data_dir=tmp_path / "gw", admin_token=TOKEN, database_url=None, redis_url=None,
            chain_rpc_url=anvil_url, chain_deployment_file=deployment_file,
            chain_confirmations=0, chain_poll_seconds=0.2, sim_url=sim_url,
            usage_producer_interval_seconds=0.2, usage_events=True,
        )  # fmt: skip
        with (
            running_gateway(settings) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as admin,  # fmt: skip
        ):
            # The gateway publishes its token keys from the deployer account at start: a
            # fresh connection picks up the nonce after those transactions.
            chain.close()
            chain = RpcChain(anvil_url)
            tenant = admin.post("/admin/v1/tenants", json={"name": "t", "legacy_keys": True})
            tid = tenant.json()["id"]
            fund_on_chain(admin, tid, chain, d, wallet)
            key = admin.post("/admin/v1/keys", json={"tenant_id": tid}).json()["key"]
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                               timeout=30)  # fmt: skip
            event_ids = []
            for _ in range(3):
                r = api.post("/v1/chat/completions", json=CHAT)
                assert r.status_code == 200, r.text
                event_ids.append(r.headers["apicredits-receipt"])
            charged = sum(api.get(f"/v1/usage/{e}/proof").status_code == 200 for e in event_ids)
            deadline = time.monotonic() + 30
            while charged < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
                charged = sum(api.get(f"/v1/usage/{e}/proof").status_code == 200 for e in event_ids)
            assert charged == 3, "the producer did not sign the usage events"
            meter = httpx.get(url + "/v1/usage/signers").json()["gateway_meter"]

            reports = asyncio.run(_settle(settings, chain, d, keys, meter, url))
            (report,) = reports
            assert (report.epoch, report.state, report.events, report.lines) == (1, "settled", 3, 1)
            assert report.gateway is not None
            assert report.gateway["alert"] is False, report.gateway
            paid = int(chain.call(d.stablecoin, "test_stablecoin", "balanceOf", payout))
            assert paid == report.total_micro - report.total_micro // 100

            for event in event_ids:
                proof = api.get(f"/v1/usage/{event}/proof").json()
                assert proof["state"] == "settled"
                checks = verify_receipt(proof, chain, d, gateway_meter=meter)
                assert [c.line() for c in checks if not c.ok] == []
            api.close()
    chain.close()


async def _settle(
    settings: Settings, chain: RpcChain, d: Any, keys: list[Any], meter: str, url: str
) -> list[Any]:
    db = Database(settings.effective_database_url)
    try:
        domain = UsageDomain(chain.chain_id, d.receipts)
        registry = d.address("provider_registry")
        nodes = {
            f"http://oracle-{i}": httpx.ASGITransport(app=OracleNode(
                key, domain,
                registry=lambda: registry_history_from_chain(chain, registry, d.deploy_block),
                sources=DatabaseSources(db), fee_bps=100, gateway_meter=meter,
            ).app())
            for i, key in enumerate(keys)
        }  # fmt: skip
        book = await TariffStore(db).book()
        settler = Settler(
            db, chain, d, list(nodes), tariffs=book.version, fee_bps=100, gateway_meter=meter,
            max_events=100, max_seconds=0, gateway_url=url, admin_token=TOKEN,
            transport=nodes.__getitem__,
        )  # fmt: skip
        return await settler.run_once()
    finally:
        await db.aclose()
