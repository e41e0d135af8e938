"""Money is integer micro-credits: 1 credit = 1 stablecoin unit (USDC) = 10**6 micro.

Prices below a micro-credit per unit are expressed per million units, so a cost is the
rational ``sum(units * price_per_million) / 10**6``; ``charge_micro`` turns it into an
integer with the one rounding rule of the project: **round up to the next micro-credit,
once per charge** (never per unit kind), so a charge is never below its true cost and
never more than one micro-credit above it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from apicredits.errors import InvalidInput

MICRO_PER_CREDIT = 1_000_000
UNITS_PER_PRICE = 1_000_000  # prices are quoted per million units
MAX_MICRO = 2**63 - 1  # fits a signed 64-bit column on every engine


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer ceiling division for non-negative numerators."""
    return -(-numerator // denominator)


def charge_micro(units_times_price: int) -> int:
    """Round ``sum(units * price_per_million)`` up to a whole micro-credit charge."""
    if units_times_price < 0:
        raise InvalidInput("a cost cannot be negative")
    return ceil_div(units_times_price, UNITS_PER_PRICE)


def require_micro(value: Any, field: str = "amount_micro", *, allow_zero: bool = False) -> int:
    """Validate an amount from the outside world: a plain int (never bool or float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer number of micro-credits", field=field)
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(
            f"{field} must be {'non-negative' if allow_zero else 'positive'}", field=field
        )
    if value > MAX_MICRO:
        raise InvalidInput(f"{field} is too large", field=field)
    return value


def credits_to_micro(text: str) -> int:
    """Parse a decimal credit amount (``"12.5"``) exactly; more than 6 decimals is an error."""
    try:
        amount = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidInput(f"not a decimal amount: {text!r}") from None
    micro = amount * MICRO_PER_CREDIT
    if not amount.is_finite() or micro != micro.to_integral_value():
        raise InvalidInput(f"{text!r} is not a whole number of micro-credits")
    return require_micro(int(micro), "amount", allow_zero=True)


def format_micro(micro: int) -> str:
    """Render micro-credits as a credit amount with all six decimals: ``1.500000``."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_CREDIT)
    return f"{sign}{whole}.{frac:06d}"
