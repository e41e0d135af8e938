"""The ``apicredits`` command. Errors print as one line on stderr with a non-zero exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from apicredits.cli import (
    admin,
    chain,
    oracle,
    services,  # noqa: F401 - registers its commands on admin.app
)
from apicredits.errors import ApicreditsError, DatabaseUnavailable
from apicredits.logs import json_log_config

if TYPE_CHECKING:
    from apicredits.settings import Settings

app = typer.Typer(
    help="apicredits: tokenised API credits for AI workloads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(admin.app, name="admin")
app.add_typer(chain.app, name="chain")
app.add_typer(oracle.app, name="oracle")
app.command("settle")(oracle.settle)
app.command("verify")(oracle.verify)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    proxy_headers: Annotated[
        bool, typer.Option(help="trust X-Forwarded-For/-Proto (behind a reverse proxy)")
    ] = False,
) -> None:
    """Serve the gateway: control plane at /admin/v1 (docs at /docs)."""
    from apicredits.db import Database, upgrade
    from apicredits.settings import Settings

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _check_before_serving(settings)
    if settings.admin_token is None:
        settings.resolve_admin_token()
        typer.echo(f"admin token: {settings.data_dir / 'admin-token'}", err=True)
    if workers > 1 and not settings.redis_url:
        typer.echo(
            "warning: without APICREDITS_REDIS_URL each worker keeps its own rate limits and "
            "DPoP replay cache; set it to share them across workers",
            err=True,
        )

    async def migrate() -> None:
        db = Database(settings.effective_database_url)
        try:
            await upgrade(db)
        finally:
            await db.aclose()

    asyncio.run(migrate())  # once here, so workers start on the newest schema
    with shared_metrics(settings.data_dir, workers):
        _run_uvicorn(settings, host, port, workers, proxy_headers)


def _check_before_serving(settings: Settings) -> None:
    """What would stop every worker's start, refused here in one line (main's) instead of
    a traceback per worker."""
    from apicredits.gateway.routing import Router
    from apicredits.metering.producer import load_or_create_metering_key
    from apicredits.tariffs import parse_tariff_toml

    Router(settings)  # a model routed to no provider
    if settings.tariff_file is not None:
        parse_tariff_toml(settings.tariff_file.read_text("utf-8"), version=1)
    if settings.chain_deployment_file is not None:  # its chain is checked once connected
        from apicredits.chain.deployment import load_deployment

        load_deployment(settings.chain_deployment_file)
    # made here if missing, once, rather than by workers starting together
    load_or_create_metering_key(settings.effective_metering_key_file)


@contextlib.contextmanager
def shared_metrics(data_dir: Path, workers: int) -> Iterator[None]:
    """With several workers, a fresh directory for their shared Prometheus metrics (see
    ``apicredits.gateway.metrics``), removed when the server stops; one given in
    ``PROMETHEUS_MULTIPROC_DIR`` is used as it is."""
    from apicredits.gateway.metrics import MULTIPROCESS_ENV

    if workers == 1 or os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="metrics-", dir=data_dir)
    os.environ[MULTIPROCESS_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_ENV]
        shutil.rmtree(directory, ignore_errors=True)


def _run_uvicorn(
    settings: Settings, host: str | None, port: int | None, workers: int, proxy_headers: bool
) -> None:
    import uvicorn

    uvicorn.run(
        "apicredits.gateway.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=json_log_config(settings.log_level),
        access_log=False,
        loop="uvloop",
        http="httptools",
        # X-Forwarded-* only when asked: behind a proxy, set APICREDITS_PUBLIC_URL too (DPoP).
        proxy_headers=proxy_headers,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


@app.command("provider-sim")
def provider_sim(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port")] = 9100,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    signing_key: Annotated[
        Path | None, typer.Option(help="sign usage with this key (0x-hex secp256k1 file)")
    ] = None,
    emit_url: Annotated[
        str | None, typer.Option(help="where to POST signed usage (the gateway's /v1/usage/emit)")
    ] = None,
) -> None:
    """Serve the local provider simulator (OpenAI, Anthropic and Gemini wire formats)."""
    from apicredits.providers.simulator import run_simulator

    run_simulator(host=host, port=port, workers=workers, signing_key=signing_key, emit_url=emit_url)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="keep the demo's data directory")] = False,
) -> None:
    """Run the end-to-end demo on embedded defaults (temporary data directory)."""
    from apicredits.demo import run_demo

    run_demo(keep=keep)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database to the newest schema."""
    from apicredits.db import Database, upgrade
    from apicredits.settings import Settings

    async def run() -> None:
        db = Database(Settings().effective_database_url)
        try:
            await upgrade(db)
        finally:
            await db.aclose()

    asyncio.run(run())
    typer.echo("database is at the newest schema")


def main() -> None:
    try:
        # Not standalone: usage errors come here to be told in one line like the rest,
        # rather than in Typer's boxed block.
        outcome = app(standalone_mode=False)
    except typer.TyperException as exc:  # a usage error (exit 2) or another of Typer's
        message = exc.format_message().rstrip(".")
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        if message:  # none when Typer printed the help instead (a group given no command)
            sys.stderr.write(f"error: {message}{hint}\n")
        sys.exit(exc.exit_code)
    except typer.Abort:  # Ctrl-D at a prompt
        sys.stderr.write("error: aborted\n")
        sys.exit(1)
    except DatabaseUnavailable as exc:  # the operator gets the driver's words
        sys.stderr.write(f"error: database: {exc.cause or exc.message}\n")
        sys.exit(1)
    except ApicreditsError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        sys.exit(1)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        problem = first["msg"].removeprefix("Value error, ")  # pydantic's, for our own checks
        sys.stderr.write(f"error: invalid setting {where}: {problem}\n")
        sys.exit(1)
    except OSError as exc:  # a file it cannot make or read, a server it cannot reach
        what = f"{exc.strerror}: {exc.filename}" if exc.filename and exc.strerror else str(exc)
        sys.stderr.write(f"error: {what}\n")
        sys.exit(1)
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        from apicredits.db.outages import driver_message

        sys.stderr.write(f"error: database: {driver_message(exc)}\n")
        sys.exit(1)
    # what ``typer.Exit`` or Ctrl-C asked for (130), else success
    sys.exit(outcome if isinstance(outcome, int) else 0)


def _is_database_error(exc: Exception) -> bool:
    """SQLAlchemy's errors that are not outages (those arrive as ``DatabaseUnavailable``),
    checked without importing it: a command that met one has loaded it, and the commands
    that never touch a database start faster without it."""
    module = sys.modules.get("sqlalchemy.exc")
    return module is not None and isinstance(exc, module.SQLAlchemyError)
