"""Epochs: which usage events settle together, their two Merkle trees and settlement lines.

``build_epoch`` is the pure rule every oracle node and the aggregator apply to the same
events (in sequence order):

- the events tree has one leaf per event, the standard leaf of its EIP-712 digest, in the
  order given (``usage_event_leaf``);
- settlement lines are per (tenant address, provider id): ``amount`` the sum of the events'
  costs, ``fee = amount * fee_bps // 10000`` (rounded down), ordered by tenant address then
  provider id; an event of the zero tenant address (a tenant without a wallet) stays in the
  events tree but makes no line (it cannot be burnt on chain) and is reported in
  ``unsettled``; a line of amount zero is left out (the vault refuses to settle nothing);
- with no line at all the lines root is 32 zero bytes (nothing can be proven against it).

``seal_epoch`` is the aggregator's database step (one transaction): the oldest unsealed
usage events, once there are ``max_events`` of them or the oldest waited ``max_seconds``,
re-validated; valid ones get ``epoch``/``leaf_index``, invalid ones ``epoch = 0`` (never
settles; the reasons are logged and returned), and the ``epochs`` and ``epoch_lines`` rows
are written in state ``sealed``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from apicredits.db.schema import epoch_lines, epochs, jobs, transfers, usage_events, usage_records
from apicredits.metering.events import SignedUsageEvent, UsageDomain
from apicredits.oracle.merkle import MerkleTree
from apicredits.oracle.messages import (
    SETTLEMENT_LINE_TYPES,
    USAGE_EVENT_LEAF_TYPES,
    EpochSummary,
    SettlementLine,
    job_id,
)
from apicredits.oracle.validation import Rejection

__all__ = [
    "REJECTED_EPOCH",
    "ZERO_ADDRESS",
    "EpochBuild",
    "SealResult",
    "build_epoch",
    "lock_amounts",
    "receipt_document",
    "seal_epoch",
    "settlement_lines",
]

log = logging.getLogger("apicredits.oracle")

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_ROOT = bytes(32)
REJECTED_EPOCH = 0  # usage_events.epoch of an event validation refused: it never settles
BPS = 10_000


def settlement_lines(
    epoch: int, events: Iterable[SignedUsageEvent], fee_bps: int
) -> tuple[list[SettlementLine], list[int]]:
    """The epoch's lines, and the indexes of events that make none (zero tenant)."""
    if not 0 <= fee_bps <= BPS:
        raise ValueError("fee_bps must lie in [0, 10000]")
    amounts: dict[tuple[str, bytes], int] = {}
    unsettled = []
    for i, signed in enumerate(events):
        event = signed.event
        if event.tenant == ZERO_ADDRESS:
            unsettled.append(i)
            continue
        key = (event.tenant, event.provider_id)
        amounts[key] = amounts.get(key, 0) + event.cost_micro
    lines = [
        SettlementLine(epoch, tenant, provider, amount, amount * fee_bps // BPS)
        for (tenant, provider), amount in sorted(
            amounts.items(), key=lambda item: (item[0][0].lower(), item[0][1])
        )
        if amount > 0
    ]
    return lines, unsettled


@dataclass(frozen=True)
class EpochBuild:
    epoch: int
    digests: list[bytes]
    events_tree: MerkleTree
    lines: list[SettlementLine]
    lines_tree: MerkleTree | None
    unsettled: list[int]  # indexes of events of the zero tenant address

    @property
    def events_root(self) -> bytes:
        return self.events_tree.root

    @property
    def lines_root(self) -> bytes:
        return ZERO_ROOT if self.lines_tree is None else self.lines_tree.root

    @property
    def total_micro(self) -> int:
        return sum(line.amount_micro for line in self.lines)

    def summary(self, domain: UsageDomain) -> EpochSummary:
        return EpochSummary(
            chain_id=domain.chain_id,
            receipts_contract=domain.verifying_contract,
            epoch=self.epoch,
            events_root=self.events_root,
            lines_root=self.lines_root,
            line_count=len(self.lines),
            total_micro=self.total_micro,
        )

    def line_proof(self, index: int) -> list[bytes]:
        assert self.lines_tree is not None
        return self.lines_tree.proof(index)


def build_epoch(
    epoch: int, events: Sequence[SignedUsageEvent], domain: UsageDomain, fee_bps: int
) -> EpochBuild:
    """Both trees and the lines of ``events`` (at least one), in the order given."""
    digests = [signed.event.digest(domain) for signed in events]
    events_tree = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, [(d,) for d in digests])
    lines, unsettled = settlement_lines(epoch, events, fee_bps)
    lines_tree = (
        MerkleTree.build(SETTLEMENT_LINE_TYPES, [line.values() for line in lines])
        if lines
        else None
    )
    return EpochBuild(epoch, digests, events_tree, lines, lines_tree, unsettled)


# --- the database step ----------------------------------------------------------------------


def lock_amounts(conn: Connection, ids: Iterable[str]) -> dict[str, int]:
    """Locked micro-credits by job id or lock id (``jobs`` first, then lock transfers)."""
    wanted = sorted(set(ids))
    found: dict[str, int] = {}
    if not wanted:
        return found
    for row in conn.execute(
        select(jobs.c.id, jobs.c.lock_id, jobs.c.locked_micro).where(
            jobs.c.id.in_(wanted) | jobs.c.lock_id.in_(wanted)
        )
    ):
        found[row.id] = int(row.locked_micro)
        found[row.lock_id] = int(row.locked_micro)
    rest = [i for i in wanted if i not in found]
    if rest:
        locks = select(transfers.c.id, transfers.c.amount).where(
            transfers.c.id.in_(rest), transfers.c.kind == "lock"
        )
        for lock in conn.execute(locks):
            found[lock.id] = int(lock.amount)
    return found


def job_references(conn: Connection, request_ids: Iterable[str]) -> dict[str, list[str]]:
    """The job id and lock id of each request's usage record (candidates for its job hash)."""
    wanted = sorted(set(request_ids))
    refs: dict[str, list[str]] = {}
    if wanted:
        stmt = select(usage_records.c.id, usage_records.c.job_id, usage_records.c.lock_id)
        for row in conn.execute(stmt.where(usage_records.c.id.in_(wanted))):
            refs[row.id] = [r for r in (row.job_id, row.lock_id) if r]
    return refs


def resolve_jobs(
    events: Sequence[SignedUsageEvent], candidates: Sequence[Sequence[str]]
) -> dict[bytes, str]:
    """Which text id each event's job hash is the keccak of."""
    resolved: dict[bytes, str] = {}
    for signed, names in zip(events, candidates, strict=True):
        for name in names:
            if job_id(name) == signed.event.job_id:
                resolved[signed.event.job_id] = name
                break
    return resolved


@dataclass(frozen=True)
class SealResult:
    epoch: int
    build: EpochBuild | None  # None: every event was rejected
    seqs: list[int]
    rejected: list[Rejection]


Validator = Callable[[Sequence[SignedUsageEvent], Mapping[bytes, int]], list[Rejection]]


def seal_epoch(
    conn: Connection,
    *,
    epoch: int,
    domain: UsageDomain,
    fee_bps: int,
    validate: Validator,
    max_events: int,
    max_seconds: float,
    now_us: int,
) -> SealResult | None:
    """Seal the next epoch if it is due (see the module docstring); None when it is not.
    ``validate(events, locks)`` gets each job hash's locked amount."""
    rows = conn.execute(
        select(usage_events)
        .where(usage_events.c.epoch.is_(None))
        .order_by(usage_events.c.seq)
        .limit(max_events)
    ).all()
    if not rows:
        return None
    oldest = min(int(r.created_at_us) for r in rows)
    if len(rows) < max_events and now_us - oldest < max_seconds * 1_000_000:
        return None
    events = [SignedUsageEvent.from_document(json.loads(r.document)) for r in rows]
    refs = job_references(conn, [r.request_id for r in rows])
    jobs_by_hash = resolve_jobs(events, [refs.get(r.request_id, []) for r in rows])
    amounts = lock_amounts(conn, jobs_by_hash.values())
    locks = {h: amounts[name] for h, name in jobs_by_hash.items() if name in amounts}
    rejected = validate(events, locks)
    bad = {r.index for r in rejected}
    for r in rejected:
        log.warning("usage event %s rejected: %s", r.event_id, r.reason)
    good = [i for i in range(len(rows)) if i not in bad]
    if bad:
        conn.execute(
            update(usage_events)
            .where(usage_events.c.seq.in_([rows[i].seq for i in sorted(bad)]))
            .values(epoch=REJECTED_EPOCH, leaf_index=None)
        )
    if not good:
        return SealResult(epoch, None, [], rejected)
    kept = [rows[i] for i in good]
    build = build_epoch(epoch, [events[i] for i in good], domain, fee_bps)
    for leaf_index, row in enumerate(kept):
        conn.execute(
            update(usage_events)
            .where(usage_events.c.seq == row.seq)
            .values(epoch=epoch, leaf_index=leaf_index)
        )
    names: dict[tuple[str, bytes], tuple[str, str]] = {}
    for row, signed in zip(kept, (events[i] for i in good), strict=True):
        names.setdefault(
            (signed.event.tenant, signed.event.provider_id), (row.tenant_id, row.provider)
        )
    conn.execute(
        epochs.insert(),
        {
            "epoch": epoch,
            "chain_id": domain.chain_id,
            "receipts": domain.verifying_contract,
            "events_root": "0x" + build.events_root.hex(),
            "lines_root": "0x" + build.lines_root.hex(),
            "line_count": len(build.lines),
            "total_micro": build.total_micro,
            "first_seq": kept[0].seq,
            "last_seq": kept[-1].seq,
            "state": "sealed",
            "signers": "[]",
            "excluded": "[]",
            "created_at_us": now_us,
        },
    )
    for index, line in enumerate(build.lines):
        tenant_id, provider = names[(line.tenant, line.provider_id)]
        conn.execute(
            epoch_lines.insert(),
            {
                "epoch": epoch,
                "line_index": index,
                "tenant_id": tenant_id,
                "tenant_address": line.tenant,
                "provider": provider,
                "provider_id": "0x" + line.provider_id.hex(),
                "amount_micro": line.amount_micro,
                "fee_micro": line.fee_micro,
                "leaf": "0x" + line.leaf().hex(),
            },
        )
    if build.unsettled:
        log.warning(
            "epoch %d: %d event(s) of tenants without a wallet make no settlement line",
            epoch,
            len(build.unsettled),
        )
    return SealResult(epoch, build, [r.seq for r in kept], rejected)


def next_epoch_number(conn: Connection, on_chain_next: int) -> int:
    highest = conn.execute(select(func.max(epochs.c.epoch))).scalar()
    return max(on_chain_next, int(highest or 0) + 1)


def epoch_events(conn: Connection, epoch: int) -> list[Any]:
    """The usage_events rows of a sealed epoch, in leaf order."""
    return list(
        conn.execute(
            select(usage_events)
            .where(usage_events.c.epoch == epoch)
            .order_by(usage_events.c.leaf_index)
        ).all()
    )


def receipt_document(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """The proof of one usage event (``apicredits.oracle.verify``'s receipt format), from
    the database: None while its epoch is not sealed (or the event was rejected)."""
    row = conn.execute(select(usage_events).where(usage_events.c.event_id == event_id)).first()
    if row is None or row.epoch in (None, REJECTED_EPOCH) or row.leaf_index is None:
        return None
    epoch = conn.execute(select(epochs).where(epochs.c.epoch == row.epoch)).one()
    domain = UsageDomain(int(epoch.chain_id), epoch.receipts)
    rows = epoch_events(conn, int(row.epoch))
    events = [SignedUsageEvent.from_document(json.loads(r.document)) for r in rows]
    tree = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, [(e.event.digest(domain),) for e in events])
    signed = events[int(row.leaf_index)]
    doc: dict[str, Any] = {
        "event": signed.to_document(),
        "digest": "0x" + signed.event.digest(domain).hex(),
        "chain_id": domain.chain_id,
        "receipts": domain.verifying_contract,
        "epoch": int(row.epoch),
        "leaf_index": int(row.leaf_index),
        "events_root": epoch.events_root,
        "events_proof": ["0x" + p.hex() for p in tree.proof(int(row.leaf_index))],
        "lines_root": epoch.lines_root,
        "submit_tx": epoch.submit_tx,
        "submit_block": epoch.submit_block,
        "line": None,
        "line_index": None,
        "lines_proof": [],
        "executed_tx": None,
        "executed_block": None,
    }
    lines = conn.execute(
        select(epoch_lines)
        .where(epoch_lines.c.epoch == row.epoch)
        .order_by(epoch_lines.c.line_index)
    ).all()
    if not lines:
        return doc
    values = [
        SettlementLine(int(row.epoch), ln.tenant_address, bytes.fromhex(ln.provider_id[2:]),
                       int(ln.amount_micro), int(ln.fee_micro))
        for ln in lines
    ]  # fmt: skip
    lines_tree = MerkleTree.build(SETTLEMENT_LINE_TYPES, [v.values() for v in values])
    for i, (line, ln) in enumerate(zip(values, lines, strict=True)):
        if (line.tenant, line.provider_id) == (signed.event.tenant, signed.event.provider_id):
            doc.update(
                line={"epoch": line.epoch, "tenant": line.tenant,
                      "provider_id": "0x" + line.provider_id.hex(),
                      "amount_micro": line.amount_micro, "fee_micro": line.fee_micro},
                line_index=i,
                lines_proof=["0x" + p.hex() for p in lines_tree.proof(i)],
                executed_tx=ln.executed_tx,
                executed_block=ln.executed_block,
            )  # fmt: skip
    return doc
