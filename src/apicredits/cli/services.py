"""``apicredits admin service|signing-keys|revoke``: capability access from the shell."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from apicredits.cli.admin import app, call, show
from apicredits.cli.client import CliError
from apicredits.sdk import ServiceKey

service_app = typer.Typer(help="Services: credentials that hold a key pair.", no_args_is_help=True)
signing_app = typer.Typer(help="The gateway's token signing keys.", no_args_is_help=True)
app.add_typer(service_app, name="service")
app.add_typer(signing_app, name="signing-keys")


def _public_jwk(jwk: Path | None, generate: Path | None) -> dict[str, Any]:
    """The public JWK to register: read from ``jwk``, or of a key generated into ``generate``."""
    if (jwk is None) == (generate is None):
        raise CliError("give either --jwk FILE (a public JWK) or --generate FILE (new key)")
    if generate is not None:
        if generate.exists():
            raise CliError(f"{generate} exists; not overwriting a private key")
        key = ServiceKey.generate()
        fd = os.open(generate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_pem())
        return key.public_jwk()
    assert jwk is not None
    try:
        doc = json.loads(jwk.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read a JWK from {jwk}: {exc}") from None
    if not isinstance(doc, dict):
        raise CliError(f"{jwk} does not hold a JWK object")
    return doc


@service_app.command("create")
def service_create(
    tenant_id: str,
    jwk: Annotated[Path | None, typer.Option(help="the service's public JWK (JSON file)")] = None,
    generate: Annotated[
        Path | None, typer.Option(help="generate an Ed25519 key, write its PEM here (0600)")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="route:<glob> or model:<glob>, repeatable")
    ] = None,
    project: Annotated[str | None, typer.Option(help="project id")] = None,
    name: str = "",
    rpm: Annotated[int | None, typer.Option(help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute")] = None,
    concurrency: Annotated[int | None, typer.Option(help="concurrent requests")] = None,
    token_cap_micro: Annotated[
        int | None, typer.Option(help="spend cap of each capability token, micro-credits")
    ] = None,
) -> None:
    """Register a service by its public key; it then obtains tokens at /v1/capabilities."""
    body = {
        "tenant_id": tenant_id, "jwk": _public_jwk(jwk, generate), "project_id": project,
        "name": name, "scopes": scope or [], "requests_per_minute": rpm,
        "tokens_per_minute": tpm, "max_concurrent": concurrency,
        "token_spend_cap_micro": token_cap_micro,
    }  # fmt: skip
    show(call("POST", "/services", json=body))


@service_app.command("show")
def service_show(client_id: str) -> None:
    """One service: its credential, scopes and keys."""
    show(call("GET", f"/services/{client_id}"))


@service_app.command("add-key")
def service_add_key(
    client_id: str,
    jwk: Annotated[Path | None, typer.Option(help="the new public JWK (JSON file)")] = None,
    generate: Annotated[Path | None, typer.Option(help="generate a key, PEM here")] = None,
) -> None:
    """Register another key for a service (client key rotation)."""
    show(call("POST", f"/services/{client_id}/keys", json={"jwk": _public_jwk(jwk, generate)}))


@service_app.command("remove-key")
def service_remove_key(client_id: str, kid: str) -> None:
    """Remove one of a service's public keys."""
    show(call("DELETE", f"/services/{client_id}/keys/{kid}"))


@signing_app.command("rotate")
def signing_rotate() -> None:
    """Sign new tokens with a fresh key; the old one verifies until the overlap ends."""
    show(call("POST", "/signing-keys/rotate"))


@app.command("revoke")
def revoke(
    kind: Annotated[str, typer.Argument(help="jti, subject (a service) or tenant")],
    tenant_id: str,
    value: Annotated[str | None, typer.Argument(help="the jti or the service's client id")] = None,
) -> None:
    """Revoke capability tokens: one, every token of a service, or of a tenant."""
    if kind not in ("jti", "subject", "tenant"):
        raise CliError("kind is jti, subject or tenant")
    show(call("POST", "/revocations", json={"kind": kind, "tenant_id": tenant_id, "value": value}))
