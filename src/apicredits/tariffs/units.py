"""The unit kinds calls are metered in, and validation of unit counts from the outside world."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from apicredits.errors import InvalidInput
from apicredits.money import MAX_MICRO


class Unit(StrEnum):
    """What usage is counted in; a price is micro-credits per million of one unit."""

    INPUT_TOKENS = "input_tokens"
    CACHED_INPUT_TOKENS = "cached_input_tokens"  # prompt tokens read from the provider's cache
    CACHE_WRITE_TOKENS = "cache_write_tokens"  # prompt tokens written to it (Anthropic bills)
    OUTPUT_TOKENS = "output_tokens"
    REASONING_TOKENS = "reasoning_tokens"
    REQUESTS = "requests"
    IMAGES = "images"
    SECONDS = "seconds"


def parse_unit(name: object, *, where: str) -> Unit:
    """A unit from its name (or a ``Unit``); anything else is InvalidInput naming ``where``."""
    if isinstance(name, Unit):
        return name
    if isinstance(name, str):
        try:
            return Unit(name)
        except ValueError:
            pass
    raise InvalidInput(
        f"{where}: unknown unit {name!r}; expected one of {', '.join(Unit)}",
        field=str(name),
    )


def require_count(value: object, field: str) -> int:
    """A unit count: a plain non-negative int (never bool or float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a non-negative integer, got {value!r}", field=field)
    if value < 0:
        raise InvalidInput(f"{field} must be non-negative, got {value}", field=field)
    if value > MAX_MICRO:
        raise InvalidInput(f"{field} is too large", field=field)
    return value


def require_usage(usage: object, *, where: str) -> dict[Unit, int]:
    """Validate a ``{unit: count}`` mapping; keys may be ``Unit`` members or their names."""
    if not isinstance(usage, Mapping):
        raise InvalidInput(f"{where} must be a mapping of unit to count", field=where)
    return {
        parse_unit(name, where=where): require_count(count, f"{where}.{name}")
        for name, count in usage.items()
    }
