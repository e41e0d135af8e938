"""Check a usage receipt against the chain, trusting nothing the gateway says.

A receipt (``apicredits.oracle.epochs.receipt_document`` builds one; the gateway's
``GET /v1/usage/{event_id}/proof`` document is read too, see ``normalise``) is::

    {"event": {"event": {...}, "signature": "0x..."},   a SignedUsageEvent document
     "digest": "0x...", "epoch": 3, "leaf_index": 0, "events_root": "0x...",
     "events_proof": ["0x...", ...],
     "line": {"epoch", "tenant", "provider_id", "amount_micro", "fee_micro"} or null,
     "line_index": 0, "lines_root": "0x...", "lines_proof": [...],
     "submit_tx": "0x...", "submit_block": 120, "executed_tx": "0x...", "executed_block": 123}

``verify_receipt`` recomputes the event's EIP-712 digest for *this chain's* UsageReceipts
(from the deployment, not the receipt), recovers its signer and checks it against the
ProviderRegistry history at the event's time (or the gateway meter the caller trusts),
finds the epoch's ``EpochSubmitted`` log (in ``submit_block`` first, a hint only, then
from the deployment's block on) and requires the record it carries to hash to the
commitment UsageReceipts stores for the epoch (``apicredits.oracle.records``), proves the
digest into that record's events root and the line into its lines root, checks the line is
this event's tenant and provider, and that the treasury marks it executed with a matching
``LineExecuted`` log (in ``executed_tx`` when given). Each check is a ``Check``; a failed
one says what differs.

A ``ChainReader`` holds what the checks read from the chain for one run: verifying a usage
export of thousands of receipts replays the registry history once and looks up each epoch's
commitment and each line's execution once, not once per receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apicredits.chain import Chain, Deployment
from apicredits.errors import ApicreditsError
from apicredits.metering.events import Meter, SignedUsageEvent, UsageDomain, recover_signer
from apicredits.metering.store import hex32
from apicredits.oracle.merkle import process_proof
from apicredits.oracle.messages import SettlementLine, usage_event_leaf
from apicredits.oracle.records import CommittedEpoch, committed_epoch
from apicredits.oracle.validation import (
    CHAIN_CLOCK_SKEW,
    STATUS_ACTIVE,
    RegistryHistory,
    as_bytes,
    registry_history_from_chain,
)

if TYPE_CHECKING:
    from apicredits.chain import EventLog

__all__ = ["ChainReader", "Check", "verify_receipt"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        if self.ok:
            return f"{self.name}: ok" + (f" ({self.detail})" if self.detail else "")
        return f"{self.name}: FAILED — {self.detail}"


class ChainReader:
    """The chain as one verification run sees it: the head read once, and every lookup the
    checks make remembered, so receipts that share an epoch, a provider or a settlement line
    cost one query between them."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self.chain, self.deployment = chain, deployment
        self.head = chain.block_number()
        self._registry: RegistryHistory | None = None
        self._epochs: dict[int, CommittedEpoch] = {}
        self._executed: dict[bytes, bool] = {}
        self._line_logs: dict[tuple[Any, ...], list[EventLog]] = {}

    def registry(self) -> RegistryHistory:
        if self._registry is None:
            d = self.deployment
            self._registry = registry_history_from_chain(
                self.chain, d.address("provider_registry"), d.deploy_block
            )
        return self._registry

    def epoch(self, epoch: int, hint_block: Any) -> CommittedEpoch:
        if epoch not in self._epochs:
            d = self.deployment
            self._epochs[epoch] = committed_epoch(
                self.chain, d.receipts, epoch, d.deploy_block, self.head, hint_block=hint_block
            )
        return self._epochs[epoch]

    def executed(self, leaf: bytes) -> bool:
        if leaf not in self._executed:
            treasury = self.deployment.treasury
            self._executed[leaf] = bool(
                self.chain.call(treasury, "settlement_treasury", "executed", leaf)
            )
        return self._executed[leaf]

    def line_logs(self, line: SettlementLine, block: Any) -> list[EventLog]:
        """``LineExecuted`` logs of this line's epoch, tenant and provider (in ``block``
        only, when the receipt names it)."""
        lo = int(block) if type(block) is int else self.deployment.deploy_block
        hi = int(block) if type(block) is int else self.head
        key = (line.epoch, line.tenant.lower(), line.provider_id, lo, hi)
        if key not in self._line_logs:
            where = {"epoch": line.epoch, "tenant": line.tenant, "provider_id": line.provider_id}
            self._line_logs[key] = self.chain.logs(
                self.deployment.treasury, "settlement_treasury", "LineExecuted", lo, hi,
                where=where,
            )  # fmt: skip
        return self._line_logs[key]


def _proof(value: Any) -> list[bytes]:
    if not isinstance(value, list):
        raise ValueError("a proof is a list of 0x-hex hashes")
    out = []
    for item in value:
        node = as_bytes(item)
        if len(node) != 32:
            raise ValueError("a proof node is 32 bytes")
        out.append(node)
    return out


def normalise(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway's ``GET /v1/usage/{event_id}/proof`` document (``signed_event``, ``epoch``
    as an object, ``proof``, ``settlement: [...]``) in this module's flat receipt form."""
    doc = dict(receipt)
    if "signed_event" in doc and "event" not in doc:
        doc["event"] = doc["signed_event"]
    if isinstance(doc.get("epoch"), Mapping):
        doc["epoch"] = doc["epoch"].get("epoch")
    if "events_proof" not in doc and "proof" in doc:
        doc["events_proof"] = doc["proof"]
    submission = doc.get("receipt")
    if isinstance(submission, Mapping):
        doc.setdefault("submit_tx", submission.get("tx"))
        doc.setdefault("submit_block", submission.get("block"))
    settlement = doc.get("settlement")
    if "line" not in doc and isinstance(settlement, list) and settlement:
        item = settlement[0]
        doc["line"] = {
            "epoch": doc.get("epoch"),
            "tenant": item.get("tenant_address"),
            "provider_id": item.get("provider_id"),
            "amount_micro": item.get("amount_micro"),
            "fee_micro": item.get("fee_micro"),
        }
        doc["line_index"] = item.get("line_index")
        doc["lines_root"] = item.get("lines_root")
        doc["lines_proof"] = item.get("proof")
        doc["executed_tx"] = item.get("executed_tx")
        doc["executed_block"] = item.get("executed_block")
    return doc


def _signed_event(receipt: Mapping[str, Any]) -> SignedUsageEvent:
    doc = receipt.get("event")
    if isinstance(doc, Mapping) and "signature" not in doc and "signature" in receipt:
        doc = {"event": doc, "signature": receipt["signature"]}
    return SignedUsageEvent.from_document(doc)


def verify_receipt(
    receipt: Mapping[str, Any],
    chain: Chain,
    deployment: Deployment,
    *,
    gateway_meter: str | None = None,
    reader: ChainReader | None = None,
) -> list[Check]:
    """Every check, in order; later checks are skipped (and say so) when they cannot run.
    Pass one ``reader`` to every call of a run to share its chain lookups."""
    if reader is None:
        reader = ChainReader(chain, deployment)
    checks: list[Check] = []
    domain = UsageDomain(chain.chain_id, deployment.receipts)
    receipt = normalise(receipt)

    # 1. the event and its digest
    try:
        signed = _signed_event(receipt)
    except ApicreditsError as exc:
        return [Check("event", False, f"not a signed usage event: {exc.message}")]
    event = signed.event
    digest = event.digest(domain)
    claimed = receipt.get("digest")
    if claimed is not None and str(claimed).lower() != hex32(digest):
        checks.append(Check("event digest", False,
                            f"recomputed {hex32(digest)}, receipt says {claimed}"))  # fmt: skip
    else:
        checks.append(Check("event digest", True, hex32(digest)))

    # 2. who signed it
    try:
        signer = recover_signer(signed, domain)
    except ApicreditsError as exc:
        checks.append(Check("event signature", False, exc.message))
        signer = None
    if signer is not None:
        if event.meter is Meter.GATEWAY:
            if gateway_meter is None:
                why = f"signed by {signer} as gateway meter; pass --gateway-meter to trust one"
                checks.append(Check("event signature", False, why))
            elif signer.lower() != gateway_meter.lower():
                checks.append(Check("event signature", False,
                    f"signed by {signer}, not the gateway meter {gateway_meter}"))  # fmt: skip
            else:
                checks.append(Check("event signature", True, f"gateway meter {signer}"))
        else:
            history = reader.registry()
            at = event.timestamp + CHAIN_CLOCK_SKEW  # see validation.CHAIN_CLOCK_SKEW
            registered = history.signer_at(event.provider_id, at)
            status = history.status_at(event.provider_id, at)
            if registered is None or registered != signer.lower():
                checks.append(Check("event signature", False,
                    f"signed by {signer}; the provider's registered signer at "
                    f"{event.timestamp} is {registered}"))  # fmt: skip
            elif status != STATUS_ACTIVE:
                checks.append(Check("event signature", False, f"provider status was {status}"))
            else:
                checks.append(Check("event signature", True, f"provider signer {signer}"))

    # 3. the epoch on chain
    epoch = receipt.get("epoch")
    if type(epoch) is not int or epoch < 1:
        state = receipt.get("state")
        why = f"receipt names no epoch ({epoch!r})" + (f"; state {state}" if state else "")
        checks.append(Check("epoch on chain", False, why))
        return checks
    committed = reader.epoch(epoch, receipt.get("submit_block"))
    if committed.record is None:
        checks.append(Check("epoch on chain", False, committed.problem or "no record"))
        return checks
    events_root, lines_root = committed.record.events_root, committed.record.lines_root
    problems = []
    if committed.voided:
        problems.append("the epoch was voided")
    for name, ours in (("events_root", events_root), ("lines_root", lines_root)):
        theirs = receipt.get(name)
        if theirs is not None and str(theirs).lower() != hex32(ours):
            problems.append(f"receipt {name} {theirs} != committed on chain {hex32(ours)}")
    checks.append(Check("epoch on chain", not problems, "; ".join(problems) or
                        f"epoch {epoch}, events root {hex32(events_root)}"))  # fmt: skip

    # 4. the event is in the epoch's events tree
    try:
        computed = process_proof(usage_event_leaf(digest), _proof(receipt.get("events_proof")))
    except (ValueError, ApicreditsError) as exc:
        checks.append(Check("merkle proof", False, f"unreadable events proof: {exc}"))
    else:
        ok = computed == events_root
        why = f"proof leads to {hex32(computed)}, the on-chain events root is {hex32(events_root)}"
        checks.append(
            Check("merkle proof", ok, "digest proven into the events root" if ok else why)
        )

    # 5. the settlement line
    line_doc = receipt.get("line")
    if line_doc is None:
        checks.append(Check("settlement line", event.tenant != "0x" + "00" * 20,
                            "no line: the tenant has no wallet, nothing settles on chain"
                            if event.tenant == "0x" + "00" * 20
                            else "the receipt carries no settlement line"))  # fmt: skip
        return checks
    try:
        line = SettlementLine(
            int(line_doc["epoch"]), str(line_doc["tenant"]), as_bytes(line_doc["provider_id"]),
            int(line_doc["amount_micro"]), int(line_doc["fee_micro"]),
        )  # fmt: skip
        lines_proof = _proof(receipt.get("lines_proof"))
    except (KeyError, TypeError, ValueError, ApicreditsError) as exc:
        checks.append(Check("settlement line", False, f"unreadable line or proof: {exc}"))
        return checks
    mismatch = []
    if line.epoch != epoch:
        mismatch.append(f"line epoch {line.epoch} != {epoch}")
    if line.tenant != event.tenant:
        mismatch.append(f"line tenant {line.tenant} != event tenant {event.tenant}")
    if line.provider_id != event.provider_id:
        mismatch.append("line provider differs from the event's")
    if line.amount_micro < event.cost_micro:
        mismatch.append(f"line amount {line.amount_micro} < event cost {event.cost_micro}")
    checks.append(Check("settlement line", not mismatch, "; ".join(mismatch) or
                        f"{line.amount_micro} micro (fee {line.fee_micro}) to provider "
                        f"{hex32(line.provider_id)[:10]}…"))  # fmt: skip
    leaf = line.leaf()
    computed = process_proof(leaf, lines_proof)
    ok = computed == lines_root
    why = f"proof leads to {hex32(computed)}, the on-chain lines root is {hex32(lines_root)}"
    checks.append(Check("line proof", ok, "line proven into the lines root" if ok else why))

    # 6. the line was executed exactly as proven
    if not reader.executed(leaf):
        checks.append(Check("line executed", False, "the treasury has not executed this line"))
        return checks
    logs = reader.line_logs(line, receipt.get("executed_block"))
    tx = receipt.get("executed_tx")
    matching = [
        log for log in logs
        if int(log.args["epoch"]) == epoch
        and str(log.args["tenant"]).lower() == line.tenant.lower()
        and as_bytes(log.args["provider_id"]) == line.provider_id
        and int(log.args["amount"]) == line.amount_micro
        and int(log.args["fee"]) == line.fee_micro
        and (tx is None or log.tx_hash.lower() == str(tx).lower())
    ]  # fmt: skip
    why = f"executed on chain, but no matching LineExecuted log in {tx or 'any tx'}"
    found = f"LineExecuted in {matching[0].tx_hash}" if matching else why
    checks.append(Check("line executed", bool(matching), found))
    return checks
