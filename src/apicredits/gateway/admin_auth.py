"""Control plane for capability access: services and their keys, signing keys, revocations."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends

from apicredits.auth.capabilities import MAX_TTL_SECONDS
from apicredits.errors import InvalidInput
from apicredits.gateway import schemas
from apicredits.gateway.admin import RT, credential_doc, iso, require_admin
from apicredits.runtime import Runtime
from apicredits.tenants import Credential

log = logging.getLogger("apicredits.gateway")

router = APIRouter(
    prefix="/admin/v1",
    dependencies=[Depends(require_admin)],
    tags=["capabilities"],
    route_class=schemas.BoundedJsonRoute,
)


async def revoke_everywhere(rt: Runtime, kind: str, tenant_id: str, value: str, until: int) -> None:
    """Revoke (the database is the record every worker follows), then mirror it on chain
    when a chain is configured; a chain that fails is logged, never undoes the revocation."""
    await rt.authority.revoke(kind, tenant_id, value, until)
    if rt.chain is not None:
        from apicredits.chain.key_publication import publish_revocation

        chain = rt.chain
        try:
            await asyncio.to_thread(
                publish_revocation, chain.chain, chain.deployment, kind, tenant_id, value, until
            )
        except Exception:
            log.exception("mirroring a revocation on chain failed; it holds in the gateway")


def service_doc(cred: Credential, keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        **credential_doc(cred),
        "client_id": cred.id,
        "token_spend_cap_micro": cred.token_spend_cap_micro,
        "keys": [{"kid": kid, "jwk": jwk} for kid, jwk in sorted(keys.items())],
    }


@router.post("/services", status_code=201)
async def create_service(body: schemas.ServiceCreate, rt: RT) -> dict[str, Any]:
    """Register a service by its public key (JWK, Ed25519 or P-256). The service then obtains
    capability tokens at ``POST /v1/capabilities`` with a client assertion signed by that key;
    no secret is stored or shown."""
    cred, _ = await rt.services.create(
        body.tenant_id, body.jwk, project_id=body.project_id, name=body.name,
        scopes=body.scopes, requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute, max_concurrent=body.max_concurrent,
        token_spend_cap_micro=body.token_spend_cap_micro,
    )  # fmt: skip
    return service_doc(cred, await rt.services.keys(cred.id))


@router.post("/tenants/{tenant_id}/services", status_code=201)
async def create_tenant_service(
    tenant_id: str, body: schemas.ServiceCreate, rt: RT
) -> dict[str, Any]:
    """``POST /services`` under the tenant's own path, for tenant owners' sessions."""
    if body.tenant_id != tenant_id:
        raise InvalidInput("tenant_id in the body must be the path's", field="tenant_id")
    return await create_service(body, rt)


@router.get("/services/{client_id}")
async def get_service(client_id: str, rt: RT) -> dict[str, Any]:
    cred = await rt.services.service(client_id)
    return service_doc(cred, await rt.services.keys(client_id))


@router.post("/services/{client_id}/keys", status_code=201)
async def add_service_key(client_id: str, body: schemas.ServiceKeyCreate, rt: RT) -> dict[str, Any]:
    """Add a key (rotate the service's key: add the new one, then delete the old one)."""
    await rt.services.add_key(client_id, body.jwk)
    return await get_service(client_id, rt)


@router.delete("/services/{client_id}/keys/{kid}")
async def delete_service_key(client_id: str, kid: str, rt: RT) -> dict[str, Any]:
    """Stop accepting assertions signed by this key (tokens already issued stay valid: revoke
    the service's tokens too if the key leaked)."""
    await rt.services.revoke_key(client_id, kid)
    return await get_service(client_id, rt)


@router.post("/signing-keys/rotate")
async def rotate_signing_key(rt: RT) -> dict[str, Any]:
    """Start signing with a fresh key. The retired key is still published and still verifies
    for ``signing_key_overlap_seconds``; every worker switches within ``auth_refresh_seconds``."""
    ring = await rt.authority.rotate()
    return {"current_kid": ring.current.kid, **ring.jwks(int(time.time()))}


@router.post("/tenants/{tenant_id}/revocations", status_code=201)
async def revoke_for_tenant(
    tenant_id: str, body: schemas.RevocationCreate, rt: RT
) -> dict[str, Any]:
    """``POST /revocations`` under the tenant's own path, for tenant owners' sessions."""
    if body.tenant_id != tenant_id:
        raise InvalidInput("tenant_id in the body must be the path's", field="tenant_id")
    return await revoke(body, rt)


@router.post("/revocations", status_code=201)
async def revoke(body: schemas.RevocationCreate, rt: RT) -> dict[str, Any]:
    """Revoke tokens: one (``jti``), every token of a service issued until now (``subject``),
    or every token of a tenant issued until now (``tenant``)."""
    now = int(time.time())
    tenant = await rt.directory.tenant(body.tenant_id)
    if body.kind == "jti":
        value, until = body.value or "", now + MAX_TTL_SECONDS + 60  # outlives any token
    elif body.kind == "subject":
        service = await rt.services.service(body.value or "")
        if service.tenant_id != tenant.id:
            raise InvalidInput("this service belongs to another tenant", field="value")
        value, until = service.id, now + 1
    else:
        value, until = "", now + 1
    if body.kind != "tenant" and not value:
        raise InvalidInput("value is required: the jti or the service's client_id", field="value")
    await revoke_everywhere(rt, body.kind, tenant.id, value, until)
    return {"kind": body.kind, "tenant_id": tenant.id, "value": value, "at": iso(now * 1_000_000)}
