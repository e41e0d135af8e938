"""Provider-signed usage events (``POST /v1/usage/emit``): checks, then replacement of the
gateway's own event for the same call.

A provider that meters itself signs, for each call the gateway sent it, the event the
gateway would sign, with ``meter = provider``. An event is accepted when, in this order:

1. it parses (``SignedUsageEvent.from_document``, strict) and says ``meter = provider``;
2. the gateway metered a call with this event id (``keccak256(request id)``) — the provider
   emits after the call; a brand-new id is ``unknown_job`` (retry once the gateway has
   charged the call);
3. if the call already has a provider-signed event: the same document again is an
   idempotent success (``unchanged``), a different one ``event_conflict`` (409); a call whose
   event was sealed into an epoch cannot change (``event_sealed``, 409);
4. the signature recovers to the provider's registered signer (``bad_signature`` 401 when it
   does not or cannot; ``unknown_signer`` 403 when the provider has none);
5. its job is the call's job or lock (``unknown_job`` 422);
6. its cost is exactly its tariff version applied to its units (``cost_mismatch`` 422);
7. it says what the gateway charged: same tenant, provider, model, tariff version, units,
   cost and request hash (``usage_mismatch`` 422 naming the field). The provider co-signs the
   charge; a disagreement is an alert for a human, never a silent re-price.

Then it replaces the gateway-signed event in place (same ``seq``); nothing is written for a
rejected event.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from apicredits.db.schema import usage_records
from apicredits.errors import ApicreditsError, Conflict, InvalidInput
from apicredits.metering.events import Meter, SignedUsageEvent, UsageDomain, recover_signer
from apicredits.metering.store import StoredEvent, UsageEventStore, canonical_document, hex32
from apicredits.oracle.messages import job_id, provider_id
from apicredits.tariffs import TariffBook, cost_micro
from apicredits.tariffs.units import parse_unit

__all__ = [
    "BadSignature",
    "CostMismatch",
    "EmitResult",
    "EventConflict",
    "EventSealed",
    "UnknownJob",
    "UnknownSigner",
    "UsageEmitter",
    "UsageMismatch",
]

SignerLookup = Callable[[str], Awaitable["str | None"]]  # provider name -> signer address


class BadSignature(ApicreditsError):
    code = "bad_signature"
    status = 401


class UnknownSigner(ApicreditsError):
    code = "unknown_signer"
    status = 403


class UnknownJob(ApicreditsError):
    code = "unknown_job"
    status = 422


class CostMismatch(ApicreditsError):
    code = "cost_mismatch"
    status = 422


class UsageMismatch(ApicreditsError):
    code = "usage_mismatch"
    status = 422


class EventConflict(Conflict):
    code = "event_conflict"


class EventSealed(Conflict):
    code = "event_sealed"


@dataclass(frozen=True, slots=True)
class EmitResult:
    event_id: str
    status: str  # replaced | unchanged
    digest: str

    def to_document(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "status": self.status, "digest": self.digest}


class UsageEmitter:
    def __init__(
        self,
        store: UsageEventStore,
        domain: UsageDomain,
        signers: SignerLookup,
        tariffs: Callable[[], Awaitable[TariffBook]],
        catch_up: Callable[[], Awaitable[int]],
    ) -> None:
        self.store = store
        self.domain = domain
        self.signers = signers
        self.tariffs = tariffs
        self.catch_up = catch_up  # the producer's step: events of records not yet signed

    async def emit(self, document: Any) -> EmitResult:
        """Check one signed event document and record it; raises the reason otherwise."""
        signed = SignedUsageEvent.from_document(document)
        event = signed.event
        if event.meter is not Meter.PROVIDER:
            raise InvalidInput('an emitted event must say meter "provider"', field="meter")
        eid = hex32(event.event_id)
        stored = await self.store.get(eid)
        if stored is None:
            await self.catch_up()
            stored = await self.store.get(eid)
        if stored is None:
            raise UnknownJob(
                f"no call metered by this gateway has event id {eid} (yet)", event_id=eid
            )
        digest = event.digest(self.domain)
        for _ in range(3):  # the row may be sealed or replaced while we check
            early = _settled(stored, signed, eid)
            if early is not None:
                return early
            signer = await self._check(signed, stored)
            if await self.store.replace_gateway_event(eid, signed, digest, signer):
                return EmitResult(eid, "replaced", hex32(digest))
            again = await self.store.get(eid)
            assert again is not None  # rows are never deleted
            stored = again
        raise Conflict(f"usage event {eid} kept changing; retry", event_id=eid)

    async def _check(self, signed: SignedUsageEvent, stored: StoredEvent) -> str:
        event = signed.event
        record = await self.store.db.read(
            lambda c: c.execute(
                select(usage_records).where(usage_records.c.id == stored.request_id)
            ).first()
        )
        if record is None:
            raise UnknownJob(f"event {stored.event_id} has no usage record")
        try:
            recovered = recover_signer(signed, self.domain)
        except InvalidInput as exc:
            raise BadSignature(exc.message) from None
        registered = await self.signers(record.provider)
        if registered is None:
            raise UnknownSigner(
                f"provider {record.provider} has no registered usage signer",
                provider=record.provider,
            )
        if recovered.lower() != registered.lower():
            raise BadSignature(
                f"the event is not signed by {record.provider}'s registered signer",
                recovered=recovered,
                expected=registered,
            )
        if event.job_id not in {job_id(x) for x in (record.job_id, record.lock_id) if x}:
            raise UnknownJob(
                "the event's job is not the call's job or lock", event_id=stored.event_id
            )
        expected = await self._priced(signed)
        if expected != event.cost_micro:
            raise CostMismatch(
                f"cost {event.cost_micro} disagrees with tariff version "
                f"{event.tariff_version} ({expected})",
                cost_micro=event.cost_micro,
                expected_micro=expected,
            )
        gateway = stored.signed().event if stored.meter == "gateway" else None
        units = {u.kind: u.count for u in event.units if u.count}
        recorded_units = {k: int(n) for k, n in json.loads(record.units).items() if n}
        checks: list[tuple[str, object, object]] = [
            ("provider_id", event.provider_id, provider_id(record.provider)),
            ("model", event.model, record.model),
            ("tariff_version", event.tariff_version, record.tariff_version),
            ("units", units, recorded_units),
            ("cost_micro", event.cost_micro, record.cost_micro),
            ("request_hash", event.request_hash.hex(), record.request_hash),
        ]
        if gateway is not None:
            checks.append(("tenant", event.tenant, gateway.tenant))
        for name, got, want in checks:
            if got != want:
                raise UsageMismatch(
                    f"{name} disagrees with what the gateway metered for this call", field=name
                )
        return recovered

    async def _priced(self, signed: SignedUsageEvent) -> int:
        event = signed.event
        try:
            rate = (await self.tariffs()).version(event.tariff_version).rate(event.model)
            usage = {parse_unit(u.kind, where="units"): u.count for u in event.units}
            return cost_micro(rate, usage)
        except ApicreditsError as exc:
            raise CostMismatch(f"cannot price the event: {exc.message}") from None


def _settled(stored: StoredEvent, signed: SignedUsageEvent, eid: str) -> EmitResult | None:
    """The outcome when the call's event is already final (replayed, conflicting, sealed)."""
    if stored.meter == "provider":
        if stored.document == canonical_document(signed):
            return EmitResult(eid, "unchanged", stored.digest)
        raise EventConflict(
            f"usage event {eid} was already emitted with different content", event_id=eid
        )
    if stored.sealed:
        raise EventSealed(
            f"usage event {eid} is already sealed into epoch {stored.epoch}",
            event_id=eid,
            epoch=stored.epoch,
        )
    return None
