"""Loading a ``LedgerView`` under locks and writing a ``BatchOutcome`` back, in SQL.

Plain synchronous SQLAlchemy Core over one ``Connection`` inside one transaction (see
``apicredits.db.engine``). Locking: on PostgreSQL the batch's accounts and budget buckets
are locked ``FOR UPDATE`` in sorted order (so two batches never deadlock) *before* the
transfers that decide idempotency and lock state are read; on SQLite ``BEGIN IMMEDIATE``
already serialises writers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Row,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnClause

from apicredits.db.schema import (
    accounts,
    budget_usage,
    budgets,
    metadata,
    open_locks,
    transfers,
)
from apicredits.ledger.model import (
    Account,
    AccountType,
    Budget,
    BudgetHold,
    Command,
    Consume,
    Deposit,
    Expire,
    LedgerView,
    Lock,
    Move,
    Refund,
    Transfer,
    TransferKind,
)
from apicredits.ledger.rules import BatchOutcome, Result, apply_batch, period_key


def _in(conn: Connection, column: ColumnClause[str], values: set[str]) -> ColumnElement[bool]:
    """``column IN values``; one array parameter on PostgreSQL, so the statement text (and
    its prepared plan) is the same whatever the batch size."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, sorted(values), type_=ARRAY(String)))
    return column.in_(values)


def apply_commands(
    conn: Connection, commands: list[Command], now_us: int
) -> tuple[list[Result], dict[str, int]]:
    """Apply a batch; returns each command's result and every touched account's available
    credits after the batch."""
    view = load_view(conn, commands, now_us)
    outcome = apply_batch(view, commands, now_us)
    seqs = write_outcome(conn, outcome)
    results = [
        dataclasses.replace(r, seq=seqs[r.id]) if isinstance(r, Transfer) and r.seq is None else r
        for r in outcome.results
    ]
    available = {a.id: a.available for a in view.accounts.values()}
    available.update({a.id: a.available for a in outcome.accounts.values()})
    return results, available


def load_view(conn: Connection, commands: list[Command], now_us: int) -> LedgerView:
    for_update = conn.dialect.name == "postgresql"
    lock_ids = {c.lock_id for c in commands if isinstance(c, Consume | Refund | Expire)}
    locks = (
        {t.id: t for t in _transfers(conn, _in(conn, transfers.c.id, lock_ids))} if lock_ids else {}
    )
    account_ids: set[str] = set()
    for c in commands:
        match c:
            case Deposit():
                account_ids |= {c.account_id, c.source_account_id}
            case Move() | Lock():
                account_ids |= {c.debit_account_id, c.credit_account_id}
    for t in locks.values():
        account_ids |= {t.debit_account_id, t.credit_account_id}
    stmt = select(accounts).where(_in(conn, accounts.c.id, account_ids)).order_by(accounts.c.id)
    rows = conn.execute(stmt.with_for_update() if for_update else stmt).all()
    view = LedgerView(accounts={r.id: _account(r) for r in rows})

    scopes = {scope for c in commands if isinstance(c, Lock) for scope in c.budget_scopes}
    keys: set[tuple[str, str]] = {
        (h.budget_id, h.period_key) for t in locks.values() for h in t.holds
    }
    if scopes:
        cond = or_(*(and_(budgets.c.scope == s, budgets.c.scope_id == i) for s, i in scopes))
        for r in conn.execute(select(budgets).where(cond)).all():
            budget = Budget(r.id, r.scope, r.scope_id, r.period, r.cap_micro)
            view.budgets.setdefault((r.scope, r.scope_id), []).append(budget)
            keys.add((budget.id, period_key(budget.period, now_us)))
    if keys:
        ordered = sorted(keys)
        _insert_ignore(conn, budget_usage, [{"budget_id": b, "period_key": p} for b, p in ordered])
        cond = or_(
            *(
                and_(budget_usage.c.budget_id == b, budget_usage.c.period_key == p)
                for b, p in ordered
            )
        )
        stmt = select(budget_usage).where(cond).order_by("budget_id", "period_key")
        for r in conn.execute(stmt.with_for_update() if for_update else stmt).all():
            view.usage[(r.budget_id, r.period_key)] = r.used_micro

    # Read with the locks held: these rows decide idempotency and whether a lock is open.
    ids = {c.id for c in commands} | lock_ids
    cond = _in(conn, transfers.c.id, ids)
    if lock_ids:
        cond = or_(cond, _in(conn, transfers.c.pending_id, lock_ids))
    for t in _transfers(conn, cond):
        view.transfers[t.id] = t
        if t.pending_id is not None:
            view.closings[t.pending_id] = t
    return view


def write_outcome(conn: Connection, outcome: BatchOutcome) -> dict[str, int]:
    """Write what a batch changed; returns the ``seq`` given to each new transfer."""
    seqs: dict[str, int] = {}
    if outcome.new_transfers:
        rows = [_transfer_row(t) for t in outcome.new_transfers]
        if conn.dialect.name == "postgresql":
            seqs = _bulk_insert(conn, transfers, rows, returning=True)
        else:
            # BEGIN IMMEDIATE holds the write lock, so numbering here cannot race.
            last = conn.execute(select(func.coalesce(func.max(transfers.c.seq), 0))).scalar_one()
            for n, row in enumerate(rows, start=last + 1):
                row["seq"] = seqs[str(row["id"])] = n
            conn.execute(insert(transfers), rows)
        opened = [
            {"lock_id": t.id, "expires_at_us": t.expires_at_us}
            for t in outcome.new_transfers
            if t.kind == TransferKind.LOCK
        ]
        if opened:
            _bulk_insert(conn, open_locks, opened)
        closed = [t.pending_id for t in outcome.new_transfers if t.pending_id is not None]
        if closed:
            conn.execute(delete(open_locks).where(_in(conn, open_locks.c.lock_id, set(closed))))
    if outcome.accounts and conn.dialect.name == "postgresql":
        changed = sorted(outcome.accounts.values(), key=lambda a: a.id)
        conn.execute(
            text(
                "UPDATE accounts SET debits_pending = u.dp, debits_posted = u.dpo, "
                "credits_pending = u.cp, credits_posted = u.cpo "
                "FROM unnest(CAST(:ids AS text[]), CAST(:dp AS bigint[]), "
                "CAST(:dpo AS bigint[]), CAST(:cp AS bigint[]), CAST(:cpo AS bigint[])) "
                "AS u(id, dp, dpo, cp, cpo) WHERE accounts.id = u.id"
            ),
            {
                "ids": [a.id for a in changed],
                "dp": [a.debits_pending for a in changed],
                "dpo": [a.debits_posted for a in changed],
                "cp": [a.credits_pending for a in changed],
                "cpo": [a.credits_posted for a in changed],
            },
        )
    elif outcome.accounts:
        stmt = (
            update(accounts)
            .where(accounts.c.id == bindparam("_id"))
            .values(
                debits_pending=bindparam("_dp"),
                debits_posted=bindparam("_dP"),
                credits_pending=bindparam("_cp"),
                credits_posted=bindparam("_cP"),
            )
        )
        rows = [
            {
                "_id": a.id,
                "_dp": a.debits_pending,
                "_dP": a.debits_posted,
                "_cp": a.credits_pending,
                "_cP": a.credits_posted,
            }
            for a in sorted(outcome.accounts.values(), key=lambda a: a.id)
        ]
        conn.execute(stmt, rows)
    if outcome.budget_usage:
        stmt = (
            update(budget_usage)
            .where(budget_usage.c.budget_id == bindparam("_b"))
            .where(budget_usage.c.period_key == bindparam("_p"))
            .values(used_micro=bindparam("_u"))
        )
        conn.execute(
            stmt,
            [{"_b": b, "_p": p, "_u": u} for (b, p), u in sorted(outcome.budget_usage.items())],
        )
    by_table: dict[str, list[dict[str, Any]]] = {}
    for table_name, attached in outcome.attachments:
        by_table.setdefault(table_name, []).append(dict(attached))
    for table_name, table_rows in by_table.items():
        _bulk_insert(conn, metadata.tables[table_name], table_rows)
    return seqs


_PG_ARRAY_TYPES = {"VARCHAR": "text", "TEXT": "text", "BIGINT": "bigint", "INTEGER": "bigint"}


def _bulk_insert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, returning: bool = False
) -> dict[str, int]:
    """Insert many rows; on PostgreSQL as one ``INSERT ... SELECT FROM unnest(arrays)``,
    a single statement whatever the row count (executemany costs a round trip per row).
    With ``returning``, maps each row's ``id`` to its ``seq``."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return {}
    names = list(rows[0])
    casts = ", ".join(
        f"CAST(:{n} AS {_PG_ARRAY_TYPES[str(table.c[n].type).split('(')[0]]}[])" for n in names
    )
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({casts})"  # noqa: S608 - names come from our schema
    if returning:
        sql += " RETURNING id, seq"
    result = conn.execute(text(sql), {n: [r[n] for r in rows] for n in names})
    return {row.id: row.seq for row in result} if returning else {}


def ensure_account(
    conn: Connection, account_id: str, type_: AccountType, *, must_not_exceed: bool, now_us: int
) -> None:
    """Open an account if it does not exist yet (idempotent)."""
    row = {
        "id": account_id,
        "type": str(type_),
        "debits_must_not_exceed_credits": must_not_exceed,
        "created_at_us": now_us,
    }
    _insert_ignore(conn, accounts, [row])


def _insert_ignore(conn: Connection, table: object, rows: list[dict[str, object]]) -> None:
    factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(factory(table).on_conflict_do_nothing(), rows)  # type: ignore[arg-type]


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
    return _account(row) if row else None


def list_transfers(
    conn: Connection, account_id: str, *, limit: int, after_seq: int = 0
) -> list[Transfer]:
    cond = and_(
        or_(
            transfers.c.debit_account_id == account_id, transfers.c.credit_account_id == account_id
        ),
        transfers.c.seq > after_seq,
    )
    return list(_transfers(conn, cond, order=True, limit=limit))


def due_locks(conn: Connection, now_us: int, limit: int) -> list[str]:
    stmt = (
        select(open_locks.c.lock_id)
        .where(open_locks.c.expires_at_us <= now_us)
        .order_by(open_locks.c.expires_at_us)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def _transfers(
    conn: Connection, cond: object, *, order: bool = False, limit: int | None = None
) -> Iterable[Transfer]:
    stmt = select(transfers).where(cond)  # type: ignore[arg-type]
    if order:
        stmt = stmt.order_by(transfers.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_transfer(r) for r in conn.execute(stmt).all()]


def _account(r: Row[tuple[object, ...]]) -> Account:
    m = r._mapping
    return Account(
        id=m["id"],
        type=AccountType(m["type"]),
        debits_pending=m["debits_pending"],
        debits_posted=m["debits_posted"],
        credits_pending=m["credits_pending"],
        credits_posted=m["credits_posted"],
        debits_must_not_exceed_credits=bool(m["debits_must_not_exceed_credits"]),
    )


def _transfer(r: Row[tuple[object, ...]]) -> Transfer:
    m = r._mapping
    holds = tuple(BudgetHold(*h.split("|", 1)) for h in (m["holds"] or "").split(";") if h)
    return Transfer(
        id=m["id"],
        kind=TransferKind(m["kind"]),
        debit_account_id=m["debit_account_id"],
        credit_account_id=m["credit_account_id"],
        amount=m["amount"],
        released=m["released"],
        pending_id=m["pending_id"],
        timeout_seconds=m["timeout_seconds"],
        expires_at_us=m["expires_at_us"],
        created_at_us=m["created_at_us"],
        holds=holds,
        memo=m["memo"],
        seq=m["seq"],
    )


def _transfer_row(t: Transfer) -> dict[str, object]:
    return {
        "id": t.id,
        "kind": str(t.kind),
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount": t.amount,
        "released": t.released,
        "pending_id": t.pending_id,
        "timeout_seconds": t.timeout_seconds,
        "expires_at_us": t.expires_at_us,
        "holds": ";".join(f"{h.budget_id}|{h.period_key}" for h in t.holds),
        "memo": t.memo,
        "created_at_us": t.created_at_us,
    }
