"""One oracle node: an HTTP service that signs an epoch only after re-deriving it itself.

``POST /v1/epochs/sign`` takes a ``SignRequest`` document::

    {"chain_id", "receipts", "epoch", "events_root", "lines_root", "line_count",
     "total_micro", "events": [signed usage event documents, in leaf order],
     "jobs": {"0x<job id hash>": "<job or lock id>"}, "lines": [line documents]}

The node checks the chain and contract are its own, re-validates every event
(``apicredits.oracle.validation``: signature, the provider's registered signer and status at
the event's time from the chain's ProviderRegistry logs, the gateway meter it trusts, tariff
math, per-job lock limits), rebuilds both trees and the lines (``build_epoch`` with its own
``fee_bps``), and BLS-signs ``EpochSummary.message()`` only when every root, count, total and
line it computed equals the request's. It answers ``200 {"public_key", "signature",
"message"}`` or ``422 {"refused": true, "reasons": [...]}``. ``GET /v1/node`` says who it is.

Where the node reads what it checks: the chain (registry logs), and the gateway's database
*read-only* for tariff versions and lock amounts (``tariff_versions``, ``jobs``, lock
``transfers``); the request only names which job or lock id each job hash stands for, which
the node confirms by hashing it. ``byzantine=True`` (a test flag) signs a different events
root, to exercise the aggregator's exclusion.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apicredits import json_input
from apicredits.db import Database
from apicredits.db.schema import tariff_versions
from apicredits.errors import ApicreditsError, InvalidInput, NotFound
from apicredits.metering.events import SignedUsageEvent, UsageDomain
from apicredits.oracle.bls import OracleKey
from apicredits.oracle.epochs import build_epoch, lock_amounts
from apicredits.oracle.merkle import keccak256
from apicredits.oracle.messages import EpochSummary, job_id
from apicredits.oracle.validation import (
    LockLookup,
    RegistryHistory,
    TariffLookup,
    validate_events,
)
from apicredits.tariffs import TariffBook, TariffVersion

__all__ = [
    "DatabaseSources",
    "OracleNode",
    "Refusal",
    "SignRequest",
    "Sources",
    "StaticSources",
    "line_document",
]

log = logging.getLogger("apicredits.oracle.node")


def _hex32(name: str, value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise InvalidInput(f"{name} must be 0x-hex of 32 bytes", field=name)
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidInput(f"{name} must be 0x-hex of 32 bytes", field=name) from None


def _int(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    return value


def line_document(line: Any) -> dict[str, Any]:
    return {
        "epoch": line.epoch,
        "tenant": line.tenant,
        "provider_id": "0x" + line.provider_id.hex(),
        "amount_micro": line.amount_micro,
        "fee_micro": line.fee_micro,
    }


@dataclass(frozen=True)
class SignRequest:
    summary: EpochSummary
    events: list[SignedUsageEvent]
    jobs: dict[bytes, str]
    lines: list[dict[str, Any]] = field(default_factory=list)

    def to_document(self) -> dict[str, Any]:
        s = self.summary
        return {
            "chain_id": s.chain_id,
            "receipts": s.receipts_contract,
            "epoch": s.epoch,
            "events_root": "0x" + s.events_root.hex(),
            "lines_root": "0x" + s.lines_root.hex(),
            "line_count": s.line_count,
            "total_micro": s.total_micro,
            "events": [e.to_document() for e in self.events],
            "jobs": {"0x" + h.hex(): name for h, name in self.jobs.items()},
            "lines": self.lines,
        }

    @classmethod
    def from_document(cls, doc: Any) -> SignRequest:
        if not isinstance(doc, Mapping):
            raise InvalidInput("a sign request is a JSON object")
        try:
            summary = EpochSummary(
                chain_id=_int("chain_id", doc["chain_id"]),
                receipts_contract=doc["receipts"],
                epoch=_int("epoch", doc["epoch"]),
                events_root=_hex32("events_root", doc["events_root"]),
                lines_root=_hex32("lines_root", doc["lines_root"]),
                line_count=_int("line_count", doc["line_count"]),
                total_micro=_int("total_micro", doc["total_micro"]),
            )
            events = doc["events"]
            jobs = doc.get("jobs", {})
            lines = doc.get("lines", [])
        except KeyError as exc:
            raise InvalidInput(f"sign request field {exc.args[0]!r} is missing") from None
        except ApicreditsError as exc:
            raise InvalidInput(exc.message) from None
        if not isinstance(events, list) or not events:
            raise InvalidInput("events must be a non-empty list", field="events")
        if not isinstance(jobs, Mapping) or not isinstance(lines, list):
            raise InvalidInput("jobs must be an object and lines a list")
        parsed_jobs = {_hex32("jobs", h): str(name) for h, name in jobs.items()}
        return cls(summary, [SignedUsageEvent.from_document(e) for e in events], parsed_jobs, lines)


class Refusal(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class Sources(Protocol):
    """Where a node reads tariff versions and lock amounts for one request."""

    async def load(self, request: SignRequest) -> tuple[TariffLookup, dict[bytes, int]]: ...


@dataclass(frozen=True)
class StaticSources:
    tariffs: Mapping[int, TariffVersion]
    locks: Mapping[bytes, int]

    async def load(self, request: SignRequest) -> tuple[TariffLookup, dict[bytes, int]]:
        def tariff(version: int) -> TariffVersion:
            try:
                return self.tariffs[version]
            except KeyError:
                raise NotFound(f"no tariff version {version}") from None

        return tariff, {h: self.locks[h] for h in request.jobs if h in self.locks}


class DatabaseSources:
    """The gateway's database, read only: ``tariff_versions``, ``jobs`` and lock transfers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, request: SignRequest) -> tuple[TariffLookup, dict[bytes, int]]:

        def work(conn: Connection) -> tuple[list[str], dict[str, int]]:
            docs = list(conn.execute(select(tariff_versions.c.document)).scalars())
            return docs, lock_amounts(conn, request.jobs.values())

        docs, amounts = await self.db.read(work)
        book = TariffBook(TariffVersion.from_document(json.loads(d)) for d in docs)
        locks = {h: amounts[name] for h, name in request.jobs.items() if name in amounts}
        return book.version, locks


class OracleNode:
    """The signing logic (``sign``) and its HTTP face (``app``)."""

    def __init__(
        self,
        key: OracleKey,
        domain: UsageDomain,
        *,
        registry: Callable[[], RegistryHistory],
        sources: Sources,
        fee_bps: int,
        gateway_meter: str | None = None,
        byzantine: bool = False,
    ) -> None:
        self.key = key
        self.domain = domain
        self.registry = registry
        self.sources = sources
        self.fee_bps = fee_bps
        self.gateway_meter = gateway_meter
        self.byzantine = byzantine

    def sign(
        self, request: SignRequest, tariffs: TariffLookup, locks: Mapping[bytes, int]
    ) -> dict[str, Any]:
        """The share for ``request``; raises ``Refusal`` with every reason not to sign."""
        s = request.summary
        if (s.chain_id, s.receipts_contract) != (
            self.domain.chain_id,
            self.domain.verifying_contract,
        ):
            raise Refusal([f"not this node's chain/contract ({s.chain_id}, {s.receipts_contract})"])
        reasons = []
        for h, name in request.jobs.items():
            if job_id(name) != h:
                reasons.append(f"job id 0x{h.hex()} is not the hash of {name!r}")
        lookup: LockLookup = locks.get
        for rejection in validate_events(
            request.events, self.domain, self.registry(), tariffs, lookup, self.gateway_meter
        ):
            reasons.append(f"event {rejection.index} ({rejection.event_id}): {rejection.reason}")
        build = build_epoch(s.epoch, request.events, self.domain, self.fee_bps)
        mine = build.summary(self.domain)
        for name in ("events_root", "lines_root", "line_count", "total_micro"):
            theirs, ours = getattr(s, name), getattr(mine, name)
            if theirs != ours:
                show = (lambda v: "0x" + v.hex()) if isinstance(ours, bytes) else str
                reasons.append(f"{name}: request {show(theirs)}, computed {show(ours)}")
        ours_lines = [line_document(line) for line in build.lines]
        if request.lines and request.lines != ours_lines:
            reasons.append("settlement lines differ from the ones computed")
        if reasons:
            raise Refusal(reasons)
        signed = mine
        if self.byzantine:
            signed = EpochSummary(
                mine.chain_id, mine.receipts_contract, mine.epoch, keccak256(mine.events_root),
                mine.lines_root, mine.line_count, mine.total_micro,
            )  # fmt: skip
        message = signed.message()
        return {
            "public_key": "0x" + self.key.public_key.hex(),
            "signature": "0x" + self.key.sign(message).hex(),
            "message": "0x" + message.hex(),
        }

    def app(self) -> Starlette:
        async def sign(request: Request) -> JSONResponse:
            try:
                doc = json_input.loads(await request.body())
                parsed = SignRequest.from_document(doc)
                tariffs, locks = await self.sources.load(parsed)
                share = await asyncio.to_thread(self.sign, parsed, tariffs, locks)
            except (ValueError, ApicreditsError) as exc:
                message = exc.message if isinstance(exc, ApicreditsError) else str(exc)
                return JSONResponse({"refused": True, "reasons": [message]}, status_code=400)
            except Refusal as refusal:
                log.warning("refused epoch: %s", refusal)
                return JSONResponse({"refused": True, "reasons": refusal.reasons}, 422)
            except Exception as exc:  # the chain or the database failed: say so, sign nothing
                log.exception("cannot check the epoch")
                reason = f"cannot check the epoch: {type(exc).__name__}: {exc}"
                return JSONResponse({"refused": True, "reasons": [reason]}, 503)
            log.info("signed epoch %s", parsed.summary.epoch)
            return JSONResponse(share)

        async def whoami(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "public_key": "0x" + self.key.public_key.hex(),
                    "chain_id": self.domain.chain_id,
                    "receipts": self.domain.verifying_contract,
                    "fee_bps": self.fee_bps,
                    "gateway_meter": self.gateway_meter,
                }
            )

        return Starlette(
            routes=[
                Route("/v1/epochs/sign", sign, methods=["POST"]),
                Route("/v1/node", whoami, methods=["GET"]),
            ]
        )
