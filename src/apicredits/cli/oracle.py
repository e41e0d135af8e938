"""``apicredits oracle keygen|register|serve``, ``apicredits settle`` and ``apicredits verify``.

Chain and deployment come from the settings (``APICREDITS_CHAIN_RPC_URL``, the deployment
file) unless ``--rpc`` / ``--deployment`` say otherwise; the database is the configured one
(``APICREDITS_DATABASE_URL``) unless ``--database-url`` says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging.config
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from apicredits.cli.client import CliError
from apicredits.settings import Settings

if TYPE_CHECKING:
    from apicredits.chain import Chain, Deployment
    from apicredits.oracle.bls import OracleKey

app = typer.Typer(help="An oracle node: keys, registration, signing service.", no_args_is_help=True)

Rpc = Annotated[str | None, typer.Option(help="JSON-RPC URL (default: settings)")]
DeploymentFile = Annotated[Path | None, typer.Option(help="deployment file (default: settings)")]
DatabaseUrl = Annotated[str | None, typer.Option(help="gateway database URL (default: settings)")]
FeeBps = Annotated[int, typer.Option(min=0, max=10_000, help="platform fee, basis points")]
GatewayMeter = Annotated[
    str | None, typer.Option(help="the gateway's metering address (trusted for meter=gateway)")
]


@contextmanager
def _chain(rpc: str | None, deployment: Path | None) -> Iterator[tuple[Chain, Deployment]]:
    from apicredits.chain import connect, load_deployment
    from apicredits.chain.connect import deployment_path

    settings = Settings() if rpc is None else Settings(chain_rpc_url=rpc)
    chain = connect(settings)
    try:
        path = deployment or deployment_path(settings, chain.chain_id)
        yield chain, load_deployment(path, chain_id=chain.chain_id)
    finally:
        chain.close()


def _read_key(path: Path) -> OracleKey:
    from apicredits.oracle.bls import OracleKey

    try:
        text = path.read_text("utf-8").strip()
        return OracleKey.from_bytes(bytes.fromhex(text.removeprefix("0x")))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read an oracle key from {path}: {exc}") from None


@app.command()
def keygen(out: Annotated[Path, typer.Option(help="key file to create (0600)")]) -> None:
    """Generate a BLS oracle key; print its public key and proof of possession."""
    from apicredits.oracle.bls import OracleKey

    if out.exists():
        raise CliError(f"{out} exists; not overwriting a secret key")
    key = OracleKey.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.to_bytes().hex() + "\n")
    doc = {
        "key_file": str(out),
        "public_key": "0x" + key.public_key.hex(),
        "proof_of_possession": "0x" + key.proof_of_possession().hex(),
    }
    typer.echo(json.dumps(doc, indent=2))


@app.command()
def register(
    key_file: Annotated[list[Path], typer.Option(help="oracle key file, repeatable")],
    threshold: Annotated[int | None, typer.Option(min=1, help="then set the threshold")] = None,
    rpc: Rpc = None,
    deployment: DeploymentFile = None,
) -> None:
    """Register oracle keys on UsageReceipts with their proofs of possession (as its owner)."""
    from apicredits.oracle.aggregator import registered_oracles
    from apicredits.oracle.merkle import keccak256

    keys = [_read_key(path) for path in key_file]
    with _chain(rpc, deployment) as (chain, d):
        known = registered_oracles(chain, d.receipts)
        owner = chain.call(d.receipts, "usage_receipts", "owner")
        for path, key in zip(key_file, keys, strict=True):
            index = known.get(keccak256(key.public_key))
            if index is None:
                receipt = chain.transact(
                    d.receipts, "usage_receipts", "register_oracle",
                    key.public_key, key.proof_of_possession(), sender=owner,
                )  # fmt: skip
                index = registered_oracles(chain, d.receipts)[keccak256(key.public_key)]
                typer.echo(f"{path}: registered as oracle {index} ({receipt.tx_hash})")
            else:
                typer.echo(f"{path}: already oracle {index}")
        if threshold is not None:
            chain.transact(d.receipts, "usage_receipts", "set_threshold", threshold, sender=owner)
        active = chain.call(d.receipts, "usage_receipts", "active_oracle_count")
        current = chain.call(d.receipts, "usage_receipts", "threshold")
        typer.echo(f"active oracles: {active}, threshold: {current}")


@app.command()
def serve(
    key_file: Annotated[Path, typer.Option(help="this node's key file")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="port")] = 9200,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    fee_bps: FeeBps = 0,
    gateway_meter: GatewayMeter = None,
    byzantine: Annotated[bool, typer.Option(help="TEST ONLY: sign a wrong root")] = False,
    rpc: Rpc = None,
    deployment: DeploymentFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve one oracle node: POST /v1/epochs/sign re-validates an epoch and signs it."""
    import uvicorn

    from apicredits.db import Database
    from apicredits.logs import json_log_config
    from apicredits.metering.events import UsageDomain
    from apicredits.oracle.node import DatabaseSources, OracleNode
    from apicredits.oracle.validation import registry_history_from_chain

    key = _read_key(key_file)
    settings = Settings()
    with _chain(rpc, deployment) as (chain, d):
        db = Database(database_url or settings.effective_database_url)
        node = OracleNode(
            key,
            UsageDomain(chain.chain_id, d.receipts),
            registry=lambda: registry_history_from_chain(
                chain, d.address("provider_registry"), d.deploy_block
            ),
            sources=DatabaseSources(db),
            fee_bps=fee_bps,
            gateway_meter=gateway_meter,
            byzantine=byzantine,
        )
        if byzantine:
            typer.echo("warning: --byzantine: this node signs wrong roots", err=True)
        typer.echo(f"oracle node 0x{key.public_key.hex()[32:48]}… on {host}:{port}", err=True)
        uvicorn.run(
            node.app(),
            host=host,
            port=port,
            log_config=json_log_config(settings.log_level),
            access_log=False,
        )


def settle(
    node: Annotated[list[str], typer.Option(help="oracle node URL, repeatable")],
    once: Annotated[bool, typer.Option(help="one pass, then exit")] = False,
    max_events: Annotated[int, typer.Option(min=1, help="seal at this many events")] = 1000,
    max_seconds: Annotated[float, typer.Option(min=0, help="or when the oldest waited")] = 60.0,
    fee_bps: FeeBps = 0,
    gateway_meter: GatewayMeter = None,
    gateway: Annotated[
        str | None,
        typer.Option(help="gateway URL: receipts are posted there; its meter is the default"),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=32, help="lines per execute_lines")] = 32,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between passes")] = 5.0,
    wait: Annotated[bool, typer.Option(help="wait out the dispute window")] = True,
    rpc: Rpc = None,
    deployment: DeploymentFile = None,
    database_url: DatabaseUrl = None,
    sign_usage: Annotated[
        bool,
        typer.Option(help="sign new usage records with the gateway's metering key first"),
    ] = True,
) -> None:
    """Settle usage: sign it, seal epochs, gather oracle signatures, submit, pay out.

    Signs usage records into usage events, seals them into epochs, has the oracles sign
    each epoch's root, submits it on chain and executes its settlement lines."""
    from apicredits.db import Database, upgrade
    from apicredits.logs import json_log_config
    from apicredits.oracle.aggregator import Settler
    from apicredits.tariffs.store import TariffStore

    settings = Settings()
    logging.config.dictConfig(json_log_config(settings.log_level))
    if gateway_meter is None and gateway is not None:
        gateway_meter = _published_meter(gateway)

    async def run(chain: Chain, d: Deployment) -> None:
        db = Database(database_url or settings.effective_database_url)
        try:
            await upgrade(db)
            book = await TariffStore(db).book()
            settler = Settler(
                db, chain, d, node, tariffs=book.version, fee_bps=fee_bps,
                gateway_meter=gateway_meter, max_events=max_events, max_seconds=max_seconds,
                batch=batch, gateway_url=gateway, admin_token=_admin_token(settings, gateway),
            )  # fmt: skip
            producer = _producer(settings, db, d) if sign_usage else None
            while True:
                if producer is not None:  # usage records -> signed usage events, then seal
                    while await producer.step() > 0:
                        pass
                settler.tariffs = (await TariffStore(db).book()).version
                for report in await settler.run_once(wait=wait):
                    typer.echo(json.dumps(report.to_document()))
                if once:
                    return
                await asyncio.sleep(interval)
        finally:
            await db.aclose()

    with _chain(rpc, deployment) as (chain, d), suppress(KeyboardInterrupt):
        asyncio.run(run(chain, d))


def _producer(settings: Settings, db: Any, d: Deployment) -> Any:
    """The gateway's usage-event producer, with its metering key (``metering_key_file``, else
    the data directory's, shared with the gateway on one host) and the deployment's domain."""
    from apicredits.metering.events import UsageDomain
    from apicredits.metering.producer import EventProducer, load_or_create_metering_key

    key = load_or_create_metering_key(settings.effective_metering_key_file)
    return EventProducer(db, key, UsageDomain(d.chain_id, d.receipts))


def _published_meter(gateway: str) -> str | None:
    """The metering address the gateway publishes (``GET /v1/usage/signers``)."""
    import httpx

    try:
        doc = httpx.get(gateway.rstrip("/") + "/v1/usage/signers", timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise CliError(f"cannot read the gateway's metering address: {exc}") from None
    meter = doc.get("gateway_meter") if isinstance(doc, dict) else None
    return str(meter) if meter else None


def _admin_token(settings: Settings, gateway: str | None) -> str | None:
    if gateway is None:
        return None
    return settings.resolve_admin_token()


def verify(
    receipt: Annotated[str, typer.Argument(help="a receipt JSON file (or '-'), or a usage export")],
    rpc: Annotated[
        str | None, typer.Option(help="JSON-RPC URL of the chain (default: settings)")
    ] = None,
    deployment: DeploymentFile = None,
    gateway_meter: GatewayMeter = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="print the checks of every receipt")
    ] = False,
) -> None:
    """Check usage receipts against the chain alone; exit 1 if any check fails.

    Of a usage export (many receipts) only the failing receipts are printed, then a
    summary."""
    import sys

    from rich.progress import Progress

    from apicredits.oracle.verify import ChainReader, verify_receipt

    try:
        text = sys.stdin.read() if receipt == "-" else Path(receipt).read_text("utf-8")
        doc: Any = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read a receipt from {receipt}: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("receipts"), list):
        receipts = doc["receipts"]  # a usage export: {"receipts": [...], ...}
    else:
        receipts = doc if isinstance(doc, list) else [doc]
    if not receipts or not all(isinstance(one, dict) for one in receipts):
        raise CliError(f"{receipt} holds no receipt objects")
    many = len(receipts) > 1
    failed_checks = failed_receipts = 0
    with _chain(rpc, deployment) as (chain, d), Progress(transient=True, disable=not many) as bar:
        reader = ChainReader(chain, d)  # one registry replay and lookup per epoch for all
        task = bar.add_task("verifying receipts", total=len(receipts))
        for i, one in enumerate(receipts):
            checks = verify_receipt(one, chain, d, gateway_meter=gateway_meter, reader=reader)
            failures = sum(1 for check in checks if not check.ok)
            failed_checks += failures
            failed_receipts += bool(failures)
            if not many:
                for check in checks:
                    typer.echo(check.line())
            elif failures or verbose:
                # Progress redirects stdout: these lines print above the bar, unwrapped.
                typer.echo(f"receipt {i + 1}/{len(receipts)}:")
                for check in checks:
                    typer.echo("  " + check.line())
            bar.advance(task)
    if many:
        typer.echo(f"{len(receipts)} receipts: {len(receipts) - failed_receipts} passed, "
                   f"{failed_receipts} failed")  # fmt: skip
    if failed_checks:
        typer.echo(f"FAILED: {failed_checks} check(s)", err=True)
        raise typer.Exit(1)
    typer.echo("all checks passed")
