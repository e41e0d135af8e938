from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicredits.errors import InvalidInput
from apicredits.money import MAX_MICRO
from apicredits.tariffs import Rate, Unit, cost_micro, default_tariff, worst_case_micro

DEFAULT = default_tariff()
SIM_GPT = DEFAULT.rate("sim-gpt")
SIM_CLAUDE = DEFAULT.rate("sim-claude")
SIM_EMBED = DEFAULT.rate("sim-embed")
PER_REQUEST = Rate(
    "p", "m", {Unit.INPUT_TOKENS: 1, Unit.OUTPUT_TOKENS: 3, Unit.REQUESTS: 7_000_000}
)
IMAGES = Rate("p", "img", {Unit.IMAGES: 40_000_000_000, Unit.SECONDS: 500})


def test_cost_examples() -> None:
    usage = {Unit.INPUT_TOKENS: 1000, Unit.OUTPUT_TOKENS: 500}
    assert cost_micro(SIM_GPT, usage) == 2000
    assert cost_micro(SIM_GPT, {}) == 0
    assert cost_micro(SIM_EMBED, {Unit.INPUT_TOKENS: 1}) == 1  # 0.02 rounds up
    assert cost_micro(SIM_EMBED, {Unit.INPUT_TOKENS: 50}) == 1
    assert cost_micro(SIM_EMBED, {Unit.INPUT_TOKENS: 51}) == 2
    assert cost_micro(IMAGES, {Unit.IMAGES: 2, Unit.SECONDS: 3}) == 80_001  # $0.04 an image


def test_cost_rounds_once_per_charge_not_per_unit() -> None:
    mini = DEFAULT.rate("gpt-4o-mini")  # 0.15 + 0.60 micro: one micro, not two
    assert cost_micro(mini, {Unit.INPUT_TOKENS: 1, Unit.OUTPUT_TOKENS: 1}) == 1


def test_cost_uses_fallbacks_and_names() -> None:
    usage = {"reasoning_tokens": 10, "cache_write_tokens": 10}
    assert cost_micro(SIM_GPT, usage) == 30  # type: ignore[arg-type]


def test_unpriced_unit_fails_only_when_used() -> None:
    assert cost_micro(SIM_EMBED, {Unit.INPUT_TOKENS: 10, Unit.OUTPUT_TOKENS: 0}) == 1
    with pytest.raises(InvalidInput, match="model 'sim-embed' has no price for output_tokens"):
        cost_micro(SIM_EMBED, {Unit.OUTPUT_TOKENS: 1})
    with pytest.raises(InvalidInput, match="no price for requests"):
        cost_micro(SIM_GPT, {Unit.REQUESTS: 1})


@pytest.mark.parametrize(
    ("usage", "match"),
    [
        ({Unit.INPUT_TOKENS: -1}, "usage.input_tokens must be non-negative"),
        ({Unit.INPUT_TOKENS: 1.0}, "usage.input_tokens must be a non-negative integer"),
        ({Unit.INPUT_TOKENS: True}, "must be a non-negative integer"),
        ({Unit.INPUT_TOKENS: "1"}, "must be a non-negative integer"),
        ({Unit.INPUT_TOKENS: MAX_MICRO + 1}, "too large"),
        ({"tokens": 1}, "usage: unknown unit 'tokens'"),
        ({1: 1}, "unknown unit 1"),
        ([("input_tokens", 1)], "usage must be a mapping"),
    ],
)
def test_cost_rejects_bad_usage(usage: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        cost_micro(SIM_GPT, usage)  # type: ignore[arg-type]


def test_cost_overflow_rejected() -> None:
    rate = Rate("p", "m", {Unit.INPUT_TOKENS: MAX_MICRO})
    with pytest.raises(InvalidInput, match="exceeds"):
        cost_micro(rate, {Unit.INPUT_TOKENS: MAX_MICRO})


def test_worst_case_examples() -> None:
    # prompt tokens at the cache-write price (3.75), the highest of the input family
    assert worst_case_micro(SIM_CLAUDE, 1000, 100) == 3750 + 1500
    assert worst_case_micro(SIM_GPT, 1000, 100) == 1000 + 200
    assert worst_case_micro(SIM_GPT, 0, 0) == 0
    assert worst_case_micro(SIM_EMBED, 51, 0) == 2
    assert worst_case_micro(PER_REQUEST, 1_000_000, 1_000_000) == 1 + 3 + 7
    assert worst_case_micro(PER_REQUEST, 0, 0, {Unit.REQUESTS: 2}) == 21
    assert worst_case_micro(IMAGES, 0, 0, {Unit.IMAGES: 1}) == 40_000
    assert worst_case_micro(IMAGES, 0, 0, {"seconds": 3}) == 1  # type: ignore[dict-item]


def test_worst_case_prices_output_at_the_higher_of_output_and_reasoning() -> None:
    rate = Rate("p", "m", {Unit.OUTPUT_TOKENS: 2_000_000, Unit.REASONING_TOKENS: 5_000_000})
    assert worst_case_micro(rate, 0, 10) == 50


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((SIM_GPT, -1, 0), "input_tokens must be non-negative"),
        ((SIM_GPT, 0, 1.5), "max_output_tokens must be a non-negative integer"),
        ((SIM_GPT, True, 0), "input_tokens must be a non-negative integer"),
        ((SIM_EMBED, 10, 1), "'sim-embed' has no price for output_tokens"),
        ((IMAGES, 1, 0), "'img' has no price for input_tokens"),
        ((SIM_GPT, 1, 1, {Unit.IMAGES: 1}), "no price for images"),
        ((SIM_GPT, 1, 1, {Unit.REQUESTS: 1}), "no price for requests"),
        ((SIM_GPT, 1, 1, {Unit.CACHED_INPUT_TOKENS: 1}), "plan cached_input_tokens through"),
        ((SIM_GPT, 1, 1, {Unit.REASONING_TOKENS: 1}), "plan reasoning_tokens through"),
        ((SIM_GPT, 1, 1, {Unit.IMAGES: -1}), "units.images must be non-negative"),
        ((SIM_GPT, 1, 1, {"pixels": 1}), "unknown unit 'pixels'"),
    ],
)
def test_worst_case_rejects(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        worst_case_micro(*args)  # type: ignore[arg-type]


def test_worst_case_ignores_unpriced_units_planned_as_zero() -> None:
    assert worst_case_micro(SIM_GPT, 1, 0, {Unit.IMAGES: 0, Unit.REQUESTS: 0}) == 1


# --- properties -----------------------------------------------------------------------------

counts = st.integers(0, 10**12)
price_values = st.integers(0, 10**11)
any_rate = st.builds(
    lambda p: Rate("p", "m", p),
    st.dictionaries(st.sampled_from(Unit), price_values, min_size=1),
)
token_rate = st.builds(
    lambda base, extra: Rate("p", "m", {**extra, **base}),
    st.fixed_dictionaries({Unit.INPUT_TOKENS: price_values, Unit.OUTPUT_TOKENS: price_values}),
    st.dictionaries(st.sampled_from(Unit), price_values),
)


def exact_cost(rate: Rate, usage: dict[Unit, int]) -> Fraction:
    return sum((Fraction(n * rate.price(u), 10**6) for u, n in usage.items() if n), Fraction(0))


@st.composite
def priced_usage(draw: st.DrawFn, rate: Rate) -> dict[Unit, int]:
    priced = [u for u in Unit if rate.price_or_none(u) is not None]
    return draw(st.dictionaries(st.sampled_from(priced), counts))


@given(st.data(), any_rate)
def test_charge_is_exact_cost_rounded_up_by_less_than_one_micro(
    data: st.DataObject, rate: Rate
) -> None:
    usage = data.draw(priced_usage(rate))
    charge, exact = cost_micro(rate, usage), exact_cost(rate, usage)
    assert exact <= charge < exact + 1


@given(st.data(), any_rate)
def test_charge_is_monotonic_in_units(data: st.DataObject, rate: Rate) -> None:
    smaller = data.draw(priced_usage(rate))
    larger = {u: n + data.draw(counts) for u, n in smaller.items()}
    assert cost_micro(rate, smaller) <= cost_micro(rate, larger)


def split(data: st.DataObject, total: int, parts: int) -> list[int]:
    """``parts`` non-negative counts summing to at most ``total``."""
    cuts = sorted(data.draw(st.integers(0, total)) for _ in range(parts))
    return [b - a for a, b in pairwise([0, *cuts])]


@given(st.data(), token_rate, counts, counts)
def test_worst_case_bounds_every_usage_within_the_plan(
    data: st.DataObject, rate: Rate, input_tokens: int, max_output: int
) -> None:
    extra_units = [u for u in (Unit.IMAGES, Unit.SECONDS) if rate.price_or_none(u) is not None]
    if rate.price_or_none(Unit.REQUESTS) is not None:
        extra_units.append(Unit.REQUESTS)
    extra = data.draw(st.dictionaries(st.sampled_from(extra_units), counts)) if extra_units else {}
    lock = worst_case_micro(rate, input_tokens, max_output, extra)

    fresh, cached, written = split(data, input_tokens, 3)
    output, reasoning = split(data, max_output, 2)
    usage = {
        Unit.INPUT_TOKENS: fresh,
        Unit.CACHED_INPUT_TOKENS: cached,
        Unit.CACHE_WRITE_TOKENS: written,
        Unit.OUTPUT_TOKENS: output,
        Unit.REASONING_TOKENS: reasoning,
    }
    for unit, planned in extra.items():
        usage[unit] = data.draw(st.integers(0, planned))
    if rate.price_or_none(Unit.REQUESTS) is not None:
        usage[Unit.REQUESTS] = data.draw(st.integers(0, 1 + extra.get(Unit.REQUESTS, 0)))
    assert cost_micro(rate, usage) <= lock


@given(token_rate, counts, counts)
def test_worst_case_is_tight(rate: Rate, input_tokens: int, max_output: int) -> None:
    """The lock is exactly the cost of the dearest usage the plan allows."""
    dearest_in = max(
        rate.price(u)
        for u in (Unit.INPUT_TOKENS, Unit.CACHED_INPUT_TOKENS, Unit.CACHE_WRITE_TOKENS)
    )
    in_unit = next(
        u
        for u in (Unit.INPUT_TOKENS, Unit.CACHED_INPUT_TOKENS, Unit.CACHE_WRITE_TOKENS)
        if rate.price(u) == dearest_in
    )
    out_unit = max((Unit.OUTPUT_TOKENS, Unit.REASONING_TOKENS), key=rate.price)
    usage = {in_unit: input_tokens, out_unit: max_output}
    if rate.price_or_none(Unit.REQUESTS) is not None:
        usage[Unit.REQUESTS] = 1
    assert worst_case_micro(rate, input_tokens, max_output) == cost_micro(rate, usage)
