from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from apicredits.errors import InvalidInput, NotFound, QuoteInvalid, UnknownModel
from apicredits.money import MAX_MICRO
from apicredits.tariffs import (
    PlannedCall,
    Quote,
    QuoteLine,
    QuoteSigner,
    SignedQuote,
    TariffBook,
    Unit,
    build_quote,
    canonical_json,
    default_tariff,
    key_id_of,
    verify_quote,
)

NOW = 1_750_000_000
BOOK = TariffBook([default_tariff()])
SIGNER = QuoteSigner(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = QuoteSigner(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
KEYS = {SIGNER.key_id: SIGNER.public_key}


def quote(**overrides: Any) -> Quote:
    calls = [PlannedCall("sim-gpt", 1000, 500), PlannedCall("sim-claude", 10, 10)]
    arguments: dict[str, Any] = {"now": NOW, "ttl_seconds": 60, "tenant_id": "acme"}
    return build_quote(BOOK, calls, **{**arguments, **overrides})


def test_build_quote() -> None:
    built = quote()
    assert built.quote_id.startswith("q_")
    assert len(built.quote_id) == 34
    assert built.quote_id != quote().quote_id
    assert built.tariff_version == 1
    assert built.lines == (
        QuoteLine("sim-gpt", "sim", 1, 2000),
        QuoteLine("sim-claude", "sim", 1, 188),  # 10 x 3.75 + 10 x 15 = 187.5, rounded up
    )
    assert built.total_micro == 2188
    assert (built.issued_at, built.expires_at, built.tenant_id) == (NOW, NOW + 60, "acme")
    assert quote(quote_id="q_mine", tenant_id=None).quote_id == "q_mine"


def test_build_quote_with_units() -> None:
    call = PlannedCall("sim-embed", 100, 0, {"requests": 0})  # type: ignore[dict-item]
    assert call.units == {Unit.REQUESTS: 0}
    assert build_quote(BOOK, [call], now=NOW, ttl_seconds=1).total_micro == 2


def test_build_quote_accepts_a_thousand_calls_and_no_more() -> None:
    calls = [PlannedCall("sim-gemini", 1, 1)] * 1000
    assert len(build_quote(BOOK, iter(calls), now=NOW, ttl_seconds=1).lines) == 1000
    with pytest.raises(InvalidInput, match="1 to 1000 calls, got 1001"):
        build_quote(BOOK, [*calls, calls[0]], now=NOW, ttl_seconds=1)
    with pytest.raises(InvalidInput, match="1 to 1000 calls, got 0"):
        build_quote(BOOK, [], now=NOW, ttl_seconds=1)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"ttl_seconds": 0}, "ttl_seconds must be between 1"),
        ({"ttl_seconds": True}, "ttl_seconds must be an integer"),
        ({"now": -1}, "now must be between 0"),
        ({"now": 1.5}, "now must be an integer"),
        ({"tenant_id": ""}, "tenant_id must be a non-empty string"),
        ({"quote_id": "x" * 129}, "quote_id is longer than 128"),
    ],
)
def test_build_quote_rejects_arguments(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        quote(**overrides)


def test_build_quote_errors_name_the_call() -> None:
    with pytest.raises(UnknownModel) as unknown:
        build_quote(BOOK, [PlannedCall("gpt-9", 1, 1)], now=NOW, ttl_seconds=1)
    assert unknown.value.details["model"] == "gpt-9"
    calls = [PlannedCall("sim-gpt", 1, 1), PlannedCall("sim-embed", 1, 1)]
    with pytest.raises(InvalidInput, match=r"calls\[1\]: model 'sim-embed' has no price") as info:
        build_quote(BOOK, calls, now=NOW, ttl_seconds=1)
    assert info.value.details["model"] == "sim-embed"
    with pytest.raises(InvalidInput, match=r"calls\[0\] is not a PlannedCall"):
        build_quote(BOOK, [("sim-gpt", 1, 1)], now=NOW, ttl_seconds=1)  # type: ignore[list-item]
    with pytest.raises(NotFound):
        build_quote(TariffBook(), [PlannedCall("sim-gpt", 1, 1)], now=NOW, ttl_seconds=1)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 1, 1), "model must be a non-empty string"),
        (("m", -1, 1), "input_tokens must be non-negative"),
        (("m", 1, 2.0), "max_output_tokens must be a non-negative integer"),
        (("m", 1, 1, {"pixels": 1}), "unknown unit 'pixels'"),
        (("m", 1, 1, {Unit.IMAGES: False}), "units.images must be a non-negative integer"),
        (("m", 1, 1, [1]), "units must be a mapping"),
    ],
)
def test_planned_call_rejects(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        PlannedCall(*args)


def test_quote_checks_its_invariants() -> None:
    line = QuoteLine("m", "p", 1, 10)
    Quote("q", 1, (line,), 10, 5, 6)
    with pytest.raises(InvalidInput, match="sum of the lines"):
        Quote("q", 1, (line,), 11, 5, 6)
    with pytest.raises(InvalidInput, match="expire after"):
        Quote("q", 1, (line,), 10, 5, 5)
    with pytest.raises(InvalidInput, match="quote's tariff version"):
        Quote("q", 2, (line,), 10, 5, 6)
    with pytest.raises(InvalidInput, match="1 to 1000 lines"):
        Quote("q", 1, (), 0, 5, 6)
    with pytest.raises(InvalidInput, match="max_cost_micro"):
        QuoteLine("m", "p", 1, -1)
    with pytest.raises(InvalidInput, match="tariff_version"):
        QuoteLine("m", "p", 0, 1)


def test_documents_round_trip() -> None:
    signed = SIGNER.sign(quote())
    document = json.loads(json.dumps(signed.to_document()))
    assert SignedQuote.from_document(document) == signed
    assert Quote.from_document(document["quote"]) == signed.quote
    assert SignedQuote.from_document(document).to_document() == document


def test_key_id_and_signature_format() -> None:
    raw = SIGNER.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert SIGNER.key_id == hashlib.sha256(raw).hexdigest()[:16] == key_id_of(SIGNER.public_key)
    signed = SIGNER.sign(quote())
    assert len(signed.signature) == 86
    assert "=" not in signed.signature
    signature = base64.urlsafe_b64decode(signed.signature + "==")
    SIGNER.public_key.verify(signature, canonical_json(signed.quote.to_document()))


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_verify() -> None:
    signed = SIGNER.sign(quote())
    assert verify_quote(signed, KEYS, now=NOW) == signed.quote
    assert verify_quote(signed.to_document(), KEYS, now=NOW + 59) == signed.quote


def reason_of(signed: object, now: int = NOW) -> str:
    with pytest.raises(QuoteInvalid) as info:
        verify_quote(signed, KEYS, now=now)  # type: ignore[arg-type]
    assert info.value.status == 400
    return str(info.value.details["reason"])


def test_verify_failures() -> None:
    signed = SIGNER.sign(quote())
    assert reason_of(signed, now=NOW + 60) == "expired"
    assert reason_of(OTHER.sign(signed.quote)) == "unknown_key"
    forged = SignedQuote(signed.quote, SIGNER.key_id, OTHER.sign(signed.quote).signature)
    assert reason_of(forged) == "bad_signature"
    cheaper = copy.deepcopy(signed.to_document())
    cheaper["quote"]["lines"][0]["max_cost_micro"] -= 1
    cheaper["quote"]["total_micro"] -= 1
    assert reason_of(cheaper) == "bad_signature"
    later = copy.deepcopy(signed.to_document())
    later["quote"]["expires_at"] += 3600
    assert reason_of(later, now=NOW + 60) == "bad_signature"  # not "expired": nothing leaks


def test_non_canonical_base64_signature_is_malformed() -> None:
    document = SIGNER.sign(quote()).to_document()
    last = document["signature"][-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last of 86 characters carries 2 bits; its other 4 must be zero.
    twin = alphabet[alphabet.index(last) | 1]
    assert twin != last
    document["signature"] = document["signature"][:-1] + twin
    assert reason_of(document) == "malformed"
    for bad in (document["signature"][:-1], document["signature"] + "==", "+" * 86, 7):
        document["signature"] = bad
        assert reason_of(document) == "malformed"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("key_id"),
        lambda d: d.update(extra=1),
        lambda d: d["quote"].pop("tenant_id"),
        lambda d: d["quote"].update(total_micro=float(d["quote"]["total_micro"])),
        lambda d: d["quote"].update(total_micro=MAX_MICRO + 1),
        lambda d: d["quote"].update(issued_at=True),
        lambda d: d["quote"].update(lines={}),
        lambda d: d["quote"].update(lines=[]),
        lambda d: d["quote"].update(lines=[1]),
        lambda d: d["quote"].update(lines=d["quote"]["lines"] * 501),
        lambda d: d["quote"].update(tenant_id="\ud800"),  # lone surrogate: not encodable
        lambda d: d["quote"]["lines"][0].update(tariff_version=2),
        lambda d: d["quote"]["lines"][0].update(model=None),
        lambda d: d.update(quote=None),
        lambda d: d.update(key_id=""),
    ],
)
def test_malformed_documents(mutate: Any) -> None:
    document = SIGNER.sign(quote()).to_document()
    mutate(document)
    assert reason_of(document) == "malformed"


@pytest.mark.parametrize("garbage", [None, 1, "quote", [], b"{}", {"quote": {}}])
def test_garbage_is_malformed(garbage: object) -> None:
    assert reason_of(garbage) == "malformed"


# --- properties -----------------------------------------------------------------------------

planned_calls = st.lists(
    st.builds(
        PlannedCall,
        st.sampled_from(["sim-gpt", "sim-claude", "sim-gemini", "gpt-4o", "claude-opus-4"]),
        st.integers(0, 10**9),
        st.integers(0, 10**7),
    ),
    min_size=1,
    max_size=20,
)
tenants = st.none() | st.text(min_size=1, max_size=30).filter(lambda t: t == t.strip())
quotes = st.builds(
    lambda calls, now, ttl, tenant: build_quote(
        BOOK, calls, now=now, ttl_seconds=ttl, tenant_id=tenant
    ),
    planned_calls,
    st.integers(0, 2**40),
    st.integers(1, 10**6),
    tenants.filter(lambda t: t is None or not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
)


@given(quotes)
def test_sign_verify_round_trip(built: Quote) -> None:
    signed = SIGNER.sign(built)
    document = json.loads(canonical_json(signed.to_document()))
    assert verify_quote(document, KEYS, now=built.issued_at) == built
    assert verify_quote(signed, KEYS, now=built.expires_at - 1) == built


SIGNED_BYTES = canonical_json(SIGNER.sign(quote(tenant_id='acmé \\ "x"')).to_document())


def check_mutated(mutated: bytes) -> None:
    try:
        document = json.loads(mutated.decode("utf-8"))
    except ValueError:  # no longer JSON (or UTF-8): rejected before verify_quote
        return
    with pytest.raises(QuoteInvalid):
        verify_quote(document, KEYS, now=NOW)


@given(st.integers(0, len(SIGNED_BYTES) - 1), st.integers(0, 255))
def test_any_byte_replacement_is_rejected(position: int, value: int) -> None:
    assume(SIGNED_BYTES[position] != value)
    check_mutated(SIGNED_BYTES[:position] + bytes([value]) + SIGNED_BYTES[position + 1 :])


def test_every_byte_deletion_and_flip_is_rejected() -> None:
    for position in range(len(SIGNED_BYTES)):
        check_mutated(SIGNED_BYTES[:position] + SIGNED_BYTES[position + 1 :])
        for bit in (1, 2, 4, 8, 16, 32, 64, 128):
            flipped = bytes([SIGNED_BYTES[position] ^ bit])
            check_mutated(SIGNED_BYTES[:position] + flipped + SIGNED_BYTES[position + 1 :])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_fuzzed_garbage_raises_quote_invalid_only(garbage: object) -> None:
    with pytest.raises(QuoteInvalid):
        verify_quote(garbage, KEYS, now=NOW)  # type: ignore[arg-type]


def leaves(document: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(document, dict):
        return [p for k, v in document.items() for p in leaves(v, (*path, k))] + [path]
    if isinstance(document, list):
        return [p for i, v in enumerate(document) for p in leaves(v, (*path, i))] + [path]
    return [path]


VALID_DOCUMENT = SIGNER.sign(quote()).to_document()
PATHS = [p for p in leaves(VALID_DOCUMENT) if p]


@given(st.sampled_from(PATHS), json_values)
def test_any_field_replaced_with_garbage_raises_quote_invalid_only(
    path: tuple[Any, ...], garbage: object
) -> None:
    document = copy.deepcopy(VALID_DOCUMENT)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    assume(json.dumps(parent[path[-1]]) != json.dumps(garbage))
    parent[path[-1]] = garbage
    with pytest.raises(QuoteInvalid):
        verify_quote(document, KEYS, now=NOW)
