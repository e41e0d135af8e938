"""What a call costs, and what to lock before making it. Integers only, one rounding per charge.

``cost_micro(rate, usage)`` is ``ceil(sum(units * price_per_million) / 10**6)``: never below the
exact rational cost, less than one micro-credit above it (``apicredits.money.charge_micro``).
Units counted as zero are ignored, so an unpriced unit only fails when it was actually used.

``worst_case_micro`` is the lock for a planned call: the largest ``cost_micro`` of any usage
*within the plan*, where usage is within the plan when

- ``input_tokens + cached_input_tokens + cache_write_tokens <= planned input_tokens``,
- ``output_tokens + reasoning_tokens <= max_output_tokens``,
- ``requests <= 1 + extra[requests]`` (the call itself is one request), and
- every other unit ``u`` is at most ``extra[u]``.

So each planned prompt token is priced at the highest of the input, cached-input and
cache-write prices (a cache write costs 1.25x input on Anthropic, so plain input price would
under-lock), each output token at the highest of the output and reasoning prices, and the
call's own request only where requests are priced. Because ``ceil`` is monotone and every term
bounds its share of the usage, ``worst_case_micro >= cost_micro`` for every usage in the plan.
"""

from __future__ import annotations

from collections.abc import Mapping

from apicredits.errors import InvalidInput
from apicredits.money import MAX_MICRO, charge_micro
from apicredits.tariffs.ratecard import Rate
from apicredits.tariffs.units import Unit, require_count, require_usage

INPUT_UNITS = (Unit.INPUT_TOKENS, Unit.CACHED_INPUT_TOKENS, Unit.CACHE_WRITE_TOKENS)
OUTPUT_UNITS = (Unit.OUTPUT_TOKENS, Unit.REASONING_TOKENS)


def cost_micro(rate: Rate, usage: Mapping[Unit, int]) -> int:
    """The charge for ``usage`` at ``rate``, rounded up once to a whole micro-credit."""
    total = sum(
        count * rate.price(unit)
        for unit, count in require_usage(usage, where="usage").items()
        if count
    )
    return _charge(rate, total)


def worst_case_micro(
    rate: Rate,
    input_tokens: int,
    max_output_tokens: int,
    extra: Mapping[Unit, int] | None = None,
) -> int:
    """The most a call planned this way can cost (see the module docstring for the bound)."""
    input_tokens = require_count(input_tokens, "input_tokens")
    max_output_tokens = require_count(max_output_tokens, "max_output_tokens")
    units = require_usage({} if extra is None else extra, where="units")
    tokens = sorted(str(unit) for unit in units if unit in INPUT_UNITS + OUTPUT_UNITS)
    if tokens:
        raise InvalidInput(
            f"units: plan {tokens[0]} through input_tokens / max_output_tokens", field=tokens[0]
        )
    total = _highest_price(rate, INPUT_UNITS, input_tokens) + _highest_price(
        rate, OUTPUT_UNITS, max_output_tokens
    )
    extra_requests = units.pop(Unit.REQUESTS, 0)
    request_price = rate.price_or_none(Unit.REQUESTS)
    if request_price is not None:
        total += (1 + extra_requests) * request_price
    elif extra_requests:
        rate.price(Unit.REQUESTS)  # raises: extra requests were planned but are not priced
    total += sum(count * rate.price(unit) for unit, count in units.items() if count)
    return _charge(rate, total)


def _highest_price(rate: Rate, units: tuple[Unit, ...], count: int) -> int:
    if not count:
        return 0
    prices = [p for p in map(rate.price_or_none, units) if p is not None]
    if not prices:
        rate.price(units[0])  # raises the usual "has no price for" error
    return count * max(prices)


def _charge(rate: Rate, units_times_price: int) -> int:
    micro = charge_micro(units_times_price)
    if micro > MAX_MICRO:
        raise InvalidInput(
            f"cost at model {rate.model!r} exceeds {MAX_MICRO} micro-credits", model=rate.model
        )
    return micro
