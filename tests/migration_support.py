"""Migration checks shared by the SQLite and PostgreSQL tests: schema drift, and 0007 on a
database that already holds ledger rows (up, down and up again)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from apicredits.db import Database
from apicredits.db.migrate import alembic_config
from apicredits.db.schema import metadata

TRANSFER = (
    "INSERT INTO transfers (seq, id, kind, debit_account_id, credit_account_id, amount, "
    "pending_id, expires_at_us, created_at_us) VALUES (:seq, :id, :kind, 'tenant:t', "
    "'platform:revenue', 10, :pending, :expires, 1)"
)
USAGE = (
    "INSERT INTO usage_records (seq, id, tenant_id, credential_id, job_id, lock_id, provider, "
    "model, route, units, tariff_version, cost_micro, status, request_hash, started_at_us, "
    "duration_us) VALUES (:seq, :id, 't', 'k', :job, 'l1', 'sim', 'm', 'openai.chat', '{}', 1, "
    "4, 'ok', 'h', 1, 1)"
)


def migrate(conn: Connection, action: str, revision: str) -> None:
    getattr(command, action)(alembic_config(conn), revision)


def rows(conn: Connection) -> dict[str, list[Any]]:
    return {
        table: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))]  # noqa: S608
        for table in ("transfers", "open_locks", "usage_records")
    }


def seed(conn: Connection) -> None:
    for seq, id_, kind, pending, expires in (
        (1, "l1", "lock", None, 500),
        (2, "l2", "lock", None, 700),
        (3, "l1:consume", "consume", "l1", None),
    ):
        conn.execute(
            text(TRANSFER),
            {"seq": seq, "id": id_, "kind": kind, "pending": pending, "expires": expires},
        )
    conn.execute(text("INSERT INTO open_locks (lock_id, expires_at_us) VALUES ('l2', 700)"))
    conn.execute(text(USAGE), {"seq": 1, "id": "r1", "job": None})
    conn.execute(text(USAGE), {"seq": 2, "id": "r2", "job": "j"})


def close_l1_again(conn: Connection) -> None:
    conn.execute(
        text(TRANSFER),
        {"seq": 9, "id": "l1:refund", "kind": "refund", "pending": "l1", "expires": None},
    )


def more_unclosing_transfers(conn: Connection) -> None:
    for seq in (10, 11):  # NULL pending_id is not a duplicate, with or without the index
        conn.execute(
            text(TRANSFER),
            {"seq": seq, "id": f"d{seq}", "kind": "deposit", "pending": None, "expires": None},
        )
    conn.execute(text("DELETE FROM transfers WHERE seq IN (10, 11)"))


def schema_drift(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def check_0007_round_trip(db: Database) -> None:
    await db.write(lambda c: migrate(c, "upgrade", "0006"))
    await db.write(seed)
    before = await db.read(rows)
    for action, revision in (("upgrade", "0007"), ("downgrade", "0006"), ("upgrade", "head")):
        await db.write(lambda c, a=action, r=revision: migrate(c, a, r))  # type: ignore[misc]
        assert await db.read(rows) == before, f"rows changed by {action} {revision}"
        with pytest.raises(IntegrityError):  # a lock still closes exactly once
            await db.write(close_l1_again)
        await db.write(more_unclosing_transfers)
    assert await db.read(schema_drift) == []
