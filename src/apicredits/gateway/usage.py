"""Verifiable usage on the data plane: who signs usage, provider-signed events, and proofs.

GET  /v1/usage/signers (also /.well-known/apicredits.json)   public: the gateway's metering
     address, the EIP-712 domain, each provider's registered usage signer
POST /v1/usage/emit          a provider's signed event, or {"events": [...]}; authenticated by
     the signatures (no token). One event: 200 with its result, or the error. A batch: 200
     with one result per event (each recorded or rejected on its own, in order).
GET  /v1/usage/{event_id}/proof   the tenant's own event (API key or capability token): the
     signed event and digest; once sealed, the epoch, the event's Merkle proof against the
     events root, the on-chain receipt and the tenant's settlement line(s) with their proofs

Every charged response carries ``apicredits-receipt: <event id>`` and
``apicredits-receipt-url`` (``gateway.proxy``): the event id is ``keccak256(request id)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from apicredits.errors import ApicreditsError, InvalidInput, NotFound
from apicredits.gateway.call import Call
from apicredits.gateway.dataplane import json_api, json_object, proxy_of
from apicredits.gateway.errors import domain_error_response
from apicredits.metering.emit import UsageEmitter
from apicredits.metering.events import UsageDomain
from apicredits.metering.producer import (
    ZERO_ADDRESS,
    EventProducer,
    MeteringKey,
    load_or_create_metering_key,
    wallet_addresses,
)
from apicredits.metering.signer import CONTEXT_HEADER, UsageContext
from apicredits.metering.store import REJECTED_EPOCH, EpochTrees, UsageEventStore, hex32
from apicredits.oracle.messages import event_id, job_id, provider_id, usage_event_leaf
from apicredits.runtime import Runtime
from apicredits.tenants import Principal

log = logging.getLogger("apicredits.gateway")

SIGNER_CACHE_SECONDS = 30.0


def usage_domain(rt: Runtime) -> UsageDomain:
    """The chain's UsageReceipts domain; without a chain (or receipts contract), the
    configured chain id (0 if none) and the zero address."""
    if rt.chain is not None:
        try:
            return UsageDomain(rt.chain.deployment.chain_id, rt.chain.deployment.receipts)
        except ApicreditsError:
            log.warning("the chain deployment has no usage_receipts contract")
    return UsageDomain(rt.settings.chain_id or 0, ZERO_ADDRESS)


@dataclass
class ProviderSigners:
    """Each provider's registered usage signer: ProviderRegistry's ``signer_of`` (active
    providers only) when a chain is configured, else ``providers.<name>.usage_signer``."""

    rt: Runtime
    _cache: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    async def signer_of(self, provider: str) -> str | None:
        cached = self._cache.get(provider)
        if cached is not None and time.monotonic() - cached[0] < SIGNER_CACHE_SECONDS:
            return cached[1]
        signer = await self._lookup(provider)
        self._cache[provider] = (time.monotonic(), signer)
        return signer

    async def _lookup(self, provider: str) -> str | None:
        chain = self.rt.chain
        if chain is not None and "provider_registry" in chain.deployment.contracts:
            registry = chain.deployment.address("provider_registry")
            pid = provider_id(provider)

            def read() -> str | None:
                if not chain.chain.call(registry, "provider_registry", "is_active", pid):
                    return None
                address = str(chain.chain.call(registry, "provider_registry", "signer_of", pid))
                return None if int(address, 16) == 0 else address

            return await asyncio.to_thread(read)
        settings = self.rt.settings
        configured = settings.providers.get(provider)
        if configured is not None:
            return configured.usage_signer
        return settings.sim_usage_signer if provider == "sim" else None


@dataclass
class UsageEvents:
    """The gateway's verifiable-usage services (``app.state.usage``)."""

    rt: Runtime
    key: MeteringKey
    domain: UsageDomain
    store: UsageEventStore
    producer: EventProducer
    signers: ProviderSigners
    emitter: UsageEmitter
    trees: EpochTrees
    signing: frozenset[str] = frozenset()  # providers sent the usage context
    _wallets: dict[str, tuple[float, str]] = field(default_factory=dict)

    @classmethod
    async def open(cls, rt: Runtime) -> UsageEvents:
        settings = rt.settings
        key = await asyncio.to_thread(
            load_or_create_metering_key, settings.effective_metering_key_file
        )
        domain = usage_domain(rt)
        store = UsageEventStore(rt.db)
        producer = EventProducer(rt.db, key, domain, batch=settings.usage_producer_batch)
        signers = ProviderSigners(rt)
        emitter = UsageEmitter(store, domain, signers.signer_of, rt.tariffs.book, producer.step)
        signing = {name for name, p in settings.providers.items() if p.signs_usage}
        if settings.sim_signs_usage and "sim" not in settings.providers:
            signing.add("sim")
        trees = EpochTrees(store)
        return cls(rt, key, domain, store, producer, signers, emitter, trees, frozenset(signing))

    async def upstream_headers(self, call: Call) -> dict[str, str]:
        """The usage context for a provider that signs its own usage (else nothing)."""
        provider = call.target.upstream.name
        if provider not in self.signing:
            return {}
        context = UsageContext(
            event_id=event_id(call.request_id),
            job_id=job_id(call.job.id if call.job is not None else call.lock_id),
            tenant=await self.tenant_address(call.principal.tenant_id),
            provider_id=provider_id(provider),
            request_hash=bytes.fromhex(call.request_hash),
            model=call.target.model,
            tariff_version=call.tariff_version,
            route=str(call.route),
            domain=self.domain,
        )
        return {CONTEXT_HEADER: context.header()}

    async def tenant_address(self, tenant_id: str) -> str:
        """The tenant's first linked wallet (as the producer signs it), cached a minute."""
        cached = self._wallets.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < SIGNER_CACHE_SECONDS * 2:
            return cached[1]
        wallets = await self.rt.db.read(lambda c: wallet_addresses(c, [tenant_id]))
        address = wallets.get(tenant_id, ZERO_ADDRESS)
        self._wallets[tenant_id] = (time.monotonic(), address)
        return address


def usage_of(request: Request) -> UsageEvents:
    usage: UsageEvents = request.app.state.usage
    return usage


async def signers(request: Request) -> Response:
    usage = usage_of(request)
    names = proxy_of(request).router.provider_names()
    registered = await asyncio.gather(*(usage.signers.signer_of(n) for n in names))
    document = {
        "gateway_meter": usage.key.address,
        "chain_id": usage.domain.chain_id,
        "receipts": None
        if usage.domain.verifying_contract == ZERO_ADDRESS
        else usage.domain.verifying_contract,
        "domain": usage.domain.eip712(),
        "providers": dict(zip(names, registered, strict=True)),
    }
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})


async def emit(request: Request) -> Response:
    usage = usage_of(request)
    proxy = proxy_of(request)
    try:
        body = await json_object(request)
        if "events" not in body:
            result = await usage.emitter.emit(body)
            response: Response = JSONResponse(result.to_document())
        else:
            events = body["events"]
            limit = usage.rt.settings.usage_emit_max_events
            if set(body) != {"events"} or not isinstance(events, list) or not events:
                raise InvalidInput("events must be a non-empty array", field="events")
            if len(events) > limit:
                raise InvalidInput(f"at most {limit} events per request", field="events")
            results = [await _one(usage.emitter, e) for e in events]
            accepted = sum(1 for r in results if "error" not in r)
            response = JSONResponse(
                {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
            )
    except ApicreditsError as exc:
        response = domain_error_response(exc)
    proxy.metrics.request("usage.emit", response.status_code)
    return response


async def _one(emitter: UsageEmitter, document: Any) -> dict[str, Any]:
    try:
        return (await emitter.emit(document)).to_document()
    except ApicreditsError as exc:
        event_id = None
        if isinstance(document, dict) and isinstance(document.get("event"), dict):
            event_id = document["event"].get("event_id")
        return {"event_id": event_id, "status": "rejected", **exc.to_dict()}


@json_api("usage.proof")
async def proof(request: Request, principal: Principal) -> Any:
    usage = usage_of(request)
    eid = request.path_params["event_id"].lower()
    stored = await usage.store.get(eid)
    if stored is None or stored.tenant_id != principal.tenant_id:
        raise NotFound(f"no usage event {eid}", event_id=eid)
    signed = stored.signed()
    digest = bytes.fromhex(stored.digest[2:])
    document: dict[str, Any] = {
        "event_id": eid,
        "request_id": stored.request_id,
        "state": "pending",
        "meter": stored.meter,
        "signer": stored.signer,
        "signed_event": signed.to_document(),  # {"event", "signature"}
        "digest": stored.digest,
        "leaf": hex32(usage_event_leaf(digest)),
    }
    if stored.epoch is None:
        document["domain"] = usage.domain.eip712()
        return document
    if stored.epoch == REJECTED_EPOCH:
        document["state"] = "rejected"
        return document
    epoch = await usage.store.epoch(stored.epoch)
    if epoch is None:  # being sealed right now
        return document
    trees = await usage.trees.get(stored.epoch)
    assert trees.events is not None
    assert stored.leaf_index is not None
    document.update(
        state=epoch["state"],
        domain=UsageDomain(epoch["chain_id"], epoch["receipts"]).eip712(),
        epoch=_epoch_document(epoch),
        events_root=epoch["events_root"],
        leaf_index=stored.leaf_index,
        proof=[hex32(p) for p in trees.events.proof(stored.leaf_index)],
        receipt={"tx": epoch["submit_tx"], "block": epoch["submit_block"]},
        settlement=[],
    )
    pid = hex32(signed.event.provider_id)
    for line in await usage.store.lines(stored.epoch):
        if line["tenant_address"] != signed.event.tenant or line["provider_id"] != pid:
            continue
        assert trees.lines is not None
        document["settlement"].append(
            {
                "line_index": line["line_index"],
                "tenant_address": line["tenant_address"],
                "provider": line["provider"],
                "provider_id": line["provider_id"],
                "amount_micro": line["amount_micro"],
                "fee_micro": line["fee_micro"],
                "leaf": line["leaf"],
                "lines_root": epoch["lines_root"],
                "proof": [hex32(p) for p in trees.lines.proof(line["line_index"])],
                "executed_tx": line["executed_tx"],
                "executed_block": line["executed_block"],
            }
        )
    return document


def _epoch_document(epoch: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in epoch.items() if k not in ("signers", "excluded")},
        "signers": json.loads(epoch["signers"]),
        "excluded": json.loads(epoch["excluded"]),
    }


def routes() -> list[HttpRoute]:
    return [
        HttpRoute("/v1/usage/signers", signers, methods=["GET"]),
        HttpRoute("/.well-known/apicredits.json", signers, methods=["GET"]),
        HttpRoute("/v1/usage/emit", emit, methods=["POST"]),
        HttpRoute("/v1/usage/{event_id}/proof", proof, methods=["GET"]),
    ]
