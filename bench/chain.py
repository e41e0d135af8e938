"""Gas of the vault's paths on anvil (from receipts) and the indexer's throughput.

    .venv/bin/python bench/chain.py [--deposits 500] [--embedded]

Deploys on a fresh anvil (or the embedded chain with --embedded), prints the gas of
deposit, lock, consume, refund, request_withdrawal and withdraw, then makes ``deposits``
deposits from 8 wallets and times one indexer pass applying them to a SQLite ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from apicredits.chain import Chain, Indexer, Wallets, deploy, deposit_test_funds
from apicredits.chain.anvil import running_anvil
from apicredits.db import Database, upgrade
from apicredits.ledger import Ledger
from apicredits.tenants import Directory

PROVIDER = b"bench-provider".ljust(32, b"\0")


def gas_figures(chain: Chain) -> dict[str, int]:
    d = deploy(chain, withdraw_delay_seconds=5)
    tenant, vault = chain.accounts[1], d.vault
    registry = d.address("provider_registry")
    chain.transact(registry, "provider_registry", "register", PROVIDER, tenant, tenant)
    gas = {"deposit": deposit_test_funds(chain, d, tenant=tenant, amount=10_000_000).gas_used}
    expires = chain.block_timestamp() + 3600

    def tx(fn: str, *args: object, sender: str = tenant) -> int:
        return chain.transact(vault, "credit_vault", fn, *args, sender=sender).gas_used

    job, other = b"\x01" * 32, b"\x02" * 32
    gas["lock"] = tx("lock", job, 1_000_000, expires, PROVIDER)
    gas["consume"] = tx("consume", job, 600_000, sender=d.deployer)
    tx("lock", other, 1_000_000, expires, PROVIDER)
    gas["refund"] = tx("refund", other, sender=d.deployer)
    gas["request_withdrawal"] = tx("request_withdrawal", 1_000_000)
    chain.time_travel(10)
    chain.mine(1)
    gas["withdraw"] = tx("withdraw")
    return gas


async def indexing(chain: Chain, deposits: int, data_dir: Path) -> tuple[int, float, float]:
    d = deploy(chain, withdraw_delay_seconds=5)
    wallets = chain.accounts[1:9]
    started = time.perf_counter()
    for i in range(deposits):
        deposit_test_funds(chain, d, tenant=wallets[i % len(wallets)], amount=1_000 + i)
    sending = time.perf_counter() - started
    db = Database(f"sqlite:///{data_dir / 'bench.db'}")
    try:
        await upgrade(db)
        ledger = Ledger(db)
        await ledger.open_system_accounts()
        directory = Directory(db, ledger)
        for i, wallet in enumerate(wallets):
            tenant = await directory.create_tenant(f"t{i}")
            await Wallets(db).link(tenant.id, wallet)
        started = time.perf_counter()
        report = await Indexer(chain, ledger, d).sync()
        elapsed = time.perf_counter() - started
    finally:
        await db.aclose()
    return report.applied, elapsed, sending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deposits", type=int, default=500)
    parser.add_argument("--embedded", action="store_true", help="embedded chain, not anvil")
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        if args.embedded:
            from apicredits.chain.embedded import EmbeddedChain

            chain: Chain = EmbeddedChain(None)
        else:
            from apicredits.chain.rpc import RpcChain

            chain = RpcChain(stack.enter_context(running_anvil()))
        stack.callback(chain.close)
        backend = type(chain).__name__
        for name, gas in gas_figures(chain).items():
            sys.stdout.write(f"{backend} gas {name:<20} {gas:>9,}\n")
        applied, elapsed, sending = asyncio.run(indexing(chain, args.deposits, Path(tmp)))
    sys.stdout.write(
        f"{backend} {args.deposits} deposits sent in {sending:.1f}s "
        f"({args.deposits * 3} transactions); indexer applied {applied} events in "
        f"{elapsed:.2f}s = {applied / elapsed:,.0f} events/s\n"
    )


if __name__ == "__main__":
    main()
