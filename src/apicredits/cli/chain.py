"""``apicredits chain ...``: a local node, deployment, test deposits and the indexer.

Commands talk to the configured chain (``APICREDITS_CHAIN_RPC_URL``, else the embedded
chain under the data directory) and, where the ledger is involved, to the configured
database directly.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from apicredits.money import format_micro
from apicredits.settings import Settings

if TYPE_CHECKING:  # the chain package loads eth-account and friends: import on use
    from apicredits.chain import Chain, Deployment
    from apicredits.ledger import Ledger

app = typer.Typer(help="On-chain credits: local node, contracts, deposits.", no_args_is_help=True)
console = Console()


@contextmanager
def _chain(settings: Settings) -> Iterator[Chain]:
    from apicredits.chain import connect

    chain = connect(settings)
    try:
        yield chain
    finally:
        chain.close()


@asynccontextmanager
async def _ledger(settings: Settings) -> AsyncIterator[Ledger]:
    from apicredits.db import Database, upgrade
    from apicredits.ledger import Ledger

    db = Database(settings.effective_database_url)
    try:
        await upgrade(db)
        ledger = Ledger(db)
        await ledger.open_system_accounts()
        yield ledger
    finally:
        await db.aclose()


def _deployment(settings: Settings, chain: Chain) -> Deployment:
    from apicredits.chain import load_deployment
    from apicredits.chain.connect import deployment_path

    return load_deployment(deployment_path(settings, chain.chain_id), chain_id=chain.chain_id)


@app.command()
def up(
    port: Annotated[int, typer.Option(min=1, max=65535, help="JSON-RPC port")] = 8545,
    state: Annotated[Path | None, typer.Option(help="state file (default: data dir)")] = None,
    chain_id: Annotated[int | None, typer.Option(help="chain id (default 31337)")] = None,
) -> None:
    """Run a local anvil (Prague) in the foreground, its state kept across restarts."""
    from apicredits.chain.anvil import anvil_command
    from apicredits.chain.connect import chain_dir

    settings = Settings()
    state = state or chain_dir(settings) / "anvil-state.json"
    command = anvil_command(port, state=state, chain_id=chain_id)
    typer.echo(f"anvil on http://127.0.0.1:{port} (state: {state}); Ctrl-C stops it", err=True)
    typer.echo(f"export APICREDITS_CHAIN_RPC_URL=http://127.0.0.1:{port}", err=True)
    try:
        raise typer.Exit(subprocess.call(command))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command("deploy")
def deploy_command(
    withdraw_delay: Annotated[
        int | None, typer.Option(help="withdrawal delay, seconds (default: settings)")
    ] = None,
    stablecoin: Annotated[
        str | None, typer.Option(help="stablecoin address (a test one on local chains)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="deployment file to write")] = None,
) -> None:
    """Deploy the contracts to the configured chain and write the deployment file."""
    from apicredits.chain import deploy
    from apicredits.chain.connect import deployment_path

    settings = Settings()
    with _chain(settings) as chain:
        path = out or deployment_path(settings, chain.chain_id)
        delay = settings.chain_withdraw_delay_seconds if withdraw_delay is None else withdraw_delay
        deployment = deploy(chain, withdraw_delay_seconds=delay, stablecoin=stablecoin, path=path)
    table = Table(title=f"chain {deployment.chain_id} from block {deployment.deploy_block}")
    table.add_column("contract")
    table.add_column("address")
    for role, contract in sorted(deployment.contracts.items()):
        table.add_row(role, contract.address)
    console.print(table)
    typer.echo(f"deployment file: {path}")


@app.command()
def status() -> None:
    """The chain's head, the deployment and how far the indexer has applied events."""
    from apicredits.chain import Indexer
    from apicredits.chain.connect import confirmations, deployment_path

    settings = Settings()
    with _chain(settings) as chain:
        head = chain.block_number()
        typer.echo(f"chain {chain.chain_id}: block {head} ({type(chain).__name__})")
        deployment = _deployment(settings, chain)
        typer.echo(f"deployment: {deployment_path(settings, chain.chain_id)}")
        typer.echo(f"vault: {deployment.vault} (from block {deployment.deploy_block})")

        async def cursor() -> str:
            async with _ledger(settings) as ledger:
                found = await Indexer(chain, ledger, deployment).cursor()
            return "not started" if found is None else f"block {found.block_number}"

        typer.echo(f"indexer: {asyncio.run(cursor())}, confirmations {confirmations(settings)}")


@app.command()
def link(
    tenant: Annotated[str, typer.Option(help="tenant id")],
    address: Annotated[str, typer.Option(help="the wallet whose deposits fund the tenant")],
) -> None:
    """Link a wallet address to a tenant: its vault deposits credit the tenant.

    Deposits made before the link are credited on the indexer's next pass (the same as
    ``PUT /admin/v1/tenants/{id}/wallet``)."""
    from apicredits.chain import Wallets

    settings = Settings()

    async def run() -> str:
        async with _ledger(settings) as ledger:
            return await Wallets(ledger.db).link(tenant, address)

    typer.echo(f"{asyncio.run(run())} funds {tenant}")


def _index_once(settings: Settings, chain: Chain, deployment: Deployment) -> Callable[[], str]:
    from apicredits.chain import Indexer
    from apicredits.chain.connect import confirmations

    async def run() -> str:
        async with _ledger(settings) as ledger:
            report = await Indexer(
                chain, ledger, deployment, confirmations=confirmations(settings)
            ).sync()
        return f"applied {report.applied} events, reversed {report.reversed}, head {report.head}"

    return lambda: asyncio.run(run())


@app.command()
def deposit(
    tenant: Annotated[str, typer.Option(help="tenant id")],
    amount_micro: Annotated[int, typer.Option(min=1, help="micro-credits (= micro-USDC)")],
    account: Annotated[int, typer.Option(min=0, max=9, help="dev account that pays")] = 1,
) -> None:
    """Local chains: fund a tenant through the vault with test stablecoin.

    Mints test stablecoin to a dev account, links it to the tenant (if no wallet is linked
    yet), deposits into the vault and indexes the deposit into the ledger."""
    from apicredits.chain import Wallets, deposit_test_funds
    from apicredits.ledger import tenant_account

    settings = Settings()
    with _chain(settings) as chain:
        deployment = _deployment(settings, chain)
        payer = chain.accounts[account]

        async def wallet() -> str:
            async with _ledger(settings) as ledger:
                wallets = Wallets(ledger.db)
                linked = await wallets.addresses(tenant)
                return linked[0] if linked else await wallets.link(tenant, payer)

        address = asyncio.run(wallet())
        receipt = deposit_test_funds(
            chain, deployment, tenant=address, amount=amount_micro, payer=payer
        )
        typer.echo(
            f"deposited {format_micro(amount_micro)} credits for {address}: {receipt.tx_hash}"
        )
        typer.echo(_index_once(settings, chain, deployment)())

        async def balance() -> int:
            async with _ledger(settings) as ledger:
                return (await ledger.balance(tenant_account(tenant))).available_micro

        typer.echo(f"{tenant} available: {format_micro(asyncio.run(balance()))} credits")


@app.command()
def index(
    follow: Annotated[bool, typer.Option(help="keep polling for new blocks")] = False,
) -> None:
    """Apply the vault's confirmed events to the ledger, once or (--follow) forever.

    ``apicredits serve`` does the same; only one process sharing the ledger indexes at a
    time."""
    from apicredits.chain import Indexer
    from apicredits.chain.connect import confirmations, deployment_path
    from apicredits.chain.runtime import ChainRuntime

    settings = Settings()
    with _chain(settings) as chain:
        deployment = _deployment(settings, chain)
        if not follow:
            typer.echo(_index_once(settings, chain, deployment)())
            return

        async def run() -> None:
            async with _ledger(settings) as ledger:
                indexer = Indexer(chain, ledger, deployment, confirmations=confirmations(settings))
                path = deployment_path(settings, chain.chain_id)
                await ChainRuntime(
                    chain, deployment, path, indexer, settings.chain_poll_seconds
                ).run()

        with suppress(KeyboardInterrupt):
            asyncio.run(run())
