"""``apicredits admin ...``: the control plane from the shell (``--json`` for machines)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from apicredits.cli.client import AdminClient, CliError
from apicredits.money import credits_to_micro, format_micro
from apicredits.settings import Settings

app = typer.Typer(help="Manage tenants, credits, keys, budgets and tariffs.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
project_app = typer.Typer(help="Projects of a tenant.", no_args_is_help=True)
key_app = typer.Typer(
    help="Static API keys (only for tenants with legacy_keys).", no_args_is_help=True
)
budget_app = typer.Typer(help="Spend caps per tenant, project or key.", no_args_is_help=True)
tariff_app = typer.Typer(help="Versioned rate cards.", no_args_is_help=True)
lock_app = typer.Typer(help="Two-phase spending: lock, consume, refund.", no_args_is_help=True)
for sub, name in (
    (tenant_app, "tenant"),
    (project_app, "project"),
    (key_app, "key"),
    (budget_app, "budget"),
    (tariff_app, "tariff"),
    (lock_app, "lock"),
):
    app.add_typer(sub, name=name)

console = Console()


class State:
    url = "http://127.0.0.1:8000"
    token: str | None = None
    as_json = False


@app.callback()
def options(
    url: Annotated[str, typer.Option(envvar="APICREDITS_URL", help="gateway URL")] = State.url,
    token: Annotated[
        str | None, typer.Option(envvar="APICREDITS_ADMIN_TOKEN", help="admin token")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    State.url, State.token, State.as_json = url, token, as_json


def client() -> AdminClient:
    token = State.token
    if token is None:
        path = Settings().data_dir / "admin-token"
        if not path.exists():
            raise CliError(f"no admin token: set APICREDITS_ADMIN_TOKEN or create {path}")
        token = path.read_text().strip()
    return AdminClient(State.url, token)


def call(method: str, path: str, **kwargs: Any) -> Any:
    c = client()
    try:
        return c.call(method, path, **kwargs)
    finally:
        c.close()


def show(doc: Any, columns: list[str] | None = None, rows_key: str | None = None) -> None:
    """Print ``doc`` as JSON (``--json``) or as a table / key-value list."""
    if State.as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    if rows_key is not None and columns is not None:
        table = Table(*columns)
        for row in doc[rows_key]:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        console.print(table)
        return
    table = Table(show_header=False)
    for k, v in doc.items():
        table.add_row(k, _cell(v))
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def amount(micro: int | None, credits: str | None) -> int:
    if (micro is None) == (credits is None):
        raise CliError("give the amount either in micro-credits or with --credits")
    return micro if micro is not None else credits_to_micro(credits or "")


# -- tenants
@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="display name")] = "",
    legacy_keys: Annotated[bool, typer.Option(help="allow static API keys")] = False,
    dpop_required: Annotated[
        bool, typer.Option(help="require DPoP-bound tokens (else bearer tokens are accepted)")
    ] = True,
    owner_address: Annotated[
        str | None, typer.Option(help="the owner's wallet (EIP-55), for Sign-In with Ethereum")
    ] = None,
) -> None:
    """Create a tenant (its credit account opens with it)."""
    body = {"name": name, "legacy_keys": legacy_keys, "dpop_required": dpop_required}
    if owner_address is not None:
        body["owner_address"] = owner_address
    show(call("POST", "/tenants", json=body))


@tenant_app.command("list")
def tenant_list() -> None:
    """Every tenant."""
    show(call("GET", "/tenants"), ["id", "name", "created_at"], "tenants")


@tenant_app.command("show")
def tenant_show(tenant_id: str) -> None:
    """One tenant and its settings."""
    show(call("GET", f"/tenants/{tenant_id}"))


@app.command("deposit")
def deposit(
    tenant_id: str,
    amount_micro: Annotated[int | None, typer.Argument(help="micro-credits")] = None,
    credits: Annotated[str | None, typer.Option(help="amount in credits, e.g. 12.5")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="retry-safe key")] = None,
    memo: str = "",
) -> None:
    """Credit a tenant off chain (an admin top-up)."""
    # An empty key (an unset shell variable) must not pass for none: a retry would pay twice.
    key = f"cli-{os.urandom(8).hex()}" if idempotency_key is None else idempotency_key
    body = {"amount_micro": amount(amount_micro, credits), "idempotency_key": key, "memo": memo}
    show(call("POST", f"/tenants/{tenant_id}/deposits", json=body))


@app.command("balance")
def balance(tenant_id: str) -> None:
    """The tenant's credits: available, locked, spent and deposited."""
    doc = call("GET", f"/tenants/{tenant_id}/balance")
    if not State.as_json:
        for k in ("available_micro", "locked_micro", "spent_micro", "deposited_micro",
                  "chain_debt_micro"):  # fmt: skip
            if k in doc:
                doc[k.replace("_micro", "_credits")] = format_micro(doc[k])
    show(doc)


@app.command("history")
def history(
    tenant_id: str, limit: int = 100, after_seq: Annotated[int, typer.Option()] = 0
) -> None:
    """The tenant's ledger transfers, oldest first."""
    doc = call(
        "GET", f"/tenants/{tenant_id}/ledger", params={"limit": limit, "after_seq": after_seq}
    )
    cols = ["seq", "id", "kind", "amount_micro", "released_micro", "created_at"]
    show(doc, cols, "transfers")


# -- projects and keys
@project_app.command("create")
def project_create(tenant_id: str, name: str = "") -> None:
    """Create a project under a tenant (budgets and keys can be scoped to it)."""
    show(call("POST", f"/tenants/{tenant_id}/projects", json={"name": name}))


@project_app.command("list")
def project_list(tenant_id: str) -> None:
    """The tenant's projects."""
    show(call("GET", f"/tenants/{tenant_id}/projects"), ["id", "name", "created_at"], "projects")


@key_app.command("create")
def key_create(
    tenant_id: str,
    project: Annotated[str | None, typer.Option(help="project id")] = None,
    name: str = "",
    rpm: Annotated[int | None, typer.Option(help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute")] = None,
    concurrency: Annotated[int | None, typer.Option(help="concurrent requests")] = None,
) -> None:
    """Create an API key; it is printed once and stored hashed."""
    body = {
        "tenant_id": tenant_id,
        "project_id": project,
        "name": name,
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "max_concurrent": concurrency,
    }
    show(call("POST", "/keys", json=body))


@key_app.command("list")
def key_list(tenant_id: str) -> None:
    """The tenant's API keys (prefixes only; a key is shown once, when created)."""
    cols = ["id", "prefix", "project_id", "name", "revoked_at"]
    show(call("GET", f"/tenants/{tenant_id}/keys"), cols, "keys")


@key_app.command("revoke")
def key_revoke(credential_id: str) -> None:
    """Revoke an API key: calls with it are refused from now on."""
    show(call("DELETE", f"/keys/{credential_id}"))


# -- budgets
@budget_app.command("set")
def budget_set(
    tenant_id: str,
    period: Annotated[str, typer.Option(help="day, month or none")],
    cap_micro: Annotated[int | None, typer.Option(help="cap in micro-credits")] = None,
    cap_credits: Annotated[str | None, typer.Option(help="cap in credits")] = None,
    scope: Annotated[str, typer.Option(help="tenant, project or credential")] = "tenant",
    scope_id: Annotated[str | None, typer.Option(help="project or key id")] = None,
) -> None:
    """Cap what a tenant, project or key may spend per day, month or in all."""
    body = {
        "tenant_id": tenant_id,
        "scope": scope,
        "scope_id": scope_id,
        "period": period,
        "cap_micro": amount(cap_micro, cap_credits),
    }
    show(call("PUT", "/budgets", json=body))


@budget_app.command("list")
def budget_list(tenant_id: str) -> None:
    """The tenant's budgets, with what each has used and has left."""
    cols = ["id", "scope", "scope_id", "period", "cap_micro", "used_micro", "remaining_micro"]
    show(call("GET", f"/tenants/{tenant_id}/budgets"), cols, "budgets")


@budget_app.command("delete")
def budget_delete(budget_id: str) -> None:
    """Remove a budget."""
    call("DELETE", f"/budgets/{budget_id}")
    show({"deleted": budget_id})


# -- tariffs and quotes
@tariff_app.command("upload")
def tariff_upload(path: Path) -> None:
    """Upload a tariff version from a TOML file."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    doc = call("POST", "/tariffs", content=content, content_type="application/toml")
    show({k: v for k, v in doc.items() if k != "models"} | {"models": len(doc["models"])})


@tariff_app.command("list")
def tariff_list() -> None:
    """The tariff versions."""
    show(call("GET", "/tariffs"), ["version", "effective_from", "models", "source"], "versions")


@tariff_app.command("show")
def tariff_show(version: int) -> None:
    """One tariff version's rates."""
    show(call("GET", f"/tariffs/{version}"))


@app.command("quote")
def quote(
    model: Annotated[str, typer.Option(help="model name")],
    input_tokens: Annotated[int, typer.Option(help="expected input tokens")],
    max_output_tokens: Annotated[int, typer.Option(help="maximum output tokens")],
    calls: Annotated[int, typer.Option(help="how many such calls")] = 1,
    tenant: Annotated[str | None, typer.Option(help="tenant id")] = None,
) -> None:
    """Price a planned job; prints the signed quote."""
    planned = {"model": model, "input_tokens": input_tokens, "max_output_tokens": max_output_tokens}
    show(call("POST", "/quotes", json={"tenant_id": tenant, "calls": [planned] * calls}))


# -- locks
@lock_app.command("create")
def lock_create(
    tenant_id: str,
    lock_id: str,
    amount_micro: int,
    timeout: Annotated[int | None, typer.Option(help="seconds")] = None,
    project: Annotated[str | None, typer.Option()] = None,
    key: Annotated[str | None, typer.Option(help="credential id")] = None,
) -> None:
    """Lock a tenant's credits under a lock id, until consumed, refunded or expired."""
    body = {
        "lock_id": lock_id,
        "amount_micro": amount_micro,
        "timeout_seconds": timeout,
        "project_id": project,
        "credential_id": key,
    }
    show(call("POST", f"/tenants/{tenant_id}/locks", json=body))


@lock_app.command("consume")
def lock_consume(tenant_id: str, lock_id: str, amount_micro: int) -> None:
    """Consume up to the locked amount; the rest is refunded."""
    body = {"amount_micro": amount_micro}
    show(call("POST", f"/tenants/{tenant_id}/locks/{lock_id}/consume", json=body))


@lock_app.command("refund")
def lock_refund(tenant_id: str, lock_id: str) -> None:
    """Release all of a lock back to the tenant."""
    show(call("POST", f"/tenants/{tenant_id}/locks/{lock_id}/refund", json={}))
