"""The provider side: usage contexts round-trip, and a signer prices and signs what the
provider served exactly as the gateway's checks expect."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from usage_support import DOMAIN

from apicredits.errors import InvalidInput
from apicredits.metering.events import Meter, SignedUsageEvent, recover_signer
from apicredits.metering.signer import ProviderUsageSigner, UsageContext
from apicredits.oracle.messages import event_id, job_id, provider_id
from apicredits.tariffs import Unit

KEY = "0x" + "66" * 32
CONTEXT = UsageContext(
    event_id=event_id("req_1"),
    job_id=job_id("job_1"),
    tenant=Account.from_key(KEY).address,
    provider_id=provider_id("sim"),
    request_hash=bytes(range(32)),
    model="sim-gpt",
    tariff_version=1,
    route="openai.chat",
    domain=DOMAIN,
)


def test_a_context_round_trips_through_its_header() -> None:
    header = CONTEXT.header()
    assert header.isascii()
    assert "=" not in header
    assert UsageContext.parse(header) == CONTEXT


@pytest.mark.parametrize("header", ["", "!!", "bnVsbA", "e30"])  # "", junk, null, {}
def test_bad_context_headers_are_invalid_input(header: str) -> None:
    with pytest.raises(InvalidInput):
        UsageContext.parse(header)


def test_a_signer_prices_and_signs_with_the_tariff() -> None:
    signer = ProviderUsageSigner(KEY, None)
    units = {Unit.INPUT_TOKENS: 1000, Unit.OUTPUT_TOKENS: 1000}
    first = SignedUsageEvent.from_document(signer.sign(CONTEXT, units))
    second = SignedUsageEvent.from_document(signer.sign(CONTEXT, units))
    assert first.event.meter is Meter.PROVIDER
    assert first.event.cost_micro == 3_000  # 1000 x 1 + 1000 x 2 micro per thousand
    assert (first.event.sequence, second.event.sequence) == (1, 2)
    assert recover_signer(first, DOMAIN) == signer.address
    assert json.dumps(signer.sign(CONTEXT, units))  # a JSON document
