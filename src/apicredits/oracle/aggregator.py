"""The aggregator: collect t-of-n shares, aggregate, submit, execute lines.

``collect_shares`` asks every node at once and checks each answer against the chain: the
public key must be a registered, active oracle's (``oracle_key_hash``) and the share must
verify (``bls.verify``) over the message *the aggregator* computed. A node that signs
anything else (a different root) is **excluded** and reported; a node that refuses (with its
reasons) or does not answer is reported too but is not byzantine. Settlement goes on while
``threshold`` valid shares remain. ``aggregate`` sums the first ``threshold`` shares by
oracle index into the bitmap, keys and signature ``UsageReceipts.submit_epoch`` takes.

``Settler`` (``apicredits settle``) drives one database and one chain: it seals the next
epoch (``seal_epoch``), has it signed and submits it (state ``submitted``), reads the epoch's
record back from its ``EpochSubmitted`` log (``records.committed_epoch``: the record must
match the commitment UsageReceipts stores), waits out the treasury's dispute window from the
record's ``submitted_at``, executes the lines in batches of at most ``MAX_BATCH``
(``execute_lines`` with the record; recording each line's tx), marks the epoch ``settled``
and posts the receipt to the gateway's ``POST /v1/oracle/receipt``. Every step is recorded
in the ``epochs``/``epoch_lines`` rows (the record is found again from ``submit_block``), so
a restarted settler resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Connection, select, update

from apicredits.chain import Chain, Deployment, Receipt, TransactionReverted
from apicredits.chain.deployment import LOCAL_CHAIN_IDS
from apicredits.db import Database
from apicredits.db.schema import epoch_lines, epochs
from apicredits.metering.events import SignedUsageEvent, UsageDomain
from apicredits.oracle import bls
from apicredits.oracle.epochs import (
    EpochBuild,
    build_epoch,
    epoch_events,
    job_references,
    next_epoch_number,
    resolve_jobs,
    seal_epoch,
)
from apicredits.oracle.merkle import keccak256
from apicredits.oracle.messages import EpochSummary
from apicredits.oracle.node import SignRequest, line_document
from apicredits.oracle.records import CommittedEpoch, EpochRecord, committed_epoch
from apicredits.oracle.validation import (
    RegistryHistory,
    Rejection,
    TariffLookup,
    as_bytes,
    registry_history_from_chain,
    validate_events,
)

__all__ = [
    "MAX_BATCH",
    "Settler",
    "Share",
    "aggregate",
    "collect_shares",
    "execute_epoch_lines",
    "registered_oracles",
    "submit_epoch",
]

log = logging.getLogger("apicredits.oracle.aggregator")

MAX_BATCH = 32  # SettlementTreasury.MAX_BATCH


@dataclass(frozen=True, slots=True)
class Share:
    node: str
    index: int
    public_key: bytes
    signature: bytes


def registered_oracles(chain: Chain, receipts: str) -> dict[bytes, int]:
    """Active oracle indexes by the keccak256 of their public key."""
    count = int(chain.call(receipts, "usage_receipts", "oracle_count"))
    found = {}
    for index in range(count):
        key_hash = as_bytes(chain.call(receipts, "usage_receipts", "oracle_key_hash", index))
        if key_hash != bytes(32):
            found[key_hash] = index
    return found


def _hex(value: Any, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError("not 0x-hex")
    data = bytes.fromhex(value[2:])
    if size is not None and len(data) != size:
        raise ValueError(f"not {size} bytes")
    return data


async def collect_shares(
    request: SignRequest,
    nodes: Sequence[str],
    registered: Mapping[bytes, int],
    *,
    node_timeout: float = 30.0,
    transport: Callable[[str], httpx.AsyncBaseTransport] | None = None,
) -> tuple[list[Share], list[dict[str, Any]]]:
    """Valid shares (one per oracle index) and a report of every node that gave none."""
    message = request.summary.message()
    body = request.to_document()

    async def ask(url: str) -> Share | dict[str, Any]:
        kwargs: dict[str, Any] = {"timeout": node_timeout}
        if transport is not None:
            kwargs["transport"] = transport(url)
        try:
            async with httpx.AsyncClient(**kwargs) as client:
                response = await client.post(url.rstrip("/") + "/v1/epochs/sign", json=body)
        except httpx.HTTPError as exc:
            return {"node": url, "kind": "unreachable", "reason": f"{type(exc).__name__}: {exc}"}
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        if response.status_code != 200:
            reasons = doc.get("reasons") if isinstance(doc, dict) else None
            return {"node": url, "kind": "refused", "status": response.status_code,
                    "reasons": reasons or [response.text[:200]]}  # fmt: skip
        try:
            public_key = _hex(doc["public_key"], bls.G2_SIZE)
            signature = _hex(doc["signature"], bls.G1_SIZE)
        except (KeyError, TypeError, ValueError) as exc:
            return {"node": url, "kind": "byzantine", "reason": f"malformed share: {exc}"}
        index = registered.get(keccak256(public_key))
        if index is None:
            return {"node": url, "kind": "byzantine", "reason": "key is not a registered oracle"}
        if not bls.verify(public_key, message, signature):
            reason = "share does not verify over the epoch message (signed another root)"
            return {"node": url, "kind": "byzantine", "index": index, "reason": reason}
        return Share(url, index, public_key, signature)

    answers = await asyncio.gather(*(ask(url) for url in nodes))
    shares: dict[int, Share] = {}
    excluded: list[dict[str, Any]] = []
    for answer in answers:
        if isinstance(answer, Share):
            if answer.index in shares:
                excluded.append({"node": answer.node, "kind": "duplicate", "index": answer.index})
            else:
                shares[answer.index] = answer
            continue
        excluded.append(answer)
        level = logging.ERROR if answer["kind"] == "byzantine" else logging.WARNING
        why = answer.get("reason") or answer.get("reasons")
        epoch = request.summary.epoch
        log.log(
            level, "epoch %d: node %s excluded (%s): %s", epoch, answer["node"], answer["kind"], why
        )
    return [shares[i] for i in sorted(shares)], excluded


class NotEnoughShares(Exception):
    pass


def aggregate(shares: Sequence[Share], threshold: int) -> tuple[int, bytes, bytes, list[int]]:
    """(bitmap, concatenated keys in index order, aggregate signature, signer indexes)."""
    chosen = sorted(shares, key=lambda s: s.index)[:threshold]
    if len(chosen) < threshold:
        raise NotEnoughShares(f"{len(chosen)} valid share(s), threshold {threshold}")
    bitmap = sum(1 << s.index for s in chosen)
    keys = b"".join(s.public_key for s in chosen)
    signature = bls.aggregate_signatures(s.signature for s in chosen)
    return bitmap, keys, signature, [s.index for s in chosen]


def submit_epoch(
    chain: Chain, receipts: str, summary: EpochSummary, bitmap: int, keys: bytes, signature: bytes
) -> Receipt:
    return chain.transact(
        receipts,
        "usage_receipts",
        "submit_epoch",
        summary.epoch,
        summary.events_root,
        summary.lines_root,
        summary.line_count,
        summary.total_micro,
        bitmap,
        keys,
        signature,
    )


def execute_epoch_lines(
    chain: Chain,
    treasury: str,
    build: EpochBuild,
    record: EpochRecord,
    indexes: Sequence[int],
    batch: int = MAX_BATCH,
) -> list[tuple[list[int], Receipt]]:
    """Execute lines ``indexes`` of ``build`` in batches, with the epoch's on-chain
    ``record``; one receipt per batch."""
    done = []
    batch = max(1, min(batch, MAX_BATCH))
    for start in range(0, len(indexes), batch):
        part = list(indexes[start : start + batch])
        lines = [build.lines[i].values()[1:] for i in part]
        proofs = [build.line_proof(i) for i in part]
        receipt = chain.transact(
            treasury, "settlement_treasury", "execute_lines", build.epoch, record.values(),
            lines, proofs,
        )  # fmt: skip
        done.append((part, receipt))
    return done


# --- the settler ------------------------------------------------------------------------------


@dataclass
class EpochReport:
    epoch: int
    state: str
    events: int = 0
    lines: int = 0
    total_micro: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    signers: list[int] = field(default_factory=list)
    submit_tx: str | None = None
    executed_txs: list[str] = field(default_factory=list)
    unsettled_events: int = 0
    gateway: dict[str, Any] | None = None
    error: str | None = None

    def to_document(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Settler:
    def __init__(
        self,
        db: Database,
        chain: Chain,
        deployment: Deployment,
        nodes: Sequence[str],
        *,
        tariffs: TariffLookup,
        fee_bps: int,
        gateway_meter: str | None,
        max_events: int = 1000,
        max_seconds: float = 60.0,
        batch: int = MAX_BATCH,
        gateway_url: str | None = None,
        admin_token: str | None = None,
        node_timeout: float = 30.0,
        transport: Callable[[str], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.db = db
        self.chain = chain
        self.deployment = deployment
        self.nodes = list(nodes)
        self.tariffs = tariffs
        self.fee_bps = fee_bps
        self.gateway_meter = gateway_meter
        self.max_events = max_events
        self.max_seconds = max_seconds
        self.batch = batch
        self.gateway_url = gateway_url
        self.admin_token = admin_token
        self.node_timeout = node_timeout
        self.transport = transport
        self.domain = UsageDomain(chain.chain_id, deployment.receipts)

    # -- chain reads (sync; run in a thread)
    def _registry(self) -> RegistryHistory:
        d = self.deployment
        return registry_history_from_chain(
            self.chain, d.address("provider_registry"), d.deploy_block
        )

    def _validator(
        self,
    ) -> Callable[[Sequence[SignedUsageEvent], Mapping[bytes, int]], list[Rejection]]:
        registry = self._registry()

        def validate(
            events: Sequence[SignedUsageEvent], locks: Mapping[bytes, int]
        ) -> list[Rejection]:
            return validate_events(
                events, self.domain, registry, self.tariffs, locks.get, self.gateway_meter
            )

        return validate

    async def run_once(self, *, wait: bool = True) -> list[EpochReport]:
        """Advance every unfinished epoch, then seal and settle a new one if one is due."""
        reports = []
        for epoch, state in await self.db.read(_unfinished):
            reports.append(await self._advance(epoch, state, wait=wait))
            if reports[-1].state == "sealed":
                return reports  # epochs go on chain in order: this one must go first
        sealed = await self.seal()
        if sealed is not None:
            if sealed.state == "sealed":
                reports.append(
                    await self._advance(sealed.epoch, "sealed", wait=wait, report=sealed)
                )
            else:
                reports.append(sealed)
        return reports

    async def seal(self) -> EpochReport | None:
        on_chain = int(await asyncio.to_thread(
            self.chain.call, self.deployment.receipts, "usage_receipts", "next_epoch"
        ))  # fmt: skip
        validate = await asyncio.to_thread(self._validator)
        now_us = time.time_ns() // 1000

        def work(conn: Connection) -> Any:
            number = next_epoch_number(conn, on_chain)
            return seal_epoch(
                conn, epoch=number, domain=self.domain, fee_bps=self.fee_bps, validate=validate,
                max_events=self.max_events, max_seconds=self.max_seconds, now_us=now_us,
            )  # fmt: skip

        result = await self.db.write(work)
        if result is None:
            return None
        rejected = [r.to_document() for r in result.rejected]
        if result.build is None:
            return EpochReport(result.epoch, "rejected", rejected=rejected)
        b = result.build
        log.info("sealed epoch %d: %d events, %d lines", b.epoch, len(b.digests), len(b.lines))
        return EpochReport(b.epoch, "sealed", len(b.digests), len(b.lines), b.total_micro,
                           rejected=rejected, unsettled_events=len(b.unsettled))  # fmt: skip

    async def _load(self, epoch: int) -> tuple[EpochBuild, dict[bytes, str], Any]:
        def work(conn: Connection) -> tuple[list[Any], dict[str, list[str]], Any]:
            rows = epoch_events(conn, epoch)
            refs = job_references(conn, [r.request_id for r in rows])
            row = conn.execute(select(epochs).where(epochs.c.epoch == epoch)).one()
            return rows, refs, row

        rows, refs, row = await self.db.read(work)
        events = [SignedUsageEvent.from_document(json.loads(r.document)) for r in rows]
        build = build_epoch(epoch, events, self.domain, self.fee_bps)
        if "0x" + build.events_root.hex() != row.events_root:
            raise RuntimeError(f"epoch {epoch}: rebuilt events root differs from the sealed one")
        jobs = resolve_jobs(events, [refs.get(r.request_id, []) for r in rows])
        return build, jobs, row

    async def _advance(
        self, epoch: int, state: str, *, wait: bool, report: EpochReport | None = None
    ) -> EpochReport:
        build, jobs, row = await self._load(epoch)
        report = report or EpochReport(epoch, state, len(build.digests), len(build.lines),
                                       build.total_micro)  # fmt: skip
        if state == "sealed":
            state = await self._sign_and_submit(build, jobs, report)
            if state != "submitted":
                report.state = state
                return report
        else:
            report.submit_tx = row.submit_tx
        report.state = await self._execute(build, report, wait=wait)
        if report.state == "settled":
            report.gateway = await self._post_receipt(epoch)
        return report

    async def _sign_and_submit(
        self, build: EpochBuild, jobs: dict[bytes, str], report: EpochReport
    ) -> str:
        d = self.deployment
        summary = build.summary(self.domain)
        request = SignRequest(summary, await self._events(build.epoch), jobs,
                              [line_document(line) for line in build.lines])  # fmt: skip
        registered = await asyncio.to_thread(registered_oracles, self.chain, d.receipts)
        threshold = int(await asyncio.to_thread(
            self.chain.call, d.receipts, "usage_receipts", "threshold"
        ))  # fmt: skip
        shares, excluded = await collect_shares(
            request,
            self.nodes,
            registered,
            node_timeout=self.node_timeout,
            transport=self.transport,
        )
        report.excluded = excluded
        try:
            bitmap, keys, signature, signers = aggregate(shares, threshold)
        except NotEnoughShares as exc:
            log.error("epoch %d not submitted: %s", build.epoch, exc)
            await self.db.write(lambda c: _set_epoch(c, build.epoch, excluded=json.dumps(excluded)))
            return "sealed"
        try:
            receipt = await asyncio.to_thread(
                submit_epoch, self.chain, d.receipts, summary, bitmap, keys, signature
            )
        except TransactionReverted as exc:
            log.error("epoch %d: submission reverted: %s", build.epoch, exc)
            report.error = str(exc)
            await self.db.write(lambda c: _set_epoch(c, build.epoch, excluded=json.dumps(excluded)))
            return "sealed"
        report.signers, report.submit_tx = signers, receipt.tx_hash
        log.info("epoch %d submitted in %s (signers %s)", build.epoch, receipt.tx_hash, signers)
        now_us = time.time_ns() // 1000
        await self.db.write(lambda c: _set_epoch(
            c, build.epoch, state="submitted", signers=json.dumps(signers),
            excluded=json.dumps(excluded), submit_tx=receipt.tx_hash,
            submit_block=receipt.block_number, submitted_at_us=now_us,
        ))  # fmt: skip
        return "submitted"

    async def _events(self, epoch: int) -> list[SignedUsageEvent]:
        rows = await self.db.read(lambda c: epoch_events(c, epoch))
        return [SignedUsageEvent.from_document(json.loads(r.document)) for r in rows]

    def _committed(self, epoch: int, submit_block: Any) -> CommittedEpoch:
        d = self.deployment
        head = self.chain.block_number()
        return committed_epoch(
            self.chain, d.receipts, epoch, d.deploy_block, head, hint_block=submit_block
        )

    async def _record(self, build: EpochBuild, report: EpochReport) -> EpochRecord | None:
        """The epoch's record on chain, if it is this build's and not void (else says why)."""
        submit_block = await self.db.read(lambda c: c.execute(
            select(epochs.c.submit_block).where(epochs.c.epoch == build.epoch)
        ).scalar())  # fmt: skip
        hint = int(submit_block) if submit_block is not None else None
        committed = await asyncio.to_thread(self._committed, build.epoch, hint)
        record = committed.record
        if record is None:
            report.error = committed.problem
        elif committed.voided:
            report.error = f"epoch {build.epoch} was voided on chain"
        elif (record.events_root, record.lines_root) != (build.events_root, build.lines_root):
            report.error = f"epoch {build.epoch} on chain has other roots than the sealed one"
        else:
            return record
        log.error("epoch %d lines not executed: %s", build.epoch, report.error)
        return None

    async def _execute(self, build: EpochBuild, report: EpochReport, *, wait: bool) -> str:
        d = self.deployment
        if build.lines:
            record = await self._record(build, report)
            if record is None:
                return "submitted"
            window = int(await asyncio.to_thread(
                self.chain.call, d.treasury, "settlement_treasury", "dispute_window"
            ))  # fmt: skip
            opens = record.submitted_at + window
            while True:
                head = await asyncio.to_thread(self.chain.block_timestamp)
                if head >= opens:
                    break
                if time.time() >= opens and self.chain.chain_id in LOCAL_CHAIN_IDS:
                    # A dev chain mines only on transactions: move its clock with a block.
                    await asyncio.to_thread(self.chain.mine, 1)
                    continue
                if not wait:
                    return "submitted"
                await asyncio.sleep(min(5.0, max(0.2, opens - time.time())))
            pending_rows = await self.db.read(lambda c: c.execute(
                select(epoch_lines.c.line_index).where(
                    epoch_lines.c.epoch == build.epoch, epoch_lines.c.executed_tx.is_(None)
                ).order_by(epoch_lines.c.line_index)
            ).all())  # fmt: skip
            pending = [int(r.line_index) for r in pending_rows]
            for start in range(0, len(pending), self.batch):
                part = pending[start : start + self.batch]
                try:
                    done = await asyncio.to_thread(
                        execute_epoch_lines, self.chain, d.treasury, build, record, part,
                        self.batch,
                    )  # fmt: skip
                except TransactionReverted as exc:
                    log.error("epoch %d lines %s not executed: %s", build.epoch, part, exc)
                    report.error = str(exc)
                    return "submitted"
                for indexes, receipt in done:
                    report.executed_txs.append(receipt.tx_hash)
                    await self.db.write(_mark_executed(build.epoch, indexes, receipt))
        await self.db.write(lambda c: _set_epoch(c, build.epoch, state="settled"))
        log.info("epoch %d settled (%d lines)", build.epoch, len(build.lines))
        return "settled"

    async def _post_receipt(self, epoch: int) -> dict[str, Any] | None:
        if self.gateway_url is None:
            return None

        def work(conn: Connection) -> tuple[Any, list[Any]]:
            row = conn.execute(select(epochs).where(epochs.c.epoch == epoch)).one()
            lines = conn.execute(select(epoch_lines).where(epoch_lines.c.epoch == epoch)).all()
            return row, list(lines)

        row, lines = await self.db.read(work)
        body = {
            "epoch": epoch,
            "chain_id": int(row.chain_id),
            "receipts": row.receipts,
            "events_root": row.events_root,
            "lines_root": row.lines_root,
            "submit_tx": row.submit_tx,
            "submit_block": row.submit_block,
            "lines": [
                {"line_index": ln.line_index, "executed_tx": ln.executed_tx,
                 "executed_block": ln.executed_block, "amount_micro": int(ln.amount_micro),
                 "fee_micro": int(ln.fee_micro), "leaf": ln.leaf}
                for ln in lines
            ],
        }  # fmt: skip
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                response = await client.post(
                    self.gateway_url.rstrip("/") + "/v1/oracle/receipt", json=body, headers=headers
                )
            doc: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.error("epoch %d: posting the receipt to the gateway failed: %s", epoch, exc)
            return {"error": str(exc)}
        if doc.get("alert"):
            log.error("epoch %d: the gateway reports a mismatch: %s", epoch, doc.get("mismatches"))
        return doc


def _mark_executed(epoch: int, indexes: list[int], receipt: Receipt) -> Callable[[Connection], Any]:
    def work(conn: Connection) -> Any:
        return conn.execute(
            update(epoch_lines)
            .where(epoch_lines.c.epoch == epoch, epoch_lines.c.line_index.in_(indexes))
            .values(executed_tx=receipt.tx_hash, executed_block=receipt.block_number)
        )

    return work


def _unfinished(conn: Connection) -> list[tuple[int, str]]:
    rows = conn.execute(
        select(epochs.c.epoch, epochs.c.state)
        .where(epochs.c.state.in_(["sealed", "submitted"]))
        .order_by(epochs.c.epoch)
    ).all()
    return [(int(r.epoch), str(r.state)) for r in rows]


def _set_epoch(conn: Connection, epoch: int, **values: Any) -> None:
    conn.execute(update(epochs).where(epochs.c.epoch == epoch).values(**values))
