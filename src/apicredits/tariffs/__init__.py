"""Tariffs: what models cost, what a planned job may cost, and signed quotes that say so.

A ``TariffVersion`` is an immutable rate card (integer micro-credits per million units, per model
and ``Unit``) in effect from a point in time; a ``TariffBook`` holds the versions and answers
which one applies at a moment. ``cost_micro`` prices metered usage (rounded up once per charge),
``worst_case_micro`` the lock for a planned call, and ``build_quote`` a whole job, which a
``QuoteSigner`` signs and ``verify_quote`` checks. Pure code: no database, no HTTP.
"""

from __future__ import annotations

import functools
from importlib import resources

from apicredits.tariffs.pricing import cost_micro, worst_case_micro
from apicredits.tariffs.quotes import (
    PlannedCall,
    Quote,
    QuoteLine,
    QuoteSigner,
    SignedQuote,
    build_quote,
    canonical_json,
    key_id_of,
    verify_quote,
)
from apicredits.tariffs.ratecard import Rate, TariffBook, TariffVersion, parse_tariff_toml
from apicredits.tariffs.units import Unit

__all__ = [
    "PlannedCall",
    "Quote",
    "QuoteLine",
    "QuoteSigner",
    "Rate",
    "SignedQuote",
    "TariffBook",
    "TariffVersion",
    "Unit",
    "build_quote",
    "canonical_json",
    "cost_micro",
    "default_tariff",
    "key_id_of",
    "parse_tariff_toml",
    "verify_quote",
    "worst_case_micro",
]


@functools.cache
def default_tariff() -> TariffVersion:
    """The tariff shipped with the package: the simulator models and public list prices."""
    text = resources.files(__name__).joinpath("default.toml").read_text(encoding="utf-8")
    return parse_tariff_toml(text)
