from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicredits.errors import IdempotencyConflict, InvalidInput, NotFound, UnknownModel
from apicredits.money import MAX_MICRO
from apicredits.tariffs import (
    Rate,
    TariffBook,
    TariffVersion,
    Unit,
    default_tariff,
    parse_tariff_toml,
)

JUNE_2025 = 1_748_736_000  # 2025-06-01T00:00:00Z

SAMPLE = """
version = 1
effective_from = "2025-06-01T00:00:00Z"
source = "OpenAI pricing page, 2025-06"

[models."gpt-4o"]
provider = "openai"
input_tokens = 2_500_000
cached_input_tokens = 1_250_000
output_tokens = 10_000_000
"""


def toml_with(model_body: str, header: str = "version = 1\neffective_from = 0\n") -> str:
    return f'{header}\n[models."m"]\n{model_body}\n'


def tariff(version: int, effective_from: int, *models: str) -> TariffVersion:
    rates = {m: Rate("sim", m, {Unit.INPUT_TOKENS: version}) for m in models or ("m",)}
    return TariffVersion(version, effective_from, rates, f"v{version}")


def test_units_are_the_documented_kinds() -> None:
    assert [str(u) for u in Unit] == [
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "requests",
        "images",
        "seconds",
    ]


def test_parse_sample() -> None:
    parsed = parse_tariff_toml(SAMPLE)
    assert parsed.version == 1
    assert parsed.effective_from == JUNE_2025
    assert parsed.source == "OpenAI pricing page, 2025-06"
    rate = parsed.rate("gpt-4o")
    assert rate.provider == "openai"
    assert dict(rate.prices) == {
        Unit.INPUT_TOKENS: 2_500_000,
        Unit.CACHED_INPUT_TOKENS: 1_250_000,
        Unit.OUTPUT_TOKENS: 10_000_000,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        (str(JUNE_2025), JUNE_2025),
        ('"2025-06-01T00:00:00Z"', JUNE_2025),
        ('"2025-06-01t00:00:00z"', JUNE_2025),
        ('"2025-06-01 02:00:00+02:00"', JUNE_2025),
        ('"2025-06-01T00:00:00.000Z"', JUNE_2025),
        ("2025-06-01T00:00:00Z", JUNE_2025),  # a TOML offset datetime
        ("2025-05-31T20:00:00-04:00", JUNE_2025),
    ],
)
def test_effective_from_forms(value: str, expected: int) -> None:
    text = toml_with('provider = "p"\ninput_tokens = 1', f"version = 1\neffective_from = {value}")
    assert parse_tariff_toml(text).effective_from == expected


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "true",
        "1.5",
        '"yesterday"',
        '"2025-06-01"',
        '"2025-06-01T00:00:00"',  # no offset
        '"2025-13-01T00:00:00Z"',
        '"2025-06-01T00:00:00.5Z"',  # not whole seconds
        '"1969-12-31T23:59:59Z"',
        "2025-06-01T00:00:00",  # TOML local datetime
        "2025-06-01",  # TOML date
        "[1]",
    ],
)
def test_effective_from_rejected(value: str) -> None:
    text = toml_with('provider = "p"\ninput_tokens = 1', f"version = 1\neffective_from = {value}")
    with pytest.raises(InvalidInput, match="effective_from") as info:
        parse_tariff_toml(text)
    assert info.value.details["field"] == "effective_from"


@pytest.mark.parametrize("price", ["1.5", "true", '"100"', "-1", str(MAX_MICRO + 1), "[1]", "1e6"])
def test_price_rejected_naming_model_and_unit(price: str) -> None:
    with pytest.raises(InvalidInput, match=r"model 'm': output_tokens") as info:
        parse_tariff_toml(toml_with(f'provider = "p"\noutput_tokens = {price}'))
    assert info.value.details["field"] == "model 'm': output_tokens"


def test_zero_price_is_allowed() -> None:
    rate = parse_tariff_toml(toml_with('provider = "p"\ninput_tokens = 0')).rate("m")
    assert rate.price(Unit.INPUT_TOKENS) == 0


def test_unknown_unit_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"model 'm': unknown unit 'input'") as info:
        parse_tariff_toml(toml_with('provider = "p"\ninput = 5'))
    assert info.value.details["field"] == "input"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("input_tokens = 1", r"model 'm': provider must be a non-empty string"),
        ('provider = ""\ninput_tokens = 1', "provider must be a non-empty string"),
        ("provider = 3\ninput_tokens = 1", "provider must be a non-empty string"),
        ('provider = "p"', "model 'm' prices no unit"),
    ],
)
def test_model_table_rejected(body: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_tariff_toml(toml_with(body))


@pytest.mark.parametrize("name", ['""', '" gpt "', '"x' + "y" * 200 + '"'])
def test_model_name_rejected(name: str) -> None:
    text = f'version = 1\neffective_from = 0\n[models.{name}]\nprovider = "p"\ninput_tokens = 1'
    with pytest.raises(InvalidInput, match="model"):
        parse_tariff_toml(text)


def test_model_not_a_table_rejected() -> None:
    with pytest.raises(InvalidInput, match="model 'm' must be a table"):
        parse_tariff_toml("version = 1\neffective_from = 0\nmodels = { m = 3 }")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "effective_from = 0\n[models.m]\nprovider = 'p'\ninput_tokens = 1",
            "'version' is missing",
        ),
        ("version = 1\n[models.m]\nprovider = 'p'\ninput_tokens = 1", "'effective_from' is miss"),
        ("version = 1\neffective_from = 0", "'models' is missing"),
        ("version = 1\neffective_from = 0\nmodels = 3", "models must be a table"),
        ("version = 1\neffective_from = 0\n[models]", "at least one model"),
        ("version = 0\neffective_from = 0\n[models.m]\nprovider='p'\ninput_tokens=1", "positive"),
        ("version = true\neffective_from = 0\n[models.m]\nprovider='p'\ninput_tokens=1", "version"),
        ("version = '1'\neffective_from = 0\n[models.m]\nprovider='p'\ninput_tokens=1", "version"),
        (
            "version = 1\neffective_from = 0\nsource = 3\n[models.m]\nprovider='p'\ninput_tokens=1",
            "source",
        ),
        (
            "version = 1\neffective_from = 0\nprice = 3\n[models.m]\nprovider='p'\ninput_tokens=1",
            "'price'",
        ),
        ("version = 1\neffective_from = ", "does not parse"),
    ],
)
def test_document_rejected(text: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_tariff_toml(text)


def test_source_too_long_rejected() -> None:
    with pytest.raises(InvalidInput, match="source"):
        TariffVersion(1, 0, {"m": Rate("p", "m", {Unit.INPUT_TOKENS: 1})}, "x" * 2001)


def test_version_argument_overrides_or_supplies_the_files() -> None:
    assert parse_tariff_toml(SAMPLE, version=7).version == 7
    without = SAMPLE.replace("version = 1\n", "")
    assert parse_tariff_toml(without, version=3).version == 3
    with pytest.raises(InvalidInput, match="'version' is missing"):
        parse_tariff_toml(without)


def test_fallbacks() -> None:
    rate = Rate("p", "m", {"input_tokens": 10, "output_tokens": 20})  # type: ignore[dict-item]
    assert rate.price(Unit.CACHED_INPUT_TOKENS) == 10
    assert rate.price(Unit.CACHE_WRITE_TOKENS) == 10
    assert rate.price(Unit.REASONING_TOKENS) == 20
    assert rate.price_or_none(Unit.IMAGES) is None
    for unit in (Unit.REQUESTS, Unit.IMAGES, Unit.SECONDS):
        with pytest.raises(InvalidInput, match=f"model 'm' has no price for {unit}") as info:
            rate.price(unit)
        assert info.value.details == {"model": "m", "unit": str(unit)}


def test_explicit_prices_win_over_fallbacks() -> None:
    rate = Rate("p", "m", {Unit.INPUT_TOKENS: 10, Unit.CACHED_INPUT_TOKENS: 1})
    assert rate.price(Unit.CACHED_INPUT_TOKENS) == 1
    assert rate.price_or_none(Unit.REASONING_TOKENS) is None


def test_rate_is_immutable_and_keys_are_units() -> None:
    rate = Rate("p", "m", {"images": 5})  # type: ignore[dict-item]
    assert list(rate.prices) == [Unit.IMAGES]
    assert type(next(iter(rate.prices))) is Unit
    with pytest.raises(TypeError):
        rate.prices[Unit.IMAGES] = 6  # type: ignore[index]


def test_tariff_version_checks_its_rates() -> None:
    rate = Rate("p", "m", {Unit.INPUT_TOKENS: 1})
    with pytest.raises(InvalidInput, match="Rate of model 'other'"):
        TariffVersion(1, 0, {"other": rate})
    with pytest.raises(InvalidInput, match="Rate of model 'm'"):
        TariffVersion(1, 0, {"m": "rate"})  # type: ignore[dict-item]
    assert TariffVersion(1, "2025-06-01T00:00:00Z", {"m": rate}).effective_from == JUNE_2025  # type: ignore[arg-type]


def test_unknown_model_carries_the_model() -> None:
    with pytest.raises(UnknownModel) as info:
        parse_tariff_toml(SAMPLE).rate("gpt-9")
    assert info.value.details == {"model": "gpt-9", "tariff_version": 1}
    assert info.value.status == 404


def test_document_round_trip() -> None:
    parsed = parse_tariff_toml(SAMPLE)
    document = parsed.to_document()
    assert json.loads(json.dumps(document)) == document
    assert TariffVersion.from_document(document) == parsed
    assert TariffVersion.from_document(document).to_document() == document
    assert document["effective_from"] == JUNE_2025


def test_from_document_accepts_rfc3339_and_rejects_non_objects() -> None:
    document = parse_tariff_toml(SAMPLE).to_document()
    document["effective_from"] = "2025-06-01T00:00:00Z"
    assert TariffVersion.from_document(document).effective_from == JUNE_2025
    with pytest.raises(InvalidInput, match="must be an object"):
        TariffVersion.from_document([document])


names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Z", "C")), min_size=1, max_size=20
)
prices = st.dictionaries(st.sampled_from(Unit), st.integers(0, MAX_MICRO), min_size=1)
rates = st.builds(lambda p, m, pr: Rate(p, m, pr), names, names, prices)
tariffs = st.builds(
    lambda v, e, rs, s: TariffVersion(v, e, {r.model: r for r in rs}, s),
    st.integers(1, 2**40),
    st.integers(0, 2**40),
    st.lists(rates, min_size=1, max_size=5, unique_by=lambda r: r.model),
    st.text(max_size=50),
)


@given(tariffs)
def test_any_tariff_round_trips_through_json(version: TariffVersion) -> None:
    document: dict[str, Any] = json.loads(json.dumps(version.to_document()))
    assert TariffVersion.from_document(document) == version


def test_book_add_is_idempotent_and_conflicts_on_different_content() -> None:
    book = TariffBook([tariff(1, 0)])
    assert book.add(tariff(1, 0)) == tariff(1, 0)
    with pytest.raises(IdempotencyConflict) as info:
        book.add(tariff(1, 5))
    assert info.value.details == {"tariff_version": 1}
    assert book.versions() == (tariff(1, 0),)


def test_book_current_and_versions() -> None:
    book = TariffBook([tariff(3, 200), tariff(1, 0), tariff(2, 100), tariff(4, 100)])
    assert [t.version for t in book.versions()] == [1, 2, 3, 4]
    assert book.current(0).version == 1
    assert book.current(99).version == 1
    assert book.current(100).version == 4  # same effective_from: highest number wins
    assert book.current(199).version == 4
    assert book.current(10**12).version == 3
    assert book.version(2) == tariff(2, 100)


def test_book_errors() -> None:
    book = TariffBook([tariff(1, 100, "a")])
    with pytest.raises(NotFound, match="no tariff version is in effect at 99"):
        book.current(99)
    with pytest.raises(NotFound, match="no tariff version 2"):
        book.version(2)
    with pytest.raises(NotFound):
        TariffBook().current(0)
    version, rate = book.rate("a", 100)
    assert (version.version, rate.model) == (1, "a")
    with pytest.raises(UnknownModel) as info:
        book.rate("b", 100)
    assert info.value.details["model"] == "b"


def test_default_tariff() -> None:
    default = default_tariff()
    assert default.effective_from == 0
    sim = {
        name: dict(rate.prices) for name, rate in default.rates.items() if rate.provider == "sim"
    }
    assert sim == {
        "sim-gpt": {
            Unit.INPUT_TOKENS: 1_000_000,
            Unit.CACHED_INPUT_TOKENS: 500_000,
            Unit.OUTPUT_TOKENS: 2_000_000,
            Unit.REASONING_TOKENS: 2_000_000,
        },
        "sim-claude": {
            Unit.INPUT_TOKENS: 3_000_000,
            Unit.CACHE_WRITE_TOKENS: 3_750_000,
            Unit.CACHED_INPUT_TOKENS: 300_000,
            Unit.OUTPUT_TOKENS: 15_000_000,
        },
        "sim-gemini": {Unit.INPUT_TOKENS: 1_250_000, Unit.OUTPUT_TOKENS: 5_000_000},
        "sim-embed": {Unit.INPUT_TOKENS: 20_000},
    }
    real = [rate for rate in default.rates.values() if rate.provider != "sim"]
    assert len(real) >= 12
    assert {rate.provider for rate in real} == {"openai", "anthropic", "google"}
    assert default.rate("gpt-4o").price(Unit.INPUT_TOKENS) == 2_500_000
    assert "2025" in default.source
    assert TariffVersion.from_document(default.to_document()) == default
