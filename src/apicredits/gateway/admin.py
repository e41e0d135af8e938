"""The control plane: ``/admin/v1``, authenticated by the admin token."""

from __future__ import annotations

import base64
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Depends, Query, Request

from apicredits import json_input
from apicredits.chain.debts import outstanding
from apicredits.errors import InvalidInput, Unauthorized
from apicredits.gateway import schemas
from apicredits.gateway.headers import bearer_token, media_type
from apicredits.gateway.signin import session_tenant
from apicredits.ledger import Transfer
from apicredits.runtime import Runtime
from apicredits.tariffs import PlannedCall, TariffVersion, build_quote
from apicredits.tariffs.units import parse_unit
from apicredits.tenants import BudgetStatus, Credential, Project, Tenant


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def require_admin(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> None:
    """The operator's admin token opens everything; a tenant owner's wallet session (see
    ``signin``) opens that tenant's own routes."""
    presented = bearer_token(request)
    if presented and hmac.compare_digest(presented.encode(), rt.admin_token.encode()):
        request.state.operator = True
        return
    if presented.startswith("eyJ"):
        await session_tenant(rt, presented, request)
        return
    raise Unauthorized(
        "admin token or tenant session required: Authorization: Bearer <APICREDITS_ADMIN_TOKEN>"
    )


RT = Annotated[Runtime, Depends(runtime)]
router = APIRouter(
    prefix="/admin/v1",
    dependencies=[Depends(require_admin)],
    tags=["admin"],
    route_class=schemas.BoundedJsonRoute,
)


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def tenant_doc(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "account_id": t.account_id,
        "settings": t.settings,
        "legacy_keys": bool(t.settings.get("legacy_keys", False)),
        "dpop_required": bool(t.settings.get("dpop_required", True)),
        "owner_address": t.settings.get("owner_address"),
        "created_at": iso(t.created_at_us),
    }


def project_doc(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "tenant_id": p.tenant_id,
        "name": p.name,
        "created_at": iso(p.created_at_us),
    }


def credential_doc(c: Credential) -> dict[str, Any]:
    return {
        "id": c.id,
        "tenant_id": c.tenant_id,
        "project_id": c.project_id,
        "kind": c.kind,
        "prefix": c.prefix,
        "name": c.name,
        "requests_per_minute": c.requests_per_minute,
        "tokens_per_minute": c.tokens_per_minute,
        "max_concurrent": c.max_concurrent,
        "scopes": list(c.scopes),
        "created_at": iso(c.created_at_us),
        "revoked_at": iso(c.revoked_at_us),
    }


def budget_doc(b: BudgetStatus) -> dict[str, Any]:
    return {
        "id": b.id,
        "tenant_id": b.tenant_id,
        "scope": b.scope,
        "scope_id": b.scope_id,
        "period": b.period,
        "cap_micro": b.cap_micro,
        "period_key": b.period_key,
        "used_micro": b.used_micro,
        "remaining_micro": max(0, b.cap_micro - b.used_micro),
    }


def transfer_doc(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "seq": t.seq,
        "kind": str(t.kind),
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount_micro": t.amount,
        "released_micro": t.released,
        "lock_id": t.pending_id,
        "expires_at": iso(t.expires_at_us),
        "created_at": iso(t.created_at_us),
        "memo": t.memo,
    }


def tariff_doc(t: TariffVersion) -> dict[str, Any]:
    return {**t.to_document(), "effective_from_iso": iso(t.effective_from * 1_000_000)}


# -- tenants
@router.post("/tenants", status_code=201)
async def create_tenant(body: schemas.TenantCreate, rt: RT) -> dict[str, Any]:
    settings = dict(body.settings)
    if body.legacy_keys is not None:
        settings["legacy_keys"] = body.legacy_keys
    if body.dpop_required is not None:
        settings["dpop_required"] = body.dpop_required
    if body.owner_address is not None:
        settings["owner_address"] = body.owner_address
    return tenant_doc(await rt.directory.create_tenant(body.name, settings))


@router.get("/tenants")
async def list_tenants(rt: RT, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"tenants": [tenant_doc(t) for t in await rt.directory.tenants(limit=limit)]}


@router.get("/tenants/{tenant_id}")
async def get_tenant(tenant_id: str, rt: RT) -> dict[str, Any]:
    return tenant_doc(await rt.directory.tenant(tenant_id))


@router.patch("/tenants/{tenant_id}")
async def patch_tenant(tenant_id: str, body: schemas.TenantPatch, rt: RT) -> dict[str, Any]:
    changes = dict(body.settings)
    if body.legacy_keys is not None:
        changes["legacy_keys"] = body.legacy_keys
    if body.dpop_required is not None:
        changes["dpop_required"] = body.dpop_required
    if body.owner_address is not None:
        changes["owner_address"] = body.owner_address
    return tenant_doc(await rt.directory.update_tenant_settings(tenant_id, changes))


@router.post("/tenants/{tenant_id}/deposits", status_code=201)
async def deposit(tenant_id: str, body: schemas.DepositCreate, rt: RT) -> dict[str, Any]:
    """Credit a tenant off chain (an admin top-up, marked as such in the ledger)."""
    tenant = await rt.directory.tenant(tenant_id)
    transfer = await rt.ledger.deposit(
        f"deposit:{tenant.id}:{body.idempotency_key}",
        tenant.account_id,
        body.amount_micro,
        memo=json.dumps({"source": "admin", "memo": body.memo}),
    )
    balance = await rt.ledger.balance(tenant.account_id)
    return {"transfer": transfer_doc(transfer), "available_micro": balance.available_micro}


@router.get("/tenants/{tenant_id}/balance")
async def balance(tenant_id: str, rt: RT) -> dict[str, Any]:
    tenant = await rt.directory.tenant(tenant_id)
    b = await rt.ledger.balance(tenant.account_id)
    debts = await rt.db.read(lambda c: outstanding(c, [tenant.id]))
    return {
        "tenant_id": tenant.id,
        "available_micro": b.available_micro,
        "locked_micro": b.locked_micro,
        "spent_micro": b.spent_micro,
        "deposited_micro": b.deposited_micro,
        # owed after a reorg took back a deposit already spent; the next deposits repay it
        "chain_debt_micro": sum(owed for _, owed in debts.get(tenant.id, [])),
    }


@router.get("/tenants/{tenant_id}/ledger")
async def ledger_history(
    tenant_id: str,
    rt: RT,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_seq: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    tenant = await rt.directory.tenant(tenant_id)
    history = await rt.ledger.history(tenant.account_id, limit=limit, after_seq=after_seq)
    return {"tenant_id": tenant.id, "transfers": [transfer_doc(t) for t in history]}


# -- projects, keys, budgets
@router.post("/tenants/{tenant_id}/projects", status_code=201)
async def create_project(tenant_id: str, body: schemas.ProjectCreate, rt: RT) -> dict[str, Any]:
    return project_doc(await rt.directory.create_project(tenant_id, body.name))


@router.get("/tenants/{tenant_id}/projects")
async def list_projects(tenant_id: str, rt: RT) -> dict[str, Any]:
    await rt.directory.tenant(tenant_id)
    return {"projects": [project_doc(p) for p in await rt.directory.projects(tenant_id)]}


@router.post("/keys", status_code=201)
async def create_key(body: schemas.KeyCreate, rt: RT) -> dict[str, Any]:
    """Create an API key. The key is in this response only; it is stored hashed."""
    cred, key = await rt.directory.create_api_key(
        body.tenant_id,
        body.project_id,
        name=body.name,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
        max_concurrent=body.max_concurrent,
        scopes=body.scopes,
    )
    return {**credential_doc(cred), "key": key}


@router.get("/tenants/{tenant_id}/keys")
async def list_keys(tenant_id: str, rt: RT) -> dict[str, Any]:
    await rt.directory.tenant(tenant_id)
    return {"keys": [credential_doc(c) for c in await rt.directory.credentials(tenant_id)]}


@router.delete("/keys/{credential_id}")
async def revoke_key(credential_id: str, rt: RT) -> dict[str, Any]:
    """Revoke an API key or a service; a service's capability tokens are revoked with it."""
    cred = await rt.directory.revoke_credential(credential_id)
    if cred.kind == "service":
        from apicredits.gateway.admin_auth import revoke_everywhere

        await revoke_everywhere(rt, "subject", cred.tenant_id, cred.id, int(time.time()) + 1)
    return credential_doc(cred)


@router.put("/budgets")
async def put_budget(body: schemas.BudgetPut, rt: RT) -> dict[str, Any]:
    status = await rt.directory.set_budget(
        body.tenant_id, body.scope, body.scope_id, body.period, body.cap_micro
    )
    return budget_doc(status)


@router.get("/tenants/{tenant_id}/budgets")
async def list_budgets(tenant_id: str, rt: RT) -> dict[str, Any]:
    await rt.directory.tenant(tenant_id)
    return {"budgets": [budget_doc(b) for b in await rt.directory.budgets(tenant_id)]}


@router.delete("/budgets/{budget_id}", status_code=204)
async def delete_budget(budget_id: str, rt: RT) -> None:
    await rt.directory.delete_budget(budget_id)


# -- locks (the two-phase API over HTTP)
def lock_transfer_id(tenant_id: str, lock_id: str) -> str:
    return f"lock:{tenant_id}:{lock_id}"


@router.post("/tenants/{tenant_id}/locks", status_code=201)
async def create_lock(tenant_id: str, body: schemas.LockCreate, rt: RT) -> dict[str, Any]:
    tenant = await rt.directory.tenant(tenant_id)
    scopes: list[tuple[str, str]] = [("tenant", tenant.id)]
    project_id = body.project_id
    if body.credential_id is not None:
        cred = await rt.directory.credential(body.credential_id)
        if cred.tenant_id != tenant.id:
            raise InvalidInput("credential belongs to another tenant", field="credential_id")
        project_id = project_id or cred.project_id
    if project_id is not None:
        if (await rt.directory.project(project_id)).tenant_id != tenant.id:
            raise InvalidInput("project belongs to another tenant", field="project_id")
        scopes.append(("project", project_id))
    if body.credential_id is not None:
        scopes.append(("credential", body.credential_id))
    transfer = await rt.ledger.lock(
        lock_transfer_id(tenant.id, body.lock_id),
        tenant.account_id,
        body.amount_micro,
        timeout_seconds=body.timeout_seconds or rt.settings.lock_timeout_seconds,
        budget_scopes=tuple(scopes),
        memo=body.memo,
    )
    return transfer_doc(transfer)


async def _own_lock(rt: Runtime, tenant_id: str, lock_id: str) -> str:
    await rt.directory.tenant(tenant_id)
    return lock_transfer_id(tenant_id, lock_id)


@router.post("/tenants/{tenant_id}/locks/{lock_id}/consume")
async def consume_lock(
    tenant_id: str, lock_id: str, body: schemas.ConsumeCreate, rt: RT
) -> dict[str, Any]:
    """Consume up to the locked amount; the remainder is refunded in the same step."""
    tid = await _own_lock(rt, tenant_id, lock_id)
    transfer = await rt.ledger.consume(body.transfer_id or f"{tid}:consume", tid, body.amount_micro)
    return transfer_doc(transfer)


@router.post("/tenants/{tenant_id}/locks/{lock_id}/refund")
async def refund_lock(
    tenant_id: str, lock_id: str, rt: RT, body: schemas.RefundCreate | None = None
) -> dict[str, Any]:
    tid = await _own_lock(rt, tenant_id, lock_id)
    transfer = await rt.ledger.refund((body and body.transfer_id) or f"{tid}:refund", tid)
    return transfer_doc(transfer)


# -- tariffs and quotes
_PRICES = {"type": "integer", "minimum": 0, "description": "micro-credits per million units"}
_TARIFF_BODY = {
    "required": True,
    "content": {
        "application/toml": {
            "schema": {"type": "string"},
            "example": 'effective_from = "2026-01-01T00:00:00Z"\n\n[models."gpt-4o"]\n'
            'provider = "openai"\ninput_tokens = 2_500_000\noutput_tokens = 10_000_000\n',
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["effective_from", "models"],
                "properties": {
                    "version": {"type": "integer", "minimum": 1},
                    "effective_from": {"type": "integer", "description": "Unix seconds"},
                    "source": {"type": "string"},
                    "models": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["provider"],
                            "properties": {"provider": {"type": "string"}},
                            "additionalProperties": _PRICES,
                        },
                    },
                },
            }
        },
    },
}


@router.post("/tariffs", status_code=201, openapi_extra={"requestBody": _TARIFF_BODY})
async def upload_tariff(request: Request, rt: RT) -> dict[str, Any]:
    """Upload a tariff version as TOML (``application/toml``) or JSON."""
    raw = await request.body()
    content_type = media_type(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("tariff must be UTF-8") from None
    if content_type == "application/json":
        try:
            document = json_input.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"malformed JSON: {exc.msg}") from None
        if not isinstance(document, dict):
            raise InvalidInput("a tariff document must be an object")
        tariff = await rt.tariffs.add_document(document)
    elif content_type in ("application/toml", "text/plain", "text/x-toml", ""):
        tariff = await rt.tariffs.add_toml(text)
    else:
        raise InvalidInput("send the tariff as application/toml or application/json")
    return tariff_doc(tariff)


@router.get("/tariffs")
async def list_tariffs(rt: RT) -> dict[str, Any]:
    book = await rt.tariffs.book()
    versions = [
        {
            "version": t.version,
            "effective_from": iso(t.effective_from * 1_000_000),
            "models": len(t.rates),
            "source": t.source,
        }
        for t in book.versions()
    ]
    current = book.current(int(time.time())).version if versions else None
    return {"current_version": current, "versions": versions}


@router.get("/tariffs/{version}")
async def get_tariff(version: int, rt: RT) -> dict[str, Any]:
    return tariff_doc((await rt.tariffs.book()).version(version))


@router.post("/quotes", status_code=201)
async def create_quote(body: schemas.QuoteCreate, rt: RT) -> dict[str, Any]:
    """Price a planned job from the current tariff; the quote is signed (Ed25519) and expires."""
    if body.tenant_id is not None:
        await rt.directory.tenant(body.tenant_id)
    calls = [
        PlannedCall(
            c.model,
            c.input_tokens,
            c.max_output_tokens,
            {parse_unit(u, where=f"calls[{i}].units"): n for u, n in c.units.items()},
        )
        for i, c in enumerate(body.calls)
    ]
    quote = build_quote(
        await rt.tariffs.book(),
        calls,
        now=int(time.time()),
        ttl_seconds=rt.settings.quote_ttl_seconds,
        tenant_id=body.tenant_id,
    )
    return rt.quote_signer.sign(quote).to_document()


@router.get("/quote-keys")
async def quote_keys(rt: RT) -> dict[str, Any]:
    """The public key quotes are signed with (raw Ed25519, base64url)."""
    signer = rt.quote_signer
    raw = signer.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"keys": [{"key_id": signer.key_id, "alg": "Ed25519", "public_key": encoded}]}
