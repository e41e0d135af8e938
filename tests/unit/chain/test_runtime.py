"""The indexer inside ``apicredits serve``: started with a deployment, elected, restartable."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apicredits.chain import Chain, Deployment, connect, deposit_test_funds
from apicredits.chain.election import FileLease, lease_for
from apicredits.db import Database
from apicredits.demo import embedded_deployment, running_gateway
from apicredits.settings import Settings

ADMIN = "chain-admin"


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir, admin_token=ADMIN, database_url=None, redis_url=None,
        chain_rpc_url=None, chain_deployment_file=None, chain_poll_seconds=0.05,
    )  # fmt: skip


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[Settings, Chain, Deployment]]:
    settings = settings_for(tmp_path)
    with embedded_deployment(settings) as (chain, deployment):
        yield settings, chain, deployment


def admin_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def available_when(admin: httpx.Client, tenant_id: str, expected: int) -> int:
    deadline = time.monotonic() + 10
    while True:
        found = int(admin.get(f"/admin/v1/tenants/{tenant_id}/balance").json()["available_micro"])
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_serve_indexes_deposits_and_the_chain_survives_a_restart(
    deployed: tuple[Settings, Chain, Deployment],
) -> None:
    settings, chain, d = deployed
    wallet = chain.accounts[1]
    with running_gateway(settings) as url, admin_client(url) as admin:
        tid = admin.post("/admin/v1/tenants", json={"name": "acme"}).json()["id"]
        assert admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": wallet}).is_success
        deposit_test_funds(chain, d, tenant=wallet, amount=1_500_000)
        assert available_when(admin, tid, 1_500_000) == 1_500_000
    head = chain.block_number()
    chain.close()  # the gateway restarts on the journal alone
    with running_gateway(settings) as url, admin_client(url) as admin:
        with contextlib.closing(connect(settings)) as again:
            assert again.block_number() == head
            # the vault's state replayed: the same wallet can deposit again
            deposit_test_funds(again, d, tenant=wallet, amount=250_000)
        # counted once before the restart, once for the new deposit: not 3_250_000
        assert available_when(admin, tid, 1_750_000) == 1_750_000
        time.sleep(0.2)  # several more passes
        assert available_when(admin, tid, 1_750_000) == 1_750_000
        transfers = admin.get(f"/admin/v1/tenants/{tid}/ledger").json()["transfers"]
        assert len([t for t in transfers if t["id"].startswith("chain:")]) == 2


def test_serve_without_a_deployment_says_how_to_enable_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apicredits.gateway")
    with running_gateway(settings_for(tmp_path)) as url, admin_client(url) as admin:
        assert admin.get("/healthz").status_code == 200
    lines = [r.getMessage() for r in caplog.records if "apicredits chain deploy" in r.getMessage()]
    assert len(lines) == 1


def test_runtime_open_without_a_chain_loads_no_evm(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from apicredits.runtime import Runtime\n"
        "from apicredits.settings import Settings\n"
        "async def main():\n"
        f"    rt = await Runtime.open(Settings(data_dir={str(tmp_path)!r}, admin_token='x',"
        " database_url=None, redis_url=None, chain_rpc_url=None, chain_deployment_file=None))\n"
        "    assert rt.chain is None\n"
        "    await rt.close()\n"
        "asyncio.run(main())\n"
        "loaded = [m for m in ('boa', 'vyper', 'eth.vm') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.anyio
async def test_one_file_lease_holder_at_a_time(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        first, second = lease_for(db, "indexer-1337-0xabc"), lease_for(db, "indexer-1337-0xabc")
        assert isinstance(first, FileLease)
        assert await first.hold()
        assert await first.hold()  # still
        assert not await second.hold()
        await first.release()
        assert await second.hold()
        assert not await first.hold()
        await second.release()
    finally:
        await db.aclose()
