"""A provider's side of verifiable usage: sign what it served and emit it to the gateway.

The gateway sends providers configured with ``signs_usage = true`` one request header,
``apicredits-usage-context``: base64url (unpadded) of compact JSON with everything of the
call's usage event the provider cannot know itself::

    {"event_id", "job_id", "tenant", "provider_id", "request_hash": 0x-hex,
     "model": the tariff's model name, "tariff_version", "route",
     "chain_id", "receipts": the EIP-712 domain}

The provider adds the units it served, prices them with that tariff version (the same
``cost_micro``), signs with its registered key (``meter = provider``) and posts the event to
``POST /v1/usage/emit`` after the response; the gateway may not have charged the call yet,
so ``unknown_job`` is retried a few times. ``ProviderUsageSigner`` does all of this for the
provider simulator (``apicredits provider-sim --signing-key FILE --emit-url URL``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from apicredits import json_input
from apicredits.errors import ApicreditsError, InvalidInput
from apicredits.metering.events import Meter, UsageDomain, UsageEvent, UsageUnit, sign
from apicredits.providers.base import MalformedUpstream, Route
from apicredits.providers.dialects import usage_from_response
from apicredits.tariffs import TariffBook, Unit, cost_micro, default_tariff

__all__ = ["CONTEXT_HEADER", "ProviderUsageSigner", "UsageContext"]

log = logging.getLogger("apicredits.metering")

CONTEXT_HEADER = "apicredits-usage-context"
EMIT_ATTEMPTS = 5


def _hex32(name: str, value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        raise InvalidInput(f"usage context {name} must be 32 bytes of 0x-hex", field=name)
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidInput(f"usage context {name} is not hex", field=name) from None


@dataclass(frozen=True, slots=True)
class UsageContext:
    event_id: bytes
    job_id: bytes
    tenant: str
    provider_id: bytes
    request_hash: bytes
    model: str
    tariff_version: int
    route: str
    domain: UsageDomain

    def header(self) -> str:
        document = {
            "event_id": "0x" + self.event_id.hex(),
            "job_id": "0x" + self.job_id.hex(),
            "tenant": self.tenant,
            "provider_id": "0x" + self.provider_id.hex(),
            "request_hash": "0x" + self.request_hash.hex(),
            "model": self.model,
            "tariff_version": self.tariff_version,
            "route": self.route,
            "chain_id": self.domain.chain_id,
            "receipts": self.domain.verifying_contract,
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def parse(cls, header: str) -> UsageContext:
        try:
            padded = header.strip() + "=" * (-len(header.strip()) % 4)
            doc = json_input.loads(base64.urlsafe_b64decode(padded))
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            return cls(
                _hex32("event_id", doc["event_id"]),
                _hex32("job_id", doc["job_id"]),
                str(doc["tenant"]),
                _hex32("provider_id", doc["provider_id"]),
                _hex32("request_hash", doc["request_hash"]),
                str(doc["model"]),
                int(doc["tariff_version"]),
                str(doc["route"]),
                UsageDomain(int(doc["chain_id"]), str(doc["receipts"])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"bad {CONTEXT_HEADER} header: {exc}") from None

    def event(self, units: Mapping[Unit, int], cost: int, sequence: int) -> UsageEvent:
        return UsageEvent(
            event_id=self.event_id,
            job_id=self.job_id,
            tenant=self.tenant,
            provider_id=self.provider_id,
            model=self.model,
            units=tuple(UsageUnit(str(u), n) for u, n in sorted(units.items())),
            tariff_version=self.tariff_version,
            cost_micro=cost,
            timestamp=int(time.time()),
            request_hash=self.request_hash,
            sequence=sequence,
            meter=Meter.PROVIDER,
        )


class ProviderUsageSigner:
    """Signs a provider's usage events and emits them in the background."""

    def __init__(
        self,
        private_key: str,
        emit_url: str | None,
        *,
        tariffs: TariffBook | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.private_key = private_key
        self.address = str(Account.from_key(private_key).address)
        self.emit_url = emit_url
        self.tariffs = tariffs or TariffBook([default_tariff()])
        self._transport = transport
        self._sequence = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.emitted = 0  # events the gateway accepted

    @classmethod
    def from_key_file(cls, path: Path, emit_url: str | None) -> ProviderUsageSigner:
        return cls(Path(path).read_text().strip(), emit_url)

    def sign(self, context: UsageContext, units: Mapping[Unit, int]) -> dict[str, Any]:
        rate = self.tariffs.version(context.tariff_version).rate(context.model)
        event = context.event(units, cost_micro(rate, units), next(self._sequence))
        return sign(event, context.domain, self.private_key).to_document()

    def served(self, header: str, response: bytes) -> None:
        """A call with this usage context answered ``response`` (a whole JSON body): sign
        the usage it reports and emit it, in the background (never fails the call)."""
        try:
            context = UsageContext.parse(header)
            units = usage_from_response(Route(context.route), response)
            document = self.sign(context, units)
        except (ApicreditsError, MalformedUpstream, ValueError) as exc:
            log.warning("not signing usage: %s", exc)
            return
        if self.emit_url is None:
            return
        task = asyncio.create_task(self._emit(document))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, document: dict[str, Any]) -> None:
        assert self.emit_url is not None
        async with httpx.AsyncClient(transport=self._transport, timeout=10) as client:
            for attempt in range(EMIT_ATTEMPTS):
                try:
                    r = await client.post(self.emit_url, json=document)
                except httpx.HTTPError as exc:
                    log.warning("emitting a usage event failed: %s", exc)
                else:
                    if r.status_code == 200:
                        self.emitted += 1
                        return
                    try:
                        code = r.json()["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        code = None
                    if code != "unknown_job":  # only "not charged yet" is worth a retry
                        log.warning("the gateway refused a usage event: %s", r.text[:300])
                        return
                await asyncio.sleep(0.05 * 2**attempt)

    async def drain(self) -> None:
        """Wait for the events being emitted (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
