"""The demo's settlement: the demo's calls settled on the embedded chain, end to end.

Before the calls, ``prepare`` registers the simulator as provider ``sim`` (its usage signing
key and a payout address) and three oracle keys with their proofs of possession (t = 2).
After them, ``settle`` does what ``apicredits settle`` does with three oracle nodes: signs the
usage records into usage events (the simulator has co-signed its own by then), seals them
into an epoch, has the nodes re-validate and BLS-sign it, submits the 2-of-3 aggregate to
UsageReceipts, waits out the dispute window (by moving the chain's clock), executes the
settlement lines (credits burned, provider paid in stablecoin) and records the receipt at
the gateway. ``verify`` then runs ``apicredits verify`` on a receipt from the demo.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from apicredits.chain import Chain, Deployment
from apicredits.oracle.bls import OracleKey
from apicredits.oracle.messages import provider_id
from apicredits.settings import Settings

FEE_BPS = 100  # the platform's 1% of every settlement line
PROVIDER = "sim"


@dataclass
class Oracles:
    keys: list[OracleKey]
    payout: str


def prepare(chain: Chain, d: Deployment, sim_signer: str) -> Oracles:
    """Register the provider and 3 oracles (t = 2). Each oracle registration checks its
    proof of possession on chain: a pairing, about a second of CPU in the embedded EVM."""
    admin, payout = chain.accounts[3], chain.accounts[4]
    registry = d.address("provider_registry")
    chain.transact(registry, "provider_registry", "register", provider_id(PROVIDER), sim_signer,
                   payout, sender=admin)  # fmt: skip
    keys = [OracleKey.generate() for _ in range(3)]
    for key in keys:
        chain.transact(d.receipts, "usage_receipts", "register_oracle", key.public_key,
                       key.proof_of_possession())  # fmt: skip
    chain.transact(d.receipts, "usage_receipts", "set_threshold", 2)
    return Oracles(keys, payout)


def settle(
    settings: Settings, gateway_url: str, admin_token: str, chain: Chain, d: Deployment,
    oracles: Oracles,
) -> dict[str, Any]:  # fmt: skip
    return asyncio.run(_settle(settings, gateway_url, admin_token, chain, d, oracles))


async def _settle(
    settings: Settings, gateway_url: str, admin_token: str, chain: Chain, d: Deployment,
    oracles: Oracles,
) -> dict[str, Any]:  # fmt: skip
    from apicredits.db import Database
    from apicredits.metering.events import UsageDomain
    from apicredits.metering.producer import EventProducer, load_or_create_metering_key
    from apicredits.oracle.aggregator import Settler
    from apicredits.oracle.node import DatabaseSources, OracleNode
    from apicredits.oracle.validation import registry_history_from_chain
    from apicredits.tariffs.store import TariffStore

    db = Database(settings.effective_database_url)
    try:
        meter = load_or_create_metering_key(settings.data_dir / "metering-key")  # the gateway's
        domain = UsageDomain(chain.chain_id, d.receipts)
        producer = EventProducer(db, meter, domain)
        while await producer.step() > 0:
            pass
        registry = d.address("provider_registry")
        nodes = {
            f"http://oracle-{i}": httpx.ASGITransport(app=OracleNode(
                key, domain, registry=lambda: registry_history_from_chain(
                    chain, registry, d.deploy_block
                ), sources=DatabaseSources(db), fee_bps=FEE_BPS, gateway_meter=meter.address,
            ).app())
            for i, key in enumerate(oracles.keys)
        }  # fmt: skip
        settler = Settler(
            db, chain, d, list(nodes), tariffs=(await TariffStore(db).book()).version,
            fee_bps=FEE_BPS, gateway_meter=meter.address, max_events=10_000, max_seconds=0,
            gateway_url=gateway_url, admin_token=admin_token, transport=nodes.__getitem__,
        )  # fmt: skip
        submitted = await settler.run_once(wait=False)
        window = int(chain.call(d.treasury, "settlement_treasury", "dispute_window"))
        chain.time_travel(window + 1)
        chain.mine(1)
        settled = await settler.run_once()
        return {
            "submitted": [r.to_document() for r in submitted],
            "settled": [r.to_document() for r in settled],
            "gateway_meter": meter.address,
            "window": window,
        }
    finally:
        await db.aclose()


def verify(settings: Settings, receipt: dict[str, Any], gateway_meter: str) -> list[str]:
    """``apicredits verify`` on ``receipt``, as a separate process reading the chain alone;
    returns its output lines (raises ``RuntimeError`` if a check failed)."""
    path = Path(settings.data_dir) / "receipt.json"
    path.write_text(json.dumps(receipt, indent=2))
    done = subprocess.run(
        [sys.executable, "-m", "apicredits", "verify", str(path), "--gateway-meter", gateway_meter],
        capture_output=True, text=True, timeout=120, check=False,
        env={**_env(settings), "APICREDITS_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        raise RuntimeError("apicredits verify failed:\n" + done.stdout + done.stderr)
    return lines


def _env(settings: Settings) -> dict[str, str]:
    import os

    return {**os.environ, "APICREDITS_DATA_DIR": str(settings.data_dir)}
