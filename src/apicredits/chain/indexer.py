"""``Indexer``: apply the credit vault's events to the ledger, exactly once.

- ``Deposit(tenant, payer, amount)`` credits the tenant's account (world -> tenant) and
  ``Withdraw(tenant, amount)`` debits it (tenant -> world). The vault's withdrawal delay is
  what lets the settler burn credits consumed off chain before they can be withdrawn, so
  the ledger debits when the stablecoin actually leaves.
- The tenant is whoever linked the event's ``tenant`` address (``Wallets``); an event for
  an unlinked address is recorded as ``unassigned`` and moves no credits until the address
  is linked: then the next pass applies it (same transfer id, so once), before any newer
  event of that address.
- Ledger transfer ids are ``chain:<chain id>:<tx hash>:<log index>``, a ``:<n>`` suffix for
  the n-th re-inclusion after a reorg. The ledger is idempotent by id, so a crash between
  the ledger batch and the bookkeeping write simply replays to the same transfers, and an
  event already recorded and not reversed is skipped. Two indexers on one vault therefore
  do not double-count, but a reorg or a link racing another indexer's pass could apply an
  event the other is reversing: run one (``apicredits.chain.election`` elects it). The
  ``chain:`` prefix (and a JSON memo with ``"source": "chain"``) marks on-chain credits;
  admin top-ups are ``deposit:...`` with ``"source": "admin"``.
- A reorged deposit the tenant had already spent is reversed as far as the tenant's credits
  go; the rest becomes a debt recovered from the tenant's next deposits
  (``apicredits.chain.debts``).
- Events count only under ``confirmations`` blocks. The cursor (last block and its hash)
  is durable; when the hash at the cursor changes, the indexer walks its applied events
  back to the newest block still on the chain, reverses each orphaned one with a new
  transfer ``chain-reorg:<id>`` (never an UPDATE of the ledger), and re-scans from there.
- Throughput: one ``eth_getLogs`` per block range, one ledger batch (group commit) and one
  bookkeeping transaction per range.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from apicredits.chain.base import Chain, EventLog
from apicredits.chain.debts import Credited, recover_debts, reverse_what_is_left
from apicredits.chain.deployment import Deployment
from apicredits.chain.wallets import tenants_of
from apicredits.db.schema import chain_cursors, chain_events, tenant_wallets
from apicredits.errors import ApicreditsError, IdempotencyConflict, InsufficientCredits
from apicredits.ledger import WORLD_ACCOUNT, Command, Deposit, Ledger, Move, tenant_account

log = logging.getLogger(__name__)

EVENTS = ("Deposit", "Withdraw")
MAX_AMOUNT = 2**63 - 1  # the ledger's BIGINT


@dataclass(frozen=True, slots=True)
class Cursor:
    block_number: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class SyncReport:
    head: int
    cursor: Cursor | None
    applied: int  # events recorded this pass (credited, debited, unassigned or refused)
    reversed: int  # events reversed because a reorg removed their block
    assigned: int = 0  # unassigned events applied this pass because their wallet got linked


def transfer_id(event: EventLog, generation: int) -> str:
    base = f"chain:{event.chain_id}:{event.tx_hash}:{event.log_index}"
    return base if generation == 0 else f"{base}:{generation}"


class Indexer:
    def __init__(
        self,
        chain: Chain,
        ledger: Ledger,
        deployment: Deployment,
        *,
        confirmations: int = 0,
        batch_blocks: int = 2000,
    ) -> None:
        self.chain, self.ledger, self.db = chain, ledger, ledger.db
        self.chain_id, self.vault = chain.chain_id, deployment.vault
        self.start_block = deployment.deploy_block
        self.confirmations, self.batch_blocks = confirmations, batch_blocks

    async def cursor(self) -> Cursor | None:
        stmt = select(chain_cursors).where(
            chain_cursors.c.chain_id == self.chain_id, chain_cursors.c.vault == self.vault
        )
        row = await self.db.read(lambda c: c.execute(stmt).first())
        return None if row is None else Cursor(row.block_number, row.block_hash)

    async def sync(self) -> SyncReport:
        """Apply every event confirmed since the cursor; handles a reorg first."""
        head = await asyncio.to_thread(self.chain.block_number)
        cursor, reversed_ = await self.cursor(), 0
        if cursor is not None:
            current = await asyncio.to_thread(self.chain.block_hash, cursor.block_number)
            if current != cursor.block_hash:
                cursor, reversed_ = await self._rewind(cursor)
        assigned = await self._assign()
        start = cursor.block_number + 1 if cursor else self.start_block
        applied = 0
        while start <= head - self.confirmations:
            end = min(start + self.batch_blocks - 1, head - self.confirmations)
            end_hash = await asyncio.to_thread(self.chain.block_hash, end)
            events = await asyncio.to_thread(
                self.chain.events, self.vault, "credit_vault", EVENTS, start, end
            )
            if end_hash is None or end_hash != await asyncio.to_thread(self.chain.block_hash, end):
                break  # the chain moved under the scan: the next pass sees the reorg
            applied += await self._apply(events, Cursor(end, end_hash))
            cursor, start = Cursor(end, end_hash), end + 1
        return SyncReport(head, cursor, applied, reversed_, assigned)

    # -- applying a range
    async def _apply(self, events: Sequence[EventLog], end: Cursor) -> int:
        addresses = [str(e.args["tenant"]) for e in events]

        def read(conn: Connection) -> tuple[dict[str, str], Counter[tuple[str, int]], set[Any]]:
            owners = tenants_of(conn, addresses)
            stmt = select(chain_events.c.tx_hash, chain_events.c.log_index,
                          chain_events.c.reversal_id).where(
                chain_events.c.chain_id == self.chain_id,
                chain_events.c.tx_hash.in_({e.tx_hash for e in events}),
            )  # fmt: skip
            reversed_, live = Counter[tuple[str, int]](), set()
            for r in conn.execute(stmt):
                if r.reversal_id is None:
                    live.add((r.tx_hash, r.log_index))
                else:
                    reversed_[(r.tx_hash, r.log_index)] += 1
            return owners, reversed_, live

        owners, generations, live = await self.db.read(read) if events else ({}, Counter(), set())
        # earlier unassigned events of a wallet linked since go first, in chain order
        claims = await self.db.read(lambda c: self._claims(c, set(owners))) if owners else []
        assigned, pending = self._claimed(claims)
        rows: list[dict[str, Any]] = []
        now = self.ledger.clock_us()
        for e in events:
            if (e.tx_hash, e.log_index) in live:
                continue  # recorded by another indexer meanwhile
            address, amount = str(e.args["tenant"]), int(e.args["amount"])
            tenant = owners.get(address)
            row = {"transfer_id": transfer_id(e, generations[(e.tx_hash, e.log_index)]),
                   "chain_id": self.chain_id, "vault": self.vault, "tx_hash": e.tx_hash,
                   "log_index": e.log_index, "block_number": e.block_number,
                   "block_hash": e.block_hash, "event": e.event, "address": address,
                   "tenant_id": tenant, "amount": str(amount), "status": "applied",
                   "reason": "", "reversal_id": None, "created_at_us": now}  # fmt: skip
            rows.append(row)
            if tenant is None:
                row.update(status="unassigned", reason="no tenant linked to this address")
            elif amount > MAX_AMOUNT:
                row.update(status="refused", reason="amount exceeds the ledger's range")
            else:
                pending.append((row, self._command(e, str(row["transfer_id"]), tenant, amount)))
        await self._execute(pending)
        try:
            await self.db.write(lambda c: self._record(c, rows, end, assigned))
        except IntegrityError:  # another indexer recorded this range first
            log.info(
                "chain events up to block %d were recorded by another indexer", end.block_number
            )
        return len(rows)

    async def _execute(self, pending: list[tuple[dict[str, Any], Command]]) -> None:
        results = await self.ledger.execute_many([c for _, c in pending]) if pending else []
        credited: list[Credited] = []
        for (row, command), result in zip(pending, results, strict=True):
            if isinstance(result, ApicreditsError):
                row.update(status="refused", reason=result.message)
                log.error("chain event %s not applied: %s", row["transfer_id"], result.message)
            elif isinstance(command, Deposit):
                tenant = str(row.get("owner") or row["tenant_id"])
                credited.append((tenant, command.id, command.amount))
        await recover_debts(self.ledger, self.db, credited)  # what reorgs left owed, if any

    # -- wallets linked after their events
    def _claims(self, conn: Connection, addresses: set[str] | None = None) -> list[Any]:
        """Unassigned, unreversed events whose address is linked now (to ``addresses``' owners
        when given), oldest first, with the tenant as ``owner``."""
        stmt = (
            select(chain_events, tenant_wallets.c.tenant_id.label("owner"))
            .join(tenant_wallets, tenant_wallets.c.address == chain_events.c.address)
            .where(chain_events.c.chain_id == self.chain_id, chain_events.c.vault == self.vault,
                   chain_events.c.status == "unassigned", chain_events.c.reversal_id.is_(None))
            .order_by(chain_events.c.block_number, chain_events.c.log_index)
        )  # fmt: skip
        if addresses is not None:
            stmt = stmt.where(chain_events.c.address.in_(sorted(addresses)))
        return list(conn.execute(stmt).mappings())

    def _claimed(
        self, claims: list[Any]
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], Command]]]:
        """The claimed rows (to mark) and the ledger commands of those within range."""
        rows, pending = [dict(r) for r in claims], []
        for row in rows:
            if int(row["amount"]) > MAX_AMOUNT:
                row.update(status="refused", reason="amount exceeds the ledger's range")
            else:
                pending.append((row, self._claim(row)))
        return rows, pending

    def _claim(self, row: dict[str, Any]) -> Command:
        amount = int(row["amount"])
        memo = json.dumps({"source": "chain", "chain_id": row["chain_id"],
                           "tx_hash": row["tx_hash"], "log_index": row["log_index"],
                           "block": row["block_number"], "event": row["event"],
                           "assigned_on_link": row["address"]})  # fmt: skip
        tid, account = str(row["transfer_id"]), tenant_account(str(row["owner"]))
        if row["event"] == "Deposit":
            return Deposit(tid, account, amount, memo=memo)
        return Move(tid, account, WORLD_ACCOUNT, amount, memo=memo)

    async def _assign(self) -> int:
        """Apply the unassigned events of wallets linked since they were recorded."""
        claims = await self.db.read(self._claims)
        if not claims:
            return 0
        rows, pending = self._claimed(claims)
        await self._execute(pending)
        await self.db.write(lambda c: self._mark_assigned(c, rows))
        return len(rows)

    def _mark_assigned(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            status = "refused" if row["status"] == "refused" else "applied"
            conn.execute(
                update(chain_events)
                .where(chain_events.c.transfer_id == row["transfer_id"],
                       chain_events.c.status == "unassigned")
                .values(status=status, tenant_id=row["owner"], reason=row["reason"]
                        if status == "refused" else "")
            )  # fmt: skip

    def _command(self, e: EventLog, tid: str, tenant: str, amount: int) -> Command:
        memo = json.dumps({"source": "chain", "chain_id": e.chain_id, "tx_hash": e.tx_hash,
                           "log_index": e.log_index, "block": e.block_number, "event": e.event,
                           "payer": e.args.get("payer")})  # fmt: skip
        if e.event == "Deposit":
            return Deposit(tid, tenant_account(tenant), amount, memo=memo)
        return Move(tid, tenant_account(tenant), WORLD_ACCOUNT, amount, memo=memo)

    def _record(
        self,
        conn: Connection,
        rows: list[dict[str, Any]],
        cursor: Cursor | None,
        assigned: Sequence[dict[str, Any]] = (),
    ) -> None:
        if rows:
            conn.execute(chain_events.insert(), rows)
        self._mark_assigned(conn, assigned)
        key = (chain_cursors.c.chain_id == self.chain_id) & (chain_cursors.c.vault == self.vault)
        if cursor is None:
            conn.execute(delete(chain_cursors).where(key))
            return
        values = {"chain_id": self.chain_id, "vault": self.vault, "updated_at_us":
                  self.ledger.clock_us(), "block_number": cursor.block_number,
                  "block_hash": cursor.block_hash}  # fmt: skip
        factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = factory(chain_cursors).values(values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["chain_id", "vault"], set_=values))

    # -- reorgs
    async def _rewind(self, cursor: Cursor) -> tuple[Cursor | None, int]:
        """Reverse the events of blocks no longer on the chain; returns the new cursor (the
        newest recorded block still on the chain, or None) and how many were reversed."""
        stmt = (
            select(chain_events)
            .where(chain_events.c.chain_id == self.chain_id, chain_events.c.vault == self.vault,
                   chain_events.c.reversal_id.is_(None),
                   chain_events.c.block_number <= cursor.block_number)
            .order_by(chain_events.c.block_number.desc())
        )  # fmt: skip
        rows = await self.db.read(lambda c: c.execute(stmt).all())
        orphaned: list[Any] = []
        ancestor: Cursor | None = None
        for number, group in itertools.groupby(rows, key=lambda r: r.block_number):
            block = list(group)
            current = await asyncio.to_thread(self.chain.block_hash, number)
            if current == block[0].block_hash:
                ancestor = Cursor(number, block[0].block_hash)
                break
            orphaned.extend(block)
        log.warning("chain %d reorg below block %d: reversing %d events",
                    self.chain_id, cursor.block_number, len(orphaned))  # fmt: skip
        reversals: list[Command] = []
        applied = [r for r in orphaned if r.status == "applied"]
        for r in applied:
            rid, account, amount = (
                f"chain-reorg:{r.transfer_id}",
                tenant_account(r.tenant_id),
                int(r.amount),
            )
            memo = json.dumps(
                {"source": "chain", "reorg_of": r.transfer_id, "block": r.block_number}
            )
            if r.event == "Deposit":
                reversals.append(Move(rid, account, WORLD_ACCOUNT, amount, memo=memo))
            else:
                reversals.append(Deposit(rid, account, amount, memo=memo))
        results = await self.ledger.execute_many(reversals)
        for r, command, result in zip(applied, reversals, results, strict=True):
            spent = isinstance(result, InsufficientCredits | IdempotencyConflict)
            if spent and isinstance(command, Move):  # (a conflict: a partial one, replayed)
                await reverse_what_is_left(self.ledger, self.db, command, r.tenant_id)
            elif isinstance(result, ApicreditsError):
                log.error("reorg reversal %s failed: %s", command.id, result.message)

        def record(conn: Connection) -> None:
            for r in orphaned:
                conn.execute(update(chain_events).where(chain_events.c.transfer_id == r.transfer_id)
                             .values(reversal_id=f"chain-reorg:{r.transfer_id}"))  # fmt: skip
            self._record(conn, [], ancestor)

        await self.db.write(record)
        return ancestor, len(orphaned)
