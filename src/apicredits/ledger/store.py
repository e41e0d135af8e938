"""Loading a ``LedgerView`` under locks and writing a ``BatchOutcome`` back, in SQL.

Runs inside one transaction on one ``Connection`` (see ``apicredits.db.engine``), through
``apicredits.db.sql.Sql``. Locking: on PostgreSQL the batch's accounts and budget buckets
are locked ``FOR UPDATE`` in sorted order (so two batches never deadlock) *before* the
transfers that decide idempotency and lock state are read, and when the batch closes only
locks this process knows, those transfers are guessed instead (ids unused, locks open) and
the unique indexes check the guess at the write; on SQLite ``BEGIN IMMEDIATE`` already
serialises writers, and a write connection's ``ledger.snapshot`` spares the reads while
nothing else has committed. Writing: on PostgreSQL one statement (round trips are
its cost); on SQLite one statement per table (statements cost microseconds there).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from apicredits.db.schema import metadata
from apicredits.db.sql import Sql, SqliteSql
from apicredits.errors import ApicreditsError
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
from apicredits.ledger.snapshot import Snapshot, StaleSnapshot

ACCOUNT_COLUMNS = (
    "id, type, debits_pending, debits_posted, credits_pending, credits_posted, "
    "debits_must_not_exceed_credits"
)
TRANSFER_COLUMNS = (
    "id",
    "kind",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "released",
    "pending_id",
    "timeout_seconds",
    "expires_at_us",
    "holds",
    "memo",
    "created_at_us",
)
SELECT_TRANSFERS = f"SELECT seq, {', '.join(TRANSFER_COLUMNS)} FROM transfers"  # noqa: S608


def apply_commands(
    sql: Sql, commands: list[Command], now_us: int, *, trust_snapshot: bool = True
) -> tuple[list[Result], dict[str, int]]:
    """Apply a batch; returns each command's result and every touched account's available
    credits after the batch. With ``trust_snapshot``, what the connection's snapshot holds
    is not read again (see ``ledger.snapshot``; may raise ``StaleSnapshot``)."""
    snapshot = Snapshot.of(sql.cache)
    view = snapshot.view(commands, now_us) if snapshot and trust_snapshot else None
    trusted = False
    if view is not None:
        outcome = apply_batch(view, commands, now_us)
        # A refusal may be the retry of a command that once succeeded, whose id the
        # snapshot took for unused: nothing is written yet, so read everything instead.
        trusted = not any(isinstance(r, ApicreditsError) for r in outcome.results)
    if not trusted and sql.pg and trust_snapshot and _locks_all_known(sql, commands):
        # PostgreSQL's counterpart of the snapshot: read only what the batch locks (its
        # accounts and budgets, which other processes change), and guess the rest, its ids
        # unused and its locks open, as the snapshot would. Unique indexes catch a wrong
        # guess at the write (``StaleSnapshot``); a refusal is read again below.
        view = load_view(sql, commands, now_us, read_transfers=False)
        outcome = apply_batch(view, commands, now_us)
        trusted = not any(isinstance(r, ApicreditsError) for r in outcome.results)
    if not trusted:
        view = load_view(sql, commands, now_us)
        if snapshot is not None:
            snapshot.learn(view, commands)
        outcome = apply_batch(view, commands, now_us)
    assert view is not None
    try:
        seqs = write_outcome(sql, outcome, view.transfers)
    except (sqlite3.IntegrityError, IntegrityError):
        if trusted:  # an id taken for unused was not, or a lock taken for open was closed
            raise StaleSnapshot from None
        raise
    written = {t.id: t.numbered(seqs[t.id]) for t in outcome.new_transfers}
    if snapshot is not None:
        snapshot.record(outcome, written)
    if sql.pg:
        _known_locks(sql).update((i, t) for i, t in written.items() if t.kind == TransferKind.LOCK)
    results = [
        written[r.id] if isinstance(r, Transfer) and r.seq is None else r for r in outcome.results
    ]
    available = {a.id: a.available for a in view.accounts.values()}
    available.update({a.id: a.available for a in outcome.accounts.values()})
    return results, available


def _lock_ids(commands: list[Command]) -> set[str]:
    return {c.lock_id for c in commands if isinstance(c, Consume | Refund | Expire)}


def _locks_all_known(sql: Sql, commands: list[Command]) -> bool:
    remembered = _known_locks(sql)
    return all(i in remembered for i in _lock_ids(commands))


def load_view(
    sql: Sql, commands: list[Command], now_us: int, *, read_transfers: bool = True
) -> LedgerView:
    """What the batch needs, read under its locks. Without ``read_transfers`` (PostgreSQL,
    every lock known) the view holds no transfers but the locks the batch closes: no
    namesakes, no closings."""
    lock_ids = _lock_ids(commands)
    locks: dict[str, Transfer] = {}
    known: list[Transfer] | None = None
    if not sql.pg:
        # SQLite: BEGIN IMMEDIATE already holds the write lock, so one read serves both
        # finding the locks' accounts and deciding idempotency and lock state.
        known = _related_transfers(sql, commands, lock_ids)
        locks = {t.id: t for t in known if t.id in lock_ids}
    elif lock_ids:
        # Only to learn which rows to lock: a lock's accounts and holds never change, so
        # the locks this process wrote or read before need no round trip.
        remembered = _known_locks(sql)
        locks = {i: remembered[i] for i in lock_ids if i in remembered}
        if len(locks) < len(lock_ids):
            where, params = sql.in_("id", lock_ids - locks.keys(), "l")
            read = {t.id: t for t in _transfers(sql, where, params)}
            locks.update(read)
            remembered.update((i, t) for i, t in read.items() if t.kind == TransferKind.LOCK)
    account_ids: set[str] = set()
    for c in commands:
        match c:
            case Deposit():
                account_ids |= {c.account_id, c.source_account_id}
            case Move() | Lock():
                account_ids |= {c.debit_account_id, c.credit_account_id}
    for t in locks.values():
        account_ids |= {t.debit_account_id, t.credit_account_id}
    view = LedgerView()
    if account_ids:
        where, params = sql.in_("id", account_ids, "a")
        rows = sql.all(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {where} "  # noqa: S608
            f"ORDER BY id{sql.for_update}",
            params,
        )
        view.accounts.update((r[0], _account(r)) for r in rows)

    scopes = sorted({s for c in commands if isinstance(c, Lock) for s in c.budget_scopes})
    keys = {(h.budget_id, h.period_key) for t in locks.values() for h in t.holds}
    if scopes:
        where = " OR ".join(f"(scope = :s{i} AND scope_id = :i{i})" for i in range(len(scopes)))
        params = {
            f"{k}{i}": v for i, (s, sid) in enumerate(scopes) for k, v in (("s", s), ("i", sid))
        }
        for r in sql.all(
            "SELECT id, scope, scope_id, period, cap_micro FROM budgets "  # noqa: S608
            f"WHERE {where}",
            params,
        ):
            budget = Budget(r[0], r[1], r[2], r[3], r[4])
            view.budgets.setdefault((budget.scope, budget.scope_id), []).append(budget)
            keys.add((budget.id, period_key(budget.period, now_us)))
    if keys:
        ordered = sorted(keys)
        ignore = "" if sql.pg else " OR IGNORE"
        conflict = " ON CONFLICT DO NOTHING" if sql.pg else ""
        sql.many(
            f"INSERT{ignore} INTO budget_usage (budget_id, period_key, used_micro) "
            f"VALUES (:b, :p, 0){conflict}",
            [{"b": b, "p": p} for b, p in ordered],
        )
        where = " OR ".join(
            f"(budget_id = :b{i} AND period_key = :p{i})" for i in range(len(ordered))
        )
        params = {f"{k}{i}": v for i, (b, p) in enumerate(ordered) for k, v in (("b", b), ("p", p))}
        for r in sql.all(
            "SELECT budget_id, period_key, used_micro FROM budget_usage "  # noqa: S608
            f"WHERE {where} ORDER BY budget_id, period_key{sql.for_update}",
            params,
        ):
            view.usage[(r[0], r[1])] = r[2]

    # Read with the locks held: these rows decide idempotency and whether a lock is open.
    if known is None:
        known = _related_transfers(sql, commands, lock_ids) if read_transfers else [*locks.values()]
    for t in known:
        view.transfers[t.id] = t
        if t.pending_id is not None:
            view.closings[t.pending_id] = t
    return view


def _related_transfers(sql: Sql, commands: list[Command], lock_ids: set[str]) -> list[Transfer]:
    """The commands' namesakes, the locks they close, and those locks' closings."""
    where, params = sql.in_("id", {c.id for c in commands} | lock_ids, "t")
    if lock_ids:
        pending, more = sql.in_("pending_id", lock_ids, "p")
        where, params = f"{where} OR {pending}", {**params, **more}
    return _transfers(sql, where, params)


def write_outcome(sql: Sql, outcome: BatchOutcome, known: Mapping[str, Transfer]) -> dict[str, int]:
    """Write what a batch changed; returns the ``seq`` given to each new transfer.
    ``known`` holds the transfers the batch read, among them the locks it closes."""
    if not isinstance(sql, SqliteSql):
        return _pg_write_outcome(sql, outcome, known)
    seqs: dict[str, int] = {}
    new = outcome.new_transfers
    if new:
        rows = [_transfer_row(t) for t in new]
        if len(rows) == 1:
            # A lone transfer (every call at low load): SQLite numbers it MAX(seq) + 1, as
            # below, and says which number, saving a statement.
            statement, (only,) = _positional(rows)
            seqs[rows[0]["id"]] = sql.insert_rowid(f"INSERT INTO transfers {statement}", only)
        else:
            # BEGIN IMMEDIATE holds the write lock, so numbering here cannot race (and one
            # executemany of a fixed statement beats a multi-row INSERT ... RETURNING, whose
            # text changes with the batch size).
            (last,) = sql.all("SELECT COALESCE(MAX(seq), 0) FROM transfers")[0]
            for n, row in enumerate(rows, start=last + 1):
                row["seq"] = seqs[row["id"]] = n
            statement, values = _positional(rows)
            sql.rows(f"INSERT INTO transfers {statement}", values)
        opened, closed = _open_lock_changes(new, known)
        sql.rows("INSERT INTO open_locks (expires_at_us, lock_id) VALUES (?, ?)", opened)
        sql.rows("DELETE FROM open_locks WHERE expires_at_us = ? AND lock_id = ?", closed)
    sql.rows(
        "UPDATE accounts SET debits_pending = ?, debits_posted = ?, "
        "credits_pending = ?, credits_posted = ? WHERE id = ?",
        [
            (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.id)
            for a in sorted(outcome.accounts.values(), key=lambda a: a.id)
        ],
    )
    sql.rows(
        "UPDATE budget_usage SET used_micro = ? WHERE budget_id = ? AND period_key = ?",
        [(u, b, p) for (b, p), u in sorted(outcome.budget_usage.items())],
    )
    for table_name, table_rows in _attachments(outcome).items():
        statement, values = _positional(table_rows)
        sql.rows(f"INSERT INTO {table_name} {statement}", values)
    return seqs


def _positional(rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
    """SQLite: ``(columns) VALUES (?, ...)`` for the first row's columns, and each row's
    values in that order. Bound by position, not by name: naming costs the driver a lookup
    per parameter (measured: 7% of a call's instructions at 1 connection, 2% at 8)."""
    names = tuple(rows[0])
    values = [tuple([row[n] for n in names]) for row in rows]
    return _columns_and_marks(names), values


@functools.lru_cache(maxsize=64)
def _columns_and_marks(names: tuple[str, ...]) -> str:
    return f"({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _open_lock_changes(
    new: list[Transfer], known: Mapping[str, Transfer]
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The ``open_locks`` keys (expiry, lock id) a batch adds and removes; a lock that
    opens and closes in the same batch is in neither."""
    opened = {t.id for t in new if t.kind == TransferKind.LOCK}
    closed = {t.pending_id for t in new if t.pending_id is not None}
    both = opened & closed
    adds = sorted((_expiry(t), t.id) for t in new if t.id in opened - both)
    removes = sorted((_expiry(known[i]), i) for i in closed - both)
    return adds, removes


def _expiry(lock: Transfer) -> int:
    assert lock.expires_at_us is not None  # every lock has one
    return lock.expires_at_us


def _attachments(outcome: BatchOutcome) -> dict[str, list[dict[str, Any]]]:
    by_table: dict[str, list[dict[str, Any]]] = {}
    for table_name, attached in outcome.attachments:
        by_table.setdefault(table_name, []).append(dict(attached))
    return by_table


def _pg_write_outcome(
    sql: Sql, outcome: BatchOutcome, known: Mapping[str, Transfer]
) -> dict[str, int]:
    """PostgreSQL: the whole write as one statement (data-modifying CTEs over ``unnest``
    arrays), one round trip whatever the batch holds; each part touches its own table."""
    if not outcome.new_transfers:
        return {}  # every command was refused or a replay: nothing changed
    parts: list[str] = []
    params: dict[str, Any] = {}

    def insert(table: str, rows: Sequence[Mapping[str, Any]], returning: str = "") -> None:
        prefix = f"p{len(parts)}_"
        parts.append(_pg_insert_statement(table, tuple(rows[0]), prefix) + returning)
        params.update({prefix + n: [r[n] for r in rows] for n in rows[0]})

    insert("transfers", [_transfer_row(t) for t in outcome.new_transfers], " RETURNING id, seq")
    opened, closed = _open_lock_changes(outcome.new_transfers, known)
    if opened:
        insert("open_locks", [{"expires_at_us": e, "lock_id": i} for e, i in opened])
    if closed:
        parts.append(
            "DELETE FROM open_locks WHERE (expires_at_us, lock_id) IN (SELECT * FROM "
            "unnest(CAST(:ce AS bigint[]), CAST(:cl AS text[])))"
        )
        params.update(ce=[e for e, _ in closed], cl=[i for _, i in closed])
    changed = sorted(outcome.accounts.values(), key=lambda a: a.id)
    parts.append(
        "UPDATE accounts SET debits_pending = u.dp, debits_posted = u.dpo, "
        "credits_pending = u.cp, credits_posted = u.cpo "
        "FROM unnest(CAST(:a_id AS text[]), CAST(:a_dp AS bigint[]), "
        "CAST(:a_dpo AS bigint[]), CAST(:a_cp AS bigint[]), CAST(:a_cpo AS bigint[])) "
        "AS u(id, dp, dpo, cp, cpo) WHERE accounts.id = u.id"
    )
    params.update(
        a_id=[a.id for a in changed],
        a_dp=[a.debits_pending for a in changed],
        a_dpo=[a.debits_posted for a in changed],
        a_cp=[a.credits_pending for a in changed],
        a_cpo=[a.credits_posted for a in changed],
    )
    if outcome.budget_usage:
        used = sorted(outcome.budget_usage.items())
        parts.append(
            "UPDATE budget_usage SET used_micro = u.used FROM unnest(CAST(:b_id AS text[]), "
            "CAST(:b_key AS text[]), CAST(:b_used AS bigint[])) AS u(id, key, used) "
            "WHERE budget_usage.budget_id = u.id AND budget_usage.period_key = u.key"
        )
        params.update(
            b_id=[b for (b, _), _ in used],
            b_key=[k for (_, k), _ in used],
            b_used=[u for _, u in used],
        )
    for table_name, table_rows in _attachments(outcome).items():
        insert(table_name, table_rows)
    ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
    statement = f"WITH {ctes} SELECT id, seq FROM w0"  # noqa: S608 - our own statements
    return {r[0]: r[1] for r in sql.all(statement, params)}


_MAX_KNOWN_LOCKS = 10_000  # locks are mostly closed within seconds; a miss costs a read


def _known_locks(sql: Sql) -> dict[str, Transfer]:
    """PostgreSQL: lock transfers this process wrote or read (``Sql.facts``), by id."""
    facts = sql.facts if sql.facts is not None else {}
    locks: dict[str, Transfer] = facts.setdefault("locks", {})
    if len(locks) > _MAX_KNOWN_LOCKS:
        locks.clear()
    return locks


_PG_ARRAY_TYPES = {
    "VARCHAR": "text",
    "TEXT": "text",
    "BIGINT": "bigint",
    "INTEGER": "bigint",
    "BOOLEAN": "boolean",
}


@functools.lru_cache(maxsize=64)
def _pg_insert_statement(table: str, names: tuple[str, ...], prefix: str) -> str:
    """``INSERT ... SELECT FROM unnest(arrays)``: one statement whatever the row count, its
    arrays bound as ``:<prefix><column>``."""
    columns = metadata.tables[table].c
    casts = ", ".join(
        f"CAST(:{prefix}{n} AS {_PG_ARRAY_TYPES[str(columns[n].type).split('(')[0]]}[])"
        for n in names
    )
    return f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({casts})"  # noqa: S608


def ensure_account(
    conn: Connection, account_id: str, type_: AccountType, *, must_not_exceed: bool, now_us: int
) -> None:
    """Open an account if it does not exist yet (idempotent)."""
    sql = Sql.over(conn)
    ignore, conflict = ("", " ON CONFLICT DO NOTHING") if sql.pg else (" OR IGNORE", "")
    sql.run(
        f"INSERT{ignore} INTO accounts (id, type, debits_must_not_exceed_credits, "
        f"created_at_us) VALUES (:id, :type, :guard, :now){conflict}",
        {"id": account_id, "type": str(type_), "guard": must_not_exceed, "now": now_us},
    )


def get_account(conn: Connection, account_id: str) -> Account | None:
    rows = Sql.over(conn).all(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = :id",  # noqa: S608
        {"id": account_id},
    )
    return _account(rows[0]) if rows else None


def get_transfer(conn: Connection, transfer_id: str) -> Transfer | None:
    found = _transfers(Sql.over(conn), "id = :id", {"id": transfer_id})
    return found[0] if found else None


def list_transfers(
    conn: Connection, account_id: str, *, limit: int, after_seq: int = 0
) -> list[Transfer]:
    where = "(debit_account_id = :a OR credit_account_id = :a) AND seq > :after"
    params = {"a": account_id, "after": after_seq, "limit": limit}
    return _transfers(Sql.over(conn), where + " ORDER BY seq LIMIT :limit", params)


def due_locks(conn: Connection, now_us: int, limit: int) -> list[str]:
    rows = Sql.over(conn).all(
        "SELECT lock_id FROM open_locks WHERE expires_at_us <= :now "
        "ORDER BY expires_at_us LIMIT :limit",
        {"now": now_us, "limit": limit},
    )
    return [r[0] for r in rows]


def _transfers(sql: Sql, where: str, params: Mapping[str, Any]) -> list[Transfer]:
    return [_transfer(r) for r in sql.all(f"{SELECT_TRANSFERS} WHERE {where}", params)]


def _account(r: Sequence[Any]) -> Account:
    return Account(r[0], AccountType(r[1]), r[2], r[3], r[4], r[5], bool(r[6]))


def _transfer(r: Sequence[Any]) -> Transfer:
    holds = tuple(BudgetHold(*h.split("|", 1)) for h in (r[10] or "").split(";") if h)
    return Transfer(
        id=r[1],
        kind=TransferKind(r[2]),
        debit_account_id=r[3],
        credit_account_id=r[4],
        amount=r[5],
        released=r[6],
        pending_id=r[7],
        timeout_seconds=r[8],
        expires_at_us=r[9],
        holds=holds,
        memo=r[11],
        created_at_us=r[12],
        seq=r[0],
    )


def _transfer_row(t: Transfer) -> dict[str, Any]:
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
