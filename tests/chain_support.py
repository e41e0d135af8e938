"""Shared pieces of the chain tests: a ledger with a tenant, deployments, deposits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from apicredits.chain import Chain, Deployment, Indexer, Wallets, deploy, deposit_test_funds
from apicredits.db import Database, upgrade
from apicredits.ledger import Ledger, tenant_account
from apicredits.tenants import Directory


@dataclass
class Books:
    """A migrated SQLite ledger with one tenant whose wallet is ``wallet``."""

    db: Database
    ledger: Ledger
    tenant_id: str
    wallet: str

    @property
    def account(self) -> str:
        return tenant_account(self.tenant_id)

    async def available(self) -> int:
        return (await self.ledger.balance(self.account)).available_micro


@asynccontextmanager
async def books(tmp_path: Path, wallet: str) -> AsyncIterator[Books]:
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        await upgrade(db)
        ledger = Ledger(db)
        await ledger.open_system_accounts()
        tenant = await Directory(db, ledger).create_tenant("acme")
        await Wallets(db).link(tenant.id, wallet)
        yield Books(db, ledger, tenant.id, wallet)
    finally:
        await db.aclose()


def deployed(chain: Chain, withdraw_delay_seconds: int = 3600) -> Deployment:
    return deploy(chain, withdraw_delay_seconds=withdraw_delay_seconds)


def pay_in(chain: Chain, deployment: Deployment, wallet: str, amount: int) -> None:
    deposit_test_funds(chain, deployment, tenant=wallet, amount=amount)


def indexer(chain: Chain, b: Books, deployment: Deployment, confirmations: int = 0) -> Indexer:
    return Indexer(chain, b.ledger, deployment, confirmations=confirmations)
