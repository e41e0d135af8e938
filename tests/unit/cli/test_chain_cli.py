"""``apicredits chain`` on the embedded chain: deploy, status, link, deposit, errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from apicredits.db import Database, upgrade
from apicredits.ledger import Ledger
from apicredits.tenants import Directory


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APICREDITS_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "apicredits", "chain", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


async def _tenant(data_dir: Path) -> str:
    db = Database(f"sqlite:///{data_dir / 'apicredits.db'}")
    try:
        await upgrade(db)
        ledger = Ledger(db)
        await ledger.open_system_accounts()
        return (await Directory(db, ledger).create_tenant("acme")).id
    finally:
        await db.aclose()


def test_deploy_deposit_and_status(tmp_path: Path) -> None:
    done = cli(tmp_path, "status")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no deployment file")
    done = cli(tmp_path, "deploy", "--withdraw-delay", "60")
    assert done.returncode == 0, done.stderr
    assert "credit_vault" in done.stdout
    assert (tmp_path / "chain/deployment-1337.json").exists()
    tenant = asyncio.run(_tenant(tmp_path))
    done = cli(tmp_path, "deposit", "--tenant", tenant, "--amount-micro", "2500000")
    assert done.returncode == 0, done.stderr
    assert "applied 1 events" in done.stdout
    assert "available: 2.500000" in done.stdout
    done = cli(tmp_path, "status")
    assert done.returncode == 0
    assert "indexer: block" in done.stdout
    done = cli(tmp_path, "link", "--tenant", tenant, "--address", "nope")
    assert done.returncode == 1
    assert "not an address" in done.stderr
