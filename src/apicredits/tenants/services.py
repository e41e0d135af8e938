"""Services: consumer credentials that hold a private key instead of a shared secret.

A tenant registers a service's public keys (JWKs); the server stores no consumer secret.
A service is a ``credentials`` row of kind ``service`` (so budgets, rate limits and usage
records treat it like any credential) plus its keys in ``service_keys``, named by their
RFC 7638 thumbprint. Each capability token issued to it may carry its own spend cap: a budget
of scope ``token`` written when the token is issued.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from apicredits.auth.assertions import jwk_thumbprint, parse_client_jwk
from apicredits.db.schema import budgets, credentials, service_keys
from apicredits.errors import Conflict, InvalidInput, NotFound
from apicredits.money import require_micro
from apicredits.tenants.directory import Directory
from apicredits.tenants.keys import new_id
from apicredits.tenants.model import Credential, normalized_scopes

SERVICE = "service"
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y")


def public_jwk(jwk: object) -> tuple[str, dict[str, str]]:
    """``(kid, jwk)``: the key's thumbprint and its public members only."""
    parse_client_jwk(jwk)
    assert isinstance(jwk, dict)
    return jwk_thumbprint(jwk), {m: jwk[m] for m in _PUBLIC_MEMBERS if m in jwk}


class Services:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.db = directory.db

    async def create(
        self,
        tenant_id: str,
        jwk: object,
        *,
        project_id: str | None = None,
        name: str = "",
        scopes: Iterable[str] = (),
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_concurrent: int | None = None,
        token_spend_cap_micro: int | None = None,
    ) -> tuple[Credential, str]:
        """Register a service and its first public key; returns it and the key's ``kid``."""
        await self.directory.tenant(tenant_id)
        if project_id is not None:
            project = await self.directory.project(project_id)
            if project.tenant_id != tenant_id:
                raise InvalidInput(f"project {project_id} belongs to another tenant")
        if token_spend_cap_micro is not None:
            require_micro(token_spend_cap_micro)
        kid, key = public_jwk(jwk)
        cred = Credential(
            new_id("svc"), tenant_id, project_id, SERVICE, kid[:11], name,
            self.directory._now(), requests_per_minute, tokens_per_minute, max_concurrent,
            None, normalized_scopes(scopes), token_spend_cap_micro,
        )  # fmt: skip
        row = {
            "id": cred.id, "tenant_id": tenant_id, "project_id": project_id, "kind": SERVICE,
            "secret_hash": None, "prefix": cred.prefix, "name": name,
            "requests_per_minute": requests_per_minute, "tokens_per_minute": tokens_per_minute,
            "max_concurrent": max_concurrent, "created_at_us": cred.created_at_us,
            "scopes": " ".join(cred.scopes), "token_spend_cap_micro": token_spend_cap_micro,
        }  # fmt: skip
        key_row = self._key_row(kid, key, cred.id)

        def work(c: Any) -> None:
            if c.execute(select(service_keys.c.kid).where(service_keys.c.kid == kid)).first():
                raise Conflict("this public key is already registered", kid=kid)
            c.execute(credentials.insert(), row)
            c.execute(service_keys.insert(), key_row)

        await self.db.write(work)
        return cred, kid

    def _key_row(self, kid: str, jwk: dict[str, str], credential_id: str) -> dict[str, Any]:
        return {
            "kid": kid,
            "credential_id": credential_id,
            "jwk": json.dumps(jwk, sort_keys=True),
            "created_at_us": self.directory._now(),
        }

    async def service(self, client_id: str) -> Credential:
        cred = await self.directory.credential(client_id)
        if cred.kind != SERVICE:
            raise NotFound(f"service {client_id} does not exist", client_id=client_id)
        return cred

    async def add_key(self, client_id: str, jwk: object) -> str:
        """Register another key (client key rotation); returns its ``kid``."""
        await self.service(client_id)
        kid, key = public_jwk(jwk)
        row = self._key_row(kid, key, client_id)

        def work(c: Any) -> None:
            if c.execute(select(service_keys.c.kid).where(service_keys.c.kid == kid)).first():
                raise Conflict("this public key is already registered", kid=kid)
            c.execute(service_keys.insert(), row)

        await self.db.write(work)
        return kid

    async def revoke_key(self, client_id: str, kid: str) -> None:
        stmt = (
            update(service_keys)
            .where(
                service_keys.c.kid == kid,
                service_keys.c.credential_id == client_id,
                service_keys.c.revoked_at_us.is_(None),
            )
            .values(revoked_at_us=self.directory._now())
        )
        if await self.db.write(lambda c: c.execute(stmt).rowcount) == 0:
            raise NotFound(f"service {client_id} has no active key {kid}", kid=kid)

    async def keys(self, client_id: str) -> dict[str, dict[str, Any]]:
        """The service's active keys, kid -> JWK."""
        stmt = select(service_keys.c.kid, service_keys.c.jwk).where(
            service_keys.c.credential_id == client_id, service_keys.c.revoked_at_us.is_(None)
        )
        rows = await self.db.read(lambda c: c.execute(stmt).all())
        return {r.kid: json.loads(r.jwk) for r in rows}

    async def open_token_budget(self, tenant_id: str, jti: str, cap_micro: int) -> None:
        """The spend cap of one capability token, for its whole life."""
        row = {
            "id": new_id("bud"), "tenant_id": tenant_id, "scope": "token", "scope_id": jti,
            "period": "none", "cap_micro": cap_micro, "created_at_us": self.directory._now(),
        }  # fmt: skip
        await self.db.write(lambda c: c.execute(budgets.insert(), row))
