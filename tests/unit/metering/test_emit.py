"""Provider-signed usage events: every rejection records nothing; a valid one replaces the
gateway's event until the event is sealed; replays are idempotent."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import update
from usage_support import DOMAIN, GATEWAY_KEY, WALLET, add_records, add_tenant, record

from apicredits.db import Database
from apicredits.db.schema import usage_events
from apicredits.errors import ApicreditsError, InvalidInput
from apicredits.metering.emit import (
    BadSignature,
    CostMismatch,
    EventConflict,
    EventSealed,
    UnknownJob,
    UnknownSigner,
    UsageEmitter,
    UsageMismatch,
)
from apicredits.metering.events import Meter, UsageEvent, UsageUnit, sign
from apicredits.metering.producer import EventProducer
from apicredits.metering.store import StoredEvent, UsageEventStore, hex32
from apicredits.oracle.messages import event_id, job_id
from apicredits.tariffs import TariffBook, default_tariff

pytestmark = pytest.mark.anyio

PROVIDER_KEY = "0x" + "22" * 32
PROVIDER = Account.from_key(PROVIDER_KEY).address
OTHER_KEY = "0x" + "33" * 32


class Setup:
    def __init__(self, db: Database, signers: dict[str, str]) -> None:
        self.db = db
        self.store = UsageEventStore(db)
        self.producer = EventProducer(db, GATEWAY_KEY, DOMAIN)
        self.signers = signers

        async def signer_of(name: str) -> str | None:
            return self.signers.get(name)

        async def book() -> TariffBook:
            return TariffBook([default_tariff()])

        self.emitter = UsageEmitter(self.store, DOMAIN, signer_of, book, self.producer.step)

    async def stored(self, request_id: str) -> StoredEvent:
        stored = await self.store.get(hex32(event_id(request_id)))
        assert stored is not None
        return stored

    async def provider_event(self, request_id: str, **changes: Any) -> UsageEvent:
        gateway = (await self.stored(request_id)).signed().event
        return replace(gateway, meter=Meter.PROVIDER, sequence=42, **changes)


@pytest.fixture
async def setup(db: Database) -> Setup:
    await add_tenant(db, "t1", WALLET)
    await add_records(db, record("req_a"), record("req_b", job_id="job1"))
    s = Setup(db, {"sim": PROVIDER})
    await s.producer.step()
    return s


def signed_doc(event: UsageEvent, key: str = PROVIDER_KEY) -> dict[str, Any]:
    return sign(event, DOMAIN, key).to_document()


async def assert_unchanged(s: Setup, request_id: str) -> None:
    stored = await s.stored(request_id)
    assert (stored.meter, stored.signer) == ("gateway", GATEWAY_KEY.address)


async def test_a_provider_signed_event_replaces_the_gateways(setup: Setup) -> None:
    before = await setup.stored("req_a")
    event = await setup.provider_event("req_a")
    result = await setup.emitter.emit(signed_doc(event))
    assert (result.event_id, result.status) == (before.event_id, "replaced")
    after = await setup.stored("req_a")
    assert (after.meter, after.signer, after.seq) == ("provider", PROVIDER, before.seq)
    assert after.digest == hex32(event.digest(DOMAIN)) == result.digest
    assert after.signed().event == event

    # the same document again: idempotent
    again = await setup.emitter.emit(signed_doc(event))
    assert again.status == "unchanged"
    # different content for the same id: conflict, nothing changes
    other = replace(event, sequence=43)
    with pytest.raises(EventConflict):
        await setup.emitter.emit(signed_doc(other))
    assert (await setup.stored("req_a")).signed().event == event


async def test_a_job_call_is_emitted_with_its_job_id(setup: Setup) -> None:
    event = await setup.provider_event("req_b")
    assert event.job_id == job_id("job1")
    assert (await setup.emitter.emit(signed_doc(event))).status == "replaced"


async def test_a_sealed_event_cannot_be_replaced(setup: Setup) -> None:
    stored = await setup.stored("req_a")
    stmt = update(usage_events).where(usage_events.c.seq == stored.seq).values(epoch=1)
    await setup.db.write(lambda c: c.execute(stmt))
    with pytest.raises(EventSealed):
        await setup.emitter.emit(signed_doc(await setup.provider_event("req_a")))


async def test_an_event_the_producer_has_not_signed_yet_is_found(setup: Setup) -> None:
    await add_records(setup.db, record("req_new"))
    assert await setup.store.get(hex32(event_id("req_new"))) is None
    event = replace(
        await setup.provider_event("req_a"),
        event_id=event_id("req_new"),
        job_id=job_id("call:t1:req_new"),
    )
    assert (await setup.emitter.emit(signed_doc(event))).status == "replaced"
    assert (await setup.stored("req_new")).meter == "provider"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        ("forged", BadSignature),  # signed by a key that is not the provider's
        ("tampered", BadSignature),  # changed after signing
        ("wrong_cost", CostMismatch),
        ("unknown_job", UnknownJob),
        ("unknown_event", UnknownJob),
        ("units", UsageMismatch),
        ("tenant", UsageMismatch),
        ("gateway_meter", InvalidInput),
    ],
)
async def test_rejections_record_nothing(
    setup: Setup, mutate: str, error: type[ApicreditsError]
) -> None:
    event = await setup.provider_event("req_a")
    doc = signed_doc(event)
    match mutate:
        case "forged":
            doc = signed_doc(event, OTHER_KEY)
        case "tampered":
            doc["event"]["sequence"] = 7
        case "wrong_cost":
            doc = signed_doc(replace(event, cost_micro=event.cost_micro + 1))
        case "unknown_job":
            doc = signed_doc(replace(event, job_id=job_id("someone else's job")))
        case "unknown_event":
            doc = signed_doc(replace(event, event_id=event_id("never called")))
        case "units":  # priced right, but not what the gateway charged
            units = (UsageUnit("input_tokens", 3000),)
            doc = signed_doc(replace(event, units=units))
        case "tenant":
            doc = signed_doc(replace(event, tenant="0x" + "77" * 20))
        case "gateway_meter":
            doc = signed_doc(replace(event, meter=Meter.GATEWAY))
    with pytest.raises(error) as caught:
        await setup.emitter.emit(doc)
    assert caught.value.code == error.code
    await assert_unchanged(setup, "req_a")


async def test_a_provider_without_a_registered_signer_is_refused(db: Database) -> None:
    await add_records(db, record("req_a"))
    s = Setup(db, {})
    await s.producer.step()
    with pytest.raises(UnknownSigner):
        await s.emitter.emit(signed_doc(await s.provider_event("req_a")))
    await assert_unchanged(s, "req_a")


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"event": {}, "signature": "0x00"},
        "not an object",
        {"event": {"event_id": "0x12"}, "signature": "0x" + "00" * 65},
    ],
)
async def test_malformed_documents_are_invalid_input(setup: Setup, document: Any) -> None:
    with pytest.raises(InvalidInput):
        await setup.emitter.emit(copy.deepcopy(document))
