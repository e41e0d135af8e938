"""Signed usage events: EIP-712 digests (against eth-account's own encoder), signatures,
and strict parsing of the documents ``POST /v1/usage/emit`` receives."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.errors import InvalidInput
from apicredits.metering.events import (
    EIP712_TYPES,
    MAX_UNITS,
    Meter,
    SignedUsageEvent,
    UsageDomain,
    UsageEvent,
    UsageUnit,
    recover_signer,
    sign,
)
from apicredits.oracle.messages import event_id, job_id, provider_id

PINNED_DIGEST = "3dd70ccd4e47e96e5faed04f001d8486bfeff5c1f770cf927b2e312dd611f1bc"
SIGNER = Account.from_key(b"\x01" * 32)
DOMAIN = UsageDomain(1337, "0x" + "ab" * 20)
EVENT = UsageEvent(
    event_id=event_id("req-1"),
    job_id=job_id("job-1"),
    tenant="0x" + "12" * 20,
    provider_id=provider_id("openai"),
    model="gpt-4o",
    units=(UsageUnit("input_tokens", 10), UsageUnit("output_tokens", 5)),
    tariff_version=3,
    cost_micro=1234,
    timestamp=1_700_000_000,
    request_hash=b"\x07" * 32,
    sequence=9,
    meter=Meter.PROVIDER,
)


def test_digest_matches_eth_account_typed_data() -> None:
    for event in (EVENT, replace(EVENT, units=(), meter=Meter.GATEWAY, model="m" * 256)):
        signable = encode_typed_data(
            domain_data=DOMAIN.eip712(), message_types=EIP712_TYPES, message_data=event.eip712()
        )
        assert event.digest(DOMAIN) == _hash_eip191_message(signable)


def test_digest_is_pinned() -> None:
    assert EVENT.digest(DOMAIN).hex() == PINNED_DIGEST


def test_sign_then_recover() -> None:
    signed = sign(EVENT, DOMAIN, SIGNER.key)
    assert len(signed.signature) == 65
    assert signed.signature[64] in (27, 28)
    assert recover_signer(signed, DOMAIN) == SIGNER.address


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": event_id("req-2")},
        {"job_id": job_id("job-2")},
        {"tenant": "0x" + "13" * 20},
        {"provider_id": provider_id("anthropic")},
        {"model": "gpt-4o-mini"},
        {"units": (UsageUnit("input_tokens", 11), UsageUnit("output_tokens", 5))},
        {"units": (UsageUnit("output_tokens", 5), UsageUnit("input_tokens", 10))},
        {"tariff_version": 4},
        {"cost_micro": 1235},
        {"timestamp": 1_700_000_001},
        {"request_hash": b"\x08" * 32},
        {"sequence": 10},
        {"meter": Meter.GATEWAY},
    ],
)
def test_a_tampered_field_recovers_another_signer(changes: dict[str, Any]) -> None:
    signed = sign(EVENT, DOMAIN, SIGNER.key)
    tampered = SignedUsageEvent(replace(EVENT, **changes), signed.signature)
    assert recover_signer(tampered, DOMAIN) != SIGNER.address


def test_another_domain_recovers_another_signer() -> None:
    signed = sign(EVENT, DOMAIN, SIGNER.key)
    assert recover_signer(signed, UsageDomain(1, DOMAIN.verifying_contract)) != SIGNER.address
    assert recover_signer(signed, UsageDomain(1337, "0x" + "ac" * 20)) != SIGNER.address


def test_an_invalid_signature_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        recover_signer(SignedUsageEvent(EVENT, bytes(64) + b"\x1b"), DOMAIN)
    with pytest.raises(InvalidInput):
        SignedUsageEvent(EVENT, bytes(64) + b"\x00")
    with pytest.raises(InvalidInput):
        SignedUsageEvent(EVENT, bytes(64))


def test_documents_round_trip() -> None:
    document = EVENT.to_document()
    assert document["meter"] == "provider"
    assert document["event_id"] == "0x" + EVENT.event_id.hex()
    assert UsageEvent.from_document(document) == EVENT
    signed = sign(EVENT, DOMAIN, SIGNER.key)
    assert SignedUsageEvent.from_document(signed.to_document()) == signed


def test_addresses_are_checksummed_and_checked() -> None:
    document = EVENT.to_document()
    assert document["tenant"] == "0x1212121212121212121212121212121212121212"
    for tenant in (
        "0x" + "ab" * 20,
        "0x" + "AB" * 20,
        "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB",
    ):
        parsed = UsageEvent.from_document(document | {"tenant": tenant})
        assert parsed.tenant == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    with pytest.raises(InvalidInput):
        UsageEvent.from_document(document | {"tenant": "0x" + "aB" * 20})


BAD_FIELDS: list[tuple[str, Any]] = [
    ("event_id", "0x" + "00" * 31),
    ("event_id", "00" * 32),
    ("event_id", "0x" + "zz" * 32),
    ("event_id", "0x" + " 0" * 32),
    ("event_id", 5),
    ("job_id", None),
    ("tenant", "0x1234"),
    ("tenant", b"\x12" * 20),
    ("provider_id", ["0x" + "00" * 32]),
    ("model", ""),
    ("model", "m" * 257),
    ("model", 4),
    ("units", {"input_tokens": 1}),
    ("units", [{"kind": "a", "count": 1}] * 2),
    ("units", [{"kind": f"k{i}", "count": 1} for i in range(MAX_UNITS + 1)]),
    ("units", [{"kind": "a", "count": -1}]),
    ("units", [{"kind": "a", "count": "1"}]),
    ("units", [{"kind": "a", "count": 1, "extra": 2}]),
    ("units", [{"kind": "", "count": 1}]),
    ("units", ["a"]),
    ("tariff_version", 2**32),
    ("tariff_version", True),
    ("cost_micro", 1.0),
    ("cost_micro", -1),
    ("cost_micro", 2**256),
    ("timestamp", "1700000000"),
    ("sequence", 2**64),
    ("meter", 0),
    ("meter", "Provider"),
    ("meter", ["provider"]),
]


@pytest.mark.parametrize(("name", "value"), BAD_FIELDS)
def test_malformed_fields_are_invalid_input(name: str, value: Any) -> None:
    document = EVENT.to_document() | {name: value}
    with pytest.raises(InvalidInput) as caught:
        UsageEvent.from_document(document)
    assert caught.value.details["field"].startswith(name.split("_")[0])


def test_missing_and_unknown_keys_are_invalid_input() -> None:
    document = EVENT.to_document()
    del document["model"]
    with pytest.raises(InvalidInput, match="missing"):
        UsageEvent.from_document(document)
    with pytest.raises(InvalidInput, match="unknown"):
        UsageEvent.from_document(EVENT.to_document() | {"provider": "openai"})
    for junk in (None, [], "event", 5):
        with pytest.raises(InvalidInput):
            UsageEvent.from_document(junk)
        with pytest.raises(InvalidInput):
            SignedUsageEvent.from_document(junk)
    with pytest.raises(InvalidInput):
        SignedUsageEvent.from_document({"event": EVENT.to_document(), "signature": "0x00"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=15), json_values, max_size=14))
def test_random_documents_only_ever_raise_invalid_input(document: dict[str, Any]) -> None:
    for parse in (UsageEvent.from_document, SignedUsageEvent.from_document):
        with contextlib.suppress(InvalidInput):
            parse(document)


@given(st.sampled_from(sorted(EVENT.to_document())), json_values)
@settings(max_examples=200)
def test_mutated_documents_parse_or_raise_invalid_input(name: str, value: Any) -> None:
    document = copy.deepcopy(EVENT.to_document())
    document[name] = value
    try:
        event = UsageEvent.from_document(document)
    except InvalidInput:
        return
    assert UsageEvent.from_document(event.to_document()) == event
