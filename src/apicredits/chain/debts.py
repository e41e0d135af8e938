"""Reorg debts: a deposit the chain took back after the tenant had spent its credits.

When a reorg removes a counted ``Deposit``, the indexer reverses it with a ``Move`` (tenant
-> world). If the tenant has already spent part of it, that move is refused; then
``reverse_what_is_left`` moves what the tenant still has (up to the amount) under the same
transfer id and records the rest in ``chain_debts``. ``recover_debts`` collects what is owed,
oldest debt first, from the tenant's next on-chain deposits: each recovery is a ``Move``
whose id and amount are written to ``chain_debt_repayments`` before it runs, so a replay
after a crash repeats the same move (the ledger is idempotent by id) and never collects
twice. A recovery the ledger refuses (the tenant spent the deposit meanwhile) is withdrawn
and the debt stays owed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence

from sqlalchemy import Connection, delete, func, insert, select

from apicredits.db.engine import Database
from apicredits.db.schema import chain_debt_repayments, chain_debts
from apicredits.errors import ApicreditsError, InsufficientCredits
from apicredits.ledger import WORLD_ACCOUNT, Command, Ledger, Move, tenant_account

__all__ = ["Credited", "outstanding", "recover_debts", "reverse_what_is_left"]

log = logging.getLogger(__name__)

Credited = tuple[str, str, int]  # (tenant id, deposit transfer id, amount) just credited
_MAX_DEBTS = 16  # debts one deposit repays at most (the oldest first; the rest wait)


async def reverse_what_is_left(ledger: Ledger, db: Database, reversal: Move, tenant_id: str) -> int:
    """``reversal`` was refused for want of credits: move what the tenant has left (up to its
    amount) and record the rest as the tenant's debt; returns the debt."""
    taken = 0
    for _ in range(5):  # the tenant may spend between the balance read and the move
        done = await ledger.transfer(reversal.id)
        if done is not None:  # moved already (a replay after a crash)
            taken = done.amount
            break
        available = (await ledger.account(reversal.debit_account_id)).available
        take = min(available, reversal.amount)
        if take <= 0:
            break
        (result,) = await ledger.execute_many([dataclasses.replace(reversal, amount=take)])
        if not isinstance(result, ApicreditsError):
            taken = take
            break
        if not isinstance(result, InsufficientCredits):
            log.error("reorg reversal %s of what is left failed: %s", reversal.id, result.message)
            break
    debt = reversal.amount - taken
    if debt > 0:
        debt_id = "chain-debt:" + reversal.id.removeprefix("chain-reorg:")
        now = ledger.clock_us()

        def record(conn: Connection) -> None:
            if conn.execute(select(chain_debts.c.id).where(chain_debts.c.id == debt_id)).first():
                return
            conn.execute(insert(chain_debts).values(
                id=debt_id, tenant_id=tenant_id, amount=debt, created_at_us=now))  # fmt: skip

        await db.write(record)
        log.warning("reorg: tenant %s had spent %d micro of a reversed deposit; owed as %s",
                    tenant_id, debt, debt_id)  # fmt: skip
    return debt


def outstanding(conn: Connection, tenant_ids: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """Each tenant's debts still owed, oldest first: (debt id, micro-credits owed)."""
    repaid = (
        select(
            chain_debt_repayments.c.debt_id, func.sum(chain_debt_repayments.c.amount).label("paid")
        )
        .group_by(chain_debt_repayments.c.debt_id)
        .subquery()
    )
    stmt = (
        select(chain_debts.c.id, chain_debts.c.tenant_id, chain_debts.c.amount, repaid.c.paid)
        .outerjoin(repaid, repaid.c.debt_id == chain_debts.c.id)
        .where(chain_debts.c.tenant_id.in_(sorted(set(tenant_ids))))
        .order_by(chain_debts.c.created_at_us, chain_debts.c.id)
    )
    owed: dict[str, list[tuple[str, int]]] = {}
    for row in conn.execute(stmt):
        left = int(row.amount) - int(row.paid or 0)
        if left > 0:
            owed.setdefault(row.tenant_id, []).append((row.id, left))
    return owed


async def recover_debts(ledger: Ledger, db: Database, credited: Sequence[Credited]) -> int:
    """Collect what the credited tenants owe from these deposits; returns micro collected."""
    tenants = sorted({tenant for tenant, _, _ in credited})
    if not tenants:
        return 0
    has_debts = select(chain_debts.c.id).where(chain_debts.c.tenant_id.in_(tenants)).limit(1)
    if await db.read(lambda c: c.execute(has_debts).first()) is None:
        return 0  # the usual case: one read, no write
    now = ledger.clock_us()

    def plan(conn: Connection) -> list[tuple[str, str, str, int]]:
        """The recoveries of these deposits, (transfer id, tenant, debt id, amount): those
        planned by an earlier, interrupted pass as they were, new ones written now."""
        deposits = [d for _, d, _ in credited]
        planned = conn.execute(
            select(chain_debt_repayments, chain_debts.c.tenant_id)
            .join(chain_debts, chain_debts.c.id == chain_debt_repayments.c.debt_id)
            .where(chain_debt_repayments.c.transfer_id.in_(
                [f"{d}:repay:{n}" for d in deposits for n in range(_MAX_DEBTS)]))
        ).all()  # fmt: skip
        done = {r.transfer_id.rsplit(":repay:", 1)[0] for r in planned}
        steps = [(r.transfer_id, r.tenant_id, r.debt_id, int(r.amount)) for r in planned]
        owed = outstanding(conn, [t for t, d, _ in credited if d not in done])
        for tenant, deposit, amount in credited:
            if deposit in done:
                continue
            left = amount
            for n, (debt_id, debt) in enumerate(owed.get(tenant, [])[:_MAX_DEBTS]):
                take = min(debt, left)
                if take <= 0:
                    continue
                step = (f"{deposit}:repay:{n}", tenant, debt_id, take)
                row = {"transfer_id": step[0], "debt_id": debt_id, "amount": take,
                       "created_at_us": now}  # fmt: skip
                conn.execute(insert(chain_debt_repayments).values(row))
                steps.append(step)
                owed[tenant][n] = (debt_id, debt - take)
                left -= take
        return steps

    steps = await db.write(plan)
    if not steps:
        return 0
    moves = [
        Move(tid, tenant_account(tenant), WORLD_ACCOUNT, amount, memo=json.dumps({"debt": debt_id}))
        for tid, tenant, debt_id, amount in steps
    ]
    collected, refused = 0, []
    results = await ledger.execute_many(list[Command](moves))
    for move, result in zip(moves, results, strict=True):
        if isinstance(result, ApicreditsError):
            log.warning("debt recovery %s refused: %s", move.id, result.message)
            refused.append(move.id)
        else:
            collected += move.amount
    if refused:  # not collected: the debt stays owed
        await db.write(lambda c: c.execute(delete(chain_debt_repayments).where(
            chain_debt_repayments.c.transfer_id.in_(refused))))  # fmt: skip
    return collected
