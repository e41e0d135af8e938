"""Independent re-validation of signed usage events, as each oracle node does it.

An event is valid when

- its EIP-712 signature recovers to a signer (``recover_signer``), and that signer is the
  provider's registered signing key *at the event's timestamp* (``meter = provider``; the
  registry's history is read from ProviderRegistry's logs) or the gateway's metering address
  the node was told to trust (``meter = gateway``), and the provider was active then;
- its cost is at most the tariff version it names applied to its units (``cost_micro``):
  the gateway charges a call whose usage outran its lock only up to the lock (the rest is
  ``uncollected_micro``), so a lower cost is a capped charge; a higher one is refused;
- per job, the costs of the epoch's events sum to at most the job's lock.

Sources are small interfaces: ``RegistryHistory`` (built from chain logs, or by hand in
tests), a tariff lookup ``version -> TariffVersion`` and a lock lookup ``job id -> locked
micro-credits``. ``validate_events`` returns one ``Rejection`` per bad event, never raises for
a bad event. The lock check is per epoch: a job whose calls span several epochs is only held
to its lock within each one (the node keeps no state across epochs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apicredits.errors import ApicreditsError
from apicredits.metering.events import Meter, SignedUsageEvent, UsageDomain, recover_signer
from apicredits.metering.store import hex32
from apicredits.tariffs import TariffVersion, cost_micro
from apicredits.tariffs.units import parse_unit

__all__ = [
    "STATUS_ACTIVE",
    "RegistryHistory",
    "Rejection",
    "registry_history_from_chain",
    "validate_event",
    "validate_events",
]

STATUS_ACTIVE = 1
TariffLookup = Callable[[int], TariffVersion]
LockLookup = Callable[[bytes], "int | None"]


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in the epoch's event list
    event_id: str  # 0x-hex
    reason: str

    def to_document(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "reason": self.reason}


@dataclass
class RegistryHistory:
    """Who signed for each provider, and its status, from when (unix seconds)."""

    signers: dict[bytes, list[tuple[int, str]]] = field(default_factory=dict)
    statuses: dict[bytes, list[tuple[int, int]]] = field(default_factory=dict)

    def set_signer(self, provider_id: bytes, signer: str, since: int) -> None:
        self.signers.setdefault(provider_id, []).append((since, signer.lower()))
        self.signers[provider_id].sort(key=lambda change: change[0])

    def set_status(self, provider_id: bytes, status: int, since: int) -> None:
        self.statuses.setdefault(provider_id, []).append((since, status))
        self.statuses[provider_id].sort(key=lambda change: change[0])

    def signer_at(self, provider_id: bytes, at: int) -> str | None:
        signer: str | None = _at(self.signers.get(provider_id, []), at)
        return signer

    def status_at(self, provider_id: bytes, at: int) -> int | None:
        status: int | None = _at(self.statuses.get(provider_id, []), at)
        return status


def _at(changes: Sequence[tuple[int, Any]], at: int) -> Any:
    found = None
    for since, value in changes:  # sorted by time; the last change at or before `at` holds
        if since > at:
            break
        found = value
    return found


def registry_history_from_chain(chain: Any, registry: str, from_block: int) -> RegistryHistory:
    """Replay ProviderRegistry's ProviderRegistered, SignerChanged and StatusChanged logs."""
    history = RegistryHistory()
    names = ["ProviderRegistered", "SignerChanged", "StatusChanged"]
    for log in chain.events(registry, "provider_registry", names, from_block, chain.block_number()):
        args = log.args
        pid = as_bytes(args["provider_id"])
        since = int(args["since"])
        if log.event == "ProviderRegistered":
            history.set_signer(pid, str(args["signer"]), since)
            history.set_status(pid, STATUS_ACTIVE, since)
        elif log.event == "SignerChanged":
            history.set_signer(pid, str(args["signer"]), since)
        else:
            history.set_status(pid, int(args["status"]), since)
    return history


# Registry times are block timestamps, event times the gateway's clock. A chain's blocks run
# ahead of the wall clock when they come faster than one a second (each must be later than
# its parent), so a registration is read as in force this much early.
CHAIN_CLOCK_SKEW = 120


def validate_event(
    signed: SignedUsageEvent,
    domain: UsageDomain,
    registry: RegistryHistory,
    tariffs: TariffLookup,
    gateway_meter: str | None,
) -> str | None:
    """Why this event is invalid, or None (signature, signer, status, tariff math)."""
    event = signed.event
    try:
        signer = recover_signer(signed, domain).lower()
    except ApicreditsError as exc:
        return f"signature: {exc.message}"
    if event.meter is Meter.GATEWAY:
        if gateway_meter is None or signer != gateway_meter.lower():
            return f"signer {signer} is not the trusted gateway meter"
    else:
        registered = registry.signer_at(event.provider_id, event.timestamp + CHAIN_CLOCK_SKEW)
        if registered is None:
            return "provider is not registered at the event's time"
        if signer != registered:
            return f"signer {signer} is not the provider's registered signer {registered}"
    status = registry.status_at(event.provider_id, event.timestamp + CHAIN_CLOCK_SKEW)
    if status != STATUS_ACTIVE and event.meter is Meter.PROVIDER:
        return f"provider status at the event's time is {status}, not active"
    try:
        tariff = tariffs(event.tariff_version)
        rate = tariff.rate(event.model)
        usage = {parse_unit(u.kind, where="units"): u.count for u in event.units}
        expected = cost_micro(rate, usage)
    except ApicreditsError as exc:
        return f"tariff: {exc.message}"
    if event.cost_micro > expected:
        return (
            f"cost {event.cost_micro} exceeds tariff version {event.tariff_version}'s price "
            f"of its units ({expected})"
        )
    return None


def validate_events(
    events: Sequence[SignedUsageEvent],
    domain: UsageDomain,
    registry: RegistryHistory,
    tariffs: TariffLookup,
    locks: LockLookup,
    gateway_meter: str | None = None,
) -> list[Rejection]:
    """Every problem with ``events``: each bad event once, plus the events of any job whose
    costs in this list sum above its lock (or whose lock is unknown)."""
    rejections: list[Rejection] = []
    by_job: dict[bytes, list[int]] = defaultdict(list)
    for i, signed in enumerate(events):
        reason = validate_event(signed, domain, registry, tariffs, gateway_meter)
        if reason is not None:
            rejections.append(Rejection(i, hex32(signed.event.event_id), reason))
        else:
            by_job[signed.event.job_id].append(i)
    seen_ids: set[bytes] = set()
    for i, signed in enumerate(events):
        if signed.event.event_id in seen_ids:
            rejections.append(Rejection(i, hex32(signed.event.event_id), "duplicate event id"))
        seen_ids.add(signed.event.event_id)
    for job, indexes in by_job.items():
        total = sum(events[i].event.cost_micro for i in indexes)
        locked = locks(job)
        if locked is None:
            reason = f"job {hex32(job)} has no known lock"
        elif total > locked:
            reason = f"job {hex32(job)} costs {total} above its lock of {locked}"
        else:
            continue
        rejections.extend(Rejection(i, hex32(events[i].event.event_id), reason) for i in indexes)
    rejections.sort(key=lambda r: r.index)
    return rejections


def static_locks(locks: Mapping[bytes, int]) -> LockLookup:
    return locks.get


def as_bytes(value: Any) -> bytes:
    """Bytes from a chain call's output (0x-hex text) or bytes."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def rejected_indexes(rejections: Iterable[Rejection]) -> set[int]:
    return {r.index for r in rejections}
