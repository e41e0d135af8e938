"""Control plane for on-chain credits: the wallets whose vault deposits fund a tenant."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from apicredits.errors import Forbidden
from apicredits.gateway import schemas
from apicredits.gateway.admin import RT, require_admin
from apicredits.runtime import Runtime

router = APIRouter(
    prefix="/admin/v1",
    dependencies=[Depends(require_admin)],
    tags=["chain"],
    route_class=schemas.BoundedJsonRoute,
)


async def wallet_doc(rt: Runtime, tenant_id: str) -> dict[str, Any]:
    from apicredits.chain.wallets import Wallets

    tenant = await rt.directory.tenant(tenant_id)
    wallets = Wallets(rt.db)
    addresses = await wallets.addresses(tenant.id)
    d = rt.chain.deployment if rt.chain is not None else None
    return {
        "tenant_id": tenant.id,
        "address": addresses[0] if len(addresses) == 1 else None,
        "addresses": addresses,
        "unassigned_micro": await wallets.unassigned_micro(addresses),
        "chain": None
        if d is None
        else {"chain_id": d.chain_id, "vault": d.vault, "stablecoin": d.stablecoin},
    }


@router.put("/tenants/{tenant_id}/wallet")
async def link_wallet(
    tenant_id: str, body: schemas.WalletLink, request: Request, rt: RT
) -> dict[str, Any]:
    """Link a wallet: the vault's deposits for this address (its ``tenant`` argument) credit
    the tenant. Deposits made before the link, recorded as unassigned, are credited on the
    indexer's next pass, once. One tenant per address (409 if another tenant has it); linking
    again is a no-op. A tenant owner's session may link only the owner's own address."""
    from apicredits.chain.wallets import Wallets

    if not getattr(request.state, "operator", False):
        tenant = await rt.directory.tenant(tenant_id)
        if str(tenant.settings.get("owner_address", "")).lower() != body.address.lower():
            raise Forbidden("a tenant owner may link only the address they signed in with")
    await Wallets(rt.db).link(tenant_id, body.address)
    if rt.chain is not None:
        rt.chain.wake()  # credit what was waiting for this link now, not at the next poll
    return await wallet_doc(rt, tenant_id)


@router.get("/tenants/{tenant_id}/wallet")
async def get_wallet(tenant_id: str, rt: RT) -> dict[str, Any]:
    """The tenant's linked wallets, the chain this gateway indexes, and deposits to those
    wallets still waiting to be credited."""
    return await wallet_doc(rt, tenant_id)
