"""The oracle network on a real anvil: three ``apicredits oracle serve`` processes (t = 2),
``apicredits settle --once`` as the aggregator, ``apicredits verify`` as the customer.

One flow, in order: a byzantine node is excluded and epoch 1 still settles with the two
honest ones; a forged provider signature is refused by the nodes and never paid; a replayed
settlement line reverts; a tampered proof fails ``verify``; then one node is killed before
epoch 2 is signed and it settles with the two that remain."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from apicredits.chain import Deployment, TransactionReverted, deploy, deposit_test_funds
from apicredits.chain.anvil import free_port
from apicredits.chain.rpc import RpcChain
from apicredits.db import Database
from apicredits.metering.events import Meter, UsageDomain
from apicredits.oracle.epochs import build_epoch, receipt_document
from apicredits.oracle.messages import SettlementLine, job_id
from apicredits.oracle.node import SignRequest, line_document
from apicredits.oracle.records import committed_epoch
from oracle_support import (
    GATEWAY_METER,
    PROVIDER_ID,
    PROVIDER_SIGNER,
    gateway_db,
    usage_event,
)

pytestmark = pytest.mark.integration

WINDOW = 1  # seconds: the settler waits it out for real


@dataclass
class Network:
    tmp: Path
    rpc: str
    chain: RpcChain
    d: Deployment
    deployment_file: Path
    database_url: str
    keys: list[Path]
    payout: str
    tenants: list[str]
    env: dict[str, str]
    nodes: dict[int, tuple[str, subprocess.Popen[bytes]]] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "apicredits", *args],
            capture_output=True, text=True, env=self.env, timeout=180,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"apicredits {args[0]} failed: {done.stderr[-2000:]}")
        return done

    def chain_args(self) -> list[str]:
        return ["--rpc", self.rpc, "--deployment", str(self.deployment_file)]

    def start_node(self, i: int, *, byzantine: bool = False) -> None:
        port = free_port()
        args = [
            sys.executable, "-m", "apicredits", "oracle", "serve", "--key-file", str(self.keys[i]),
            "--port", str(port), "--fee-bps", "100", "--gateway-meter", GATEWAY_METER.address,
            "--database-url", self.database_url, *self.chain_args(),
        ]  # fmt: skip
        if byzantine:
            args.append("--byzantine")
        with (self.tmp / f"node{i}.log").open("ab") as log:
            process = subprocess.Popen(args, stdout=log, stderr=log, env=self.env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/v1/node", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((self.tmp / f"node{i}.log").read_text()) from None
                time.sleep(0.2)
        self.nodes[i] = (url, process)

    def stop_node(self, i: int) -> None:
        _, process = self.nodes.pop(i)
        process.kill()
        process.wait(timeout=10)

    def settle(self, dead: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        urls = [url for url, _ in self.nodes.values()] + list(dead)
        nodes = [arg for url in sorted(urls) for arg in ("--node", url)]
        done = self.cli(
            "settle", "--once", "--max-seconds", "0", "--fee-bps", "100",
            "--gateway-meter", GATEWAY_METER.address, "--database-url", self.database_url,
            *nodes, *self.chain_args(),
        )  # fmt: skip
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def balance(self, who: str) -> int:
        return int(self.chain.call(self.d.stablecoin, "test_stablecoin", "balanceOf", who))


@pytest.fixture(scope="module")
def network(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("oracle-network")
    chain = RpcChain(anvil_url)
    deployment_file = tmp / "deployment.json"
    d = deploy(chain, dispute_window_seconds=WINDOW, path=deployment_file)
    admin, payout, *tenants = chain.accounts[1:5]
    chain.transact(d.address("provider_registry"), "provider_registry", "register",
                   PROVIDER_ID, PROVIDER_SIGNER.address, payout, sender=admin)  # fmt: skip
    for tenant in tenants:
        deposit_test_funds(chain, d, tenant=tenant, amount=10_000_000)
    env = {
        **os.environ,
        "APICREDITS_DATA_DIR": str(tmp / "data"),
        "APICREDITS_CONFIG": str(tmp / "none.toml"),
        "APICREDITS_LOG_LEVEL": "WARNING",
    }
    env.pop("APICREDITS_CHAIN_RPC_URL", None)
    env.pop("APICREDITS_DATABASE_URL", None)
    net = Network(tmp, anvil_url, chain, d, deployment_file, f"sqlite:///{tmp / 'gateway.db'}",
                  [tmp / f"oracle-{i}.key" for i in range(3)], payout, tenants, env)  # fmt: skip
    try:
        for key in net.keys:
            shown = json.loads(net.cli("oracle", "keygen", "--out", str(key)).stdout)
            assert shown["public_key"].startswith("0x")
            assert key.stat().st_mode & 0o777 == 0o600
        keys = [a for key in net.keys for a in ("--key-file", str(key))]
        out = net.cli("oracle", "register", *keys, "--threshold", "2", *net.chain_args()).stdout
        assert "active oracles: 3, threshold: 2" in out
        yield net
    finally:
        for i in list(net.nodes):
            net.stop_node(i)
        chain.close()


def test_the_oracle_network_settles_through_byzantine_forged_and_dead_nodes(
    network: Network,
) -> None:
    import asyncio

    net = network
    domain = UsageDomain(net.chain.chain_id, net.d.receipts)
    tenant_a, tenant_b = net.tenants
    impostor = Account.from_key(b"\x09" * 32)
    later = int(time.time()) + 5
    good = [
        usage_event(domain, 1, tenant=tenant_a),
        usage_event(domain, 2, tenant=tenant_b, tokens=(1_000, 500)),
        usage_event(domain, 3, tenant=tenant_a, meter=Meter.PROVIDER, timestamp=later),
    ]
    forged = usage_event(domain, 4, tenant=tenant_b, meter=Meter.PROVIDER, key=impostor,
                         tokens=(100_000, 0), timestamp=later)  # fmt: skip

    async def fill() -> None:
        g = await gateway_db(net.tmp / "gateway.db")
        try:
            await g.add_job("job-1", 5_000_000)
            await g.add_events([*good, forged], domain)
        finally:
            await g.db.aclose()

    asyncio.run(fill())
    net.start_node(0)
    net.start_node(1)
    net.start_node(2, byzantine=True)

    # A node refuses an epoch carrying the forged event, naming it.
    build = build_epoch(1, [*good, forged], domain, 100)
    request = SignRequest(build.summary(domain), [*good, forged], {job_id("job-1"): "job-1"},
                          [line_document(line) for line in build.lines])  # fmt: skip
    url = net.nodes[0][0] + "/v1/epochs/sign"
    refused = httpx.post(url, json=request.to_document(), timeout=30)
    assert refused.status_code == 422
    assert "is not the provider's registered signer" in refused.json()["reasons"][0]

    # Epoch 1: the byzantine node is excluded, the forged event rejected, the rest settles.
    payout_before = net.balance(net.payout)
    (report,) = net.settle()
    assert (report["epoch"], report["state"], report["events"]) == (1, "settled", 3)
    assert report["signers"] == [0, 1]
    assert [(e["node"], e["kind"]) for e in report["excluded"]] == [(net.nodes[2][0], "byzantine")]
    assert [r["event_id"] for r in report["rejected"]] == ["0x" + forged.event.event_id.hex()]
    paid = 200 + 2_000 + 200  # tenant a: 200 + 200, tenant b: 1000 + 2 * 500
    fees = 400 // 100 + 2_000 // 100
    assert net.balance(net.payout) - payout_before == paid - fees

    async def receipts() -> list[dict[str, Any] | None]:
        db = Database(net.database_url)
        try:
            return [
                await db.read(lambda c, e=e: receipt_document(c, "0x" + e.event.event_id.hex()))
                for e in [*good, forged]
            ]
        finally:
            await db.aclose()

    *docs, forged_doc = asyncio.run(receipts())
    assert forged_doc is None  # never sealed, never paid

    # A replayed settlement line reverts.
    doc = docs[1]
    assert doc is not None
    line = SettlementLine(1, doc["line"]["tenant"], bytes.fromhex(doc["line"]["provider_id"][2:]),
                          doc["line"]["amount_micro"], doc["line"]["fee_micro"])  # fmt: skip
    proof = [bytes.fromhex(p[2:]) for p in doc["lines_proof"]]
    head = net.chain.block_number()
    found = committed_epoch(net.chain, net.d.receipts, 1, net.d.deploy_block, head,
                            hint_block=doc["submit_block"])  # fmt: skip
    record = found.record
    assert record is not None
    with pytest.raises(TransactionReverted, match="already executed"):
        net.chain.transact(net.d.treasury, "settlement_treasury", "execute_line",
                           1, record.values(), *line.values()[1:], proof)  # fmt: skip

    # verify passes on a good receipt and fails, saying where, on a tampered proof.
    good_file = net.tmp / "receipt.json"
    good_file.write_text(json.dumps(docs))
    meter = ["--gateway-meter", GATEWAY_METER.address]
    ok = net.cli("verify", str(good_file), *net.chain_args(), *meter, "--verbose")
    assert "merkle proof: ok" in ok.stdout
    assert "all checks passed" in ok.stdout
    tampered = copy.deepcopy(doc)
    tampered["events_proof"][0] = "0x" + "22" * 32
    bad_file = net.tmp / "tampered.json"
    bad_file.write_text(json.dumps(tampered))
    bad = net.cli("verify", str(bad_file), *net.chain_args(), *meter, check=False)
    assert bad.returncode == 1
    assert "merkle proof: FAILED — proof leads to 0x" in bad.stdout
    tampered = copy.deepcopy(doc)
    tampered["events_root"] = "0x" + "22" * 32
    bad_file.write_text(json.dumps(tampered))
    bad = net.cli("verify", str(bad_file), *net.chain_args(), *meter, check=False)
    assert bad.returncode == 1
    assert f"receipt events_root 0x{'22' * 32} != committed on chain" in bad.stdout
    # An export of many receipts prints only the failing ones, then a summary.
    bad_file.write_text(json.dumps([*docs, tampered]))
    mixed = net.cli("verify", str(bad_file), *net.chain_args(), *meter, check=False)
    assert mixed.returncode == 1
    total = len(docs) + 1
    assert f"{total} receipts: {len(docs)} passed, 1 failed" in mixed.stdout
    assert f"receipt {total}/{total}:" in mixed.stdout
    assert "receipt 1/" not in mixed.stdout

    # Epoch 2: the byzantine node comes back honest, node 0 dies; two remain, t = 2.
    net.stop_node(2)
    net.start_node(2)
    more = [usage_event(domain, n, tenant=tenant_a) for n in (5, 6)]

    async def fill_more() -> None:
        g = await gateway_db(net.tmp / "gateway.db")
        try:
            await g.add_events(more, domain)
        finally:
            await g.db.aclose()

    asyncio.run(fill_more())
    node0 = net.nodes[0][0]
    net.stop_node(0)
    (report,) = net.settle(dead=(node0,))  # the settler still asks the dead node
    assert (report["epoch"], report["state"], report["signers"]) == (2, "settled", [1, 2])
    assert [(e["node"], e["kind"]) for e in report["excluded"]] == [(node0, "unreachable")]
