"""Rate cards: integer prices per model and unit, grouped into immutable, versioned tariffs.

A price is integer micro-credits per **million** units ($2.50 per million input tokens =
``2_500_000``), so sub-micro per-unit prices stay exact; ``apicredits.money`` rounds a charge.

Fallbacks, applied when a rate is asked for a unit it does not list:

- ``cached_input_tokens`` and ``cache_write_tokens`` cost what ``input_tokens`` costs
  (a provider without a cache discount or surcharge);
- ``reasoning_tokens`` cost what ``output_tokens`` cost (every provider bills them as output).

Any other unit that is used but not priced is ``InvalidInput``: a missing price is never zero.

TOML format (``parse_tariff_toml``; prices are integers, micro-credits per million units)::

    version = 1                              # optional when parse_tariff_toml(version=...) is given
    effective_from = "2025-06-01T00:00:00Z"  # RFC 3339 string, TOML offset datetime or unix seconds
    source = "where and when these prices were taken"

    [models."gpt-4o"]
    provider = "openai"
    input_tokens = 2_500_000                 # any Unit name as a key
    cached_input_tokens = 1_250_000
    output_tokens = 10_000_000

The JSON document (``to_document``/``from_document``) has the same shape with
``effective_from`` in unix seconds. A ``version`` passed to ``parse_tariff_toml`` wins over the
file's: the version number is the book's bookkeeping (the admin API assigns the next one).

``TariffBook.add`` is idempotent: the same version number with the same content is a no-op, with
different content it is ``IdempotencyConflict`` (409) — published tariffs are never edited, a
price change is a new version.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from apicredits.errors import IdempotencyConflict, InvalidInput, NotFound, UnknownModel
from apicredits.money import MAX_MICRO
from apicredits.tariffs.units import Unit, parse_unit

MAX_NAME_CHARS = 200
MAX_SOURCE_CHARS = 2000
_FALLBACKS = {
    Unit.CACHED_INPUT_TOKENS: Unit.INPUT_TOKENS,
    Unit.CACHE_WRITE_TOKENS: Unit.INPUT_TOKENS,
    Unit.REASONING_TOKENS: Unit.OUTPUT_TOKENS,
}
_DOCUMENT_KEYS = frozenset({"version", "effective_from", "source", "models"})
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_INT64 = MAX_MICRO  # versions and timestamps fit the same signed 64-bit columns as money


def require_name(value: object, field: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """A non-empty name without surrounding whitespace that encodes as UTF-8."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidInput(f"{field} must be a non-empty string, got {value!r}", field=field)
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars} characters", field=field)
    try:
        value.encode("utf-8")  # lone surrogates would break canonical JSON later
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid Unicode text", field=field) from None
    return value


def _price(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            f"{field} must be an integer number of micro-credits per million units, got {value!r}",
            field=field,
        )
    if not 0 <= value <= MAX_MICRO:
        raise InvalidInput(f"{field} must be between 0 and {MAX_MICRO}, got {value}", field=field)
    return value


def _seconds(value: object, field: str) -> int:
    """Unix seconds from an int, an RFC 3339 string or a timezone-aware datetime."""
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise InvalidInput(f"{field} must be RFC 3339, got {value!r}", field=field)
        try:
            value = datetime.fromisoformat(value.upper())
        except ValueError:
            raise InvalidInput(f"{field} is not a valid date, got {value!r}", field=field) from None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidInput(f"{field} needs a UTC offset, got {value}", field=field)
        if value.microsecond:
            raise InvalidInput(f"{field} must be whole seconds, got {value}", field=field)
        value = (value - _EPOCH) // timedelta(seconds=1)  # integer arithmetic, no float
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT64:
        raise InvalidInput(
            f"{field} must be non-negative unix seconds or an RFC 3339 string, got {value!r}",
            field=field,
        )
    return value


@dataclass(frozen=True)
class Rate:
    """What one model costs: micro-credits per million units, per unit kind."""

    provider: str
    model: str
    prices: Mapping[Unit, int]

    def __post_init__(self) -> None:
        model = require_name(self.model, "model")
        where = f"model {model!r}"
        require_name(self.provider, f"{where}: provider")
        if not isinstance(self.prices, Mapping) or not self.prices:
            raise InvalidInput(f"{where} prices no unit", model=model)
        prices = {
            parse_unit(unit, where=where): _price(price, f"{where}: {unit}")
            for unit, price in self.prices.items()
        }
        ordered = {unit: prices[unit] for unit in Unit if unit in prices}
        object.__setattr__(self, "prices", MappingProxyType(ordered))

    def price_or_none(self, unit: Unit) -> int | None:
        """The price of ``unit`` after fallbacks, or None when the rate does not price it."""
        price = self.prices.get(unit)
        if price is None and unit in _FALLBACKS:
            price = self.prices.get(_FALLBACKS[unit])
        return price

    def price(self, unit: Unit) -> int:
        """The price of ``unit`` after fallbacks; InvalidInput when the rate does not price it."""
        price = self.price_or_none(unit)
        if price is None:
            raise InvalidInput(
                f"model {self.model!r} has no price for {unit}", model=self.model, unit=str(unit)
            )
        return price

    def to_document(self) -> dict[str, Any]:
        return {"provider": self.provider, **{str(u): p for u, p in self.prices.items()}}

    @classmethod
    def from_document(cls, model: str, document: object) -> Rate:
        if not isinstance(document, Mapping):
            raise InvalidInput(f"model {model!r} must be a table of prices", model=model)
        prices = {unit: price for unit, price in document.items() if unit != "provider"}
        return cls(document.get("provider"), model, prices)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TariffVersion:
    """An immutable set of rates, in effect from ``effective_from`` (unix seconds, UTC)."""

    version: int
    effective_from: int
    rates: Mapping[str, Rate]
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise InvalidInput(f"version must be an integer, got {self.version!r}", field="version")
        if not 1 <= self.version <= _MAX_INT64:
            raise InvalidInput(f"version must be positive, got {self.version}", field="version")
        object.__setattr__(self, "effective_from", _seconds(self.effective_from, "effective_from"))
        if not isinstance(self.source, str) or len(self.source) > MAX_SOURCE_CHARS:
            raise InvalidInput(f"source must be text of at most {MAX_SOURCE_CHARS} characters")
        if not isinstance(self.rates, Mapping) or not self.rates:
            raise InvalidInput("a tariff needs at least one model", field="models")
        for name, rate in self.rates.items():
            if not isinstance(rate, Rate) or rate.model != name:
                raise InvalidInput(f"rates[{name!r}] must be the Rate of model {name!r}")
        frozen = MappingProxyType(dict(sorted(self.rates.items())))
        object.__setattr__(self, "rates", frozen)

    def rate(self, model: str) -> Rate:
        """The rate of ``model``; UnknownModel when this tariff does not sell it."""
        rate = self.rates.get(model) if isinstance(model, str) else None
        if rate is None:
            raise UnknownModel(
                f"model {model!r} is not in tariff version {self.version}",
                model=model,
                tariff_version=self.version,
            )
        return rate

    def to_document(self) -> dict[str, Any]:
        """A JSON-safe form; ``from_document`` turns it back into an equal TariffVersion."""
        return {
            "version": self.version,
            "effective_from": self.effective_from,
            "source": self.source,
            "models": {name: rate.to_document() for name, rate in self.rates.items()},
        }

    @classmethod
    def from_document(cls, document: object) -> TariffVersion:
        if not isinstance(document, Mapping):
            raise InvalidInput("a tariff document must be an object")
        unknown = sorted(str(key) for key in document if key not in _DOCUMENT_KEYS)
        if unknown:
            raise InvalidInput(f"unknown tariff field {unknown[0]!r}", field=unknown[0])
        for key in ("version", "effective_from", "models"):
            if key not in document:
                raise InvalidInput(f"tariff field {key!r} is missing", field=key)
        models = document["models"]
        if not isinstance(models, Mapping):
            raise InvalidInput("models must be a table of model name to prices", field="models")
        rates = {
            require_name(name, "model"): Rate.from_document(name, doc)
            for name, doc in models.items()
        }
        return cls(
            version=document["version"],
            effective_from=_seconds(document["effective_from"], "effective_from"),
            rates=rates,
            source=document.get("source", ""),
        )


def parse_tariff_toml(text: str, *, version: int | None = None) -> TariffVersion:
    """Parse a tariff from TOML (format: module docstring); ``version`` overrides the file's."""
    try:
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, TypeError) as exc:
        raise InvalidInput(f"tariff TOML does not parse: {exc}") from None
    if version is not None:
        document["version"] = version
    return TariffVersion.from_document(document)


class TariffBook:
    """The tariff versions a gateway prices with; versions are immutable, the book only grows."""

    def __init__(self, versions: Iterable[TariffVersion] = ()) -> None:
        self._versions: dict[int, TariffVersion] = {}
        for tariff in versions:
            self.add(tariff)

    def add(self, tariff: TariffVersion) -> TariffVersion:
        """Add a version; re-adding an equal one is a no-op, a different one a conflict."""
        existing = self._versions.setdefault(tariff.version, tariff)
        if existing != tariff:
            raise IdempotencyConflict(
                f"tariff version {tariff.version} already exists with different content",
                tariff_version=tariff.version,
            )
        return existing

    def version(self, number: int) -> TariffVersion:
        """A version by number (e.g. the one a quote was priced with)."""
        try:
            return self._versions[number]
        except KeyError:
            raise NotFound(f"no tariff version {number}", tariff_version=number) from None

    def current(self, at: int) -> TariffVersion:
        """The version in effect at ``at``: latest ``effective_from`` <= at, then highest number."""
        in_effect = [t for t in self._versions.values() if t.effective_from <= at]
        if not in_effect:
            raise NotFound(f"no tariff version is in effect at {at}", at=at)
        return max(in_effect, key=lambda t: (t.effective_from, t.version))

    def rate(self, model: str, at: int) -> tuple[TariffVersion, Rate]:
        """The version in effect at ``at`` and its rate for ``model`` (UnknownModel if absent)."""
        tariff = self.current(at)
        return tariff, tariff.rate(model)

    def versions(self) -> tuple[TariffVersion, ...]:
        """Every version, by version number."""
        return tuple(self._versions[number] for number in sorted(self._versions))
