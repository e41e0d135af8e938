"""fewer pages written per ledger commit: open_locks keyed by expiry, partial indexes

A metered call commits two ledger transactions, and on SQLite a commit's cost is mostly the
pages it writes to the WAL. This drops about six of the ~25 pages a call wrote:
``open_locks`` becomes one clustered key (expires_at_us, lock_id) instead of a lock_id key
plus an expiry index, and the indexes on ``transfers.pending_id`` and
``usage_records.job_id`` leave out the rows where those are NULL (most of them).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _rekey_open_locks(("expires_at_us", "lock_id"), expiry_index=False)
    if op.get_context().dialect.name == "postgresql":
        _create_partial_pending_index()  # before the constraint goes: never without one
        op.drop_constraint("transfers_pending_id_key", "transfers", type_="unique")
    else:
        _rebuild_sqlite_transfers(pending_unique=False)
    op.drop_index("ix_usage_job", "usage_records")
    op.create_index(
        "ix_usage_job",
        "usage_records",
        ["job_id"],
        sqlite_where=sa.text("job_id IS NOT NULL"),
        postgresql_where=sa.text("job_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_usage_job", "usage_records")
    op.create_index("ix_usage_job", "usage_records", ["job_id"])
    if op.get_context().dialect.name == "postgresql":
        op.create_unique_constraint("transfers_pending_id_key", "transfers", ["pending_id"])
        op.drop_index("ux_transfers_pending", "transfers")
    else:
        _rebuild_sqlite_transfers(pending_unique=True)
    _rekey_open_locks(("lock_id",), expiry_index=True)


def _rekey_open_locks(key: tuple[str, ...], *, expiry_index: bool) -> None:
    if op.get_context().dialect.name == "postgresql":
        if not expiry_index:
            op.drop_index("ix_open_locks_expires_at_us", "open_locks")
        op.drop_constraint("open_locks_pkey", "open_locks", type_="primary")
        op.create_primary_key("open_locks_pkey", "open_locks", list(key))
        if expiry_index:
            op.create_index("ix_open_locks_expires_at_us", "open_locks", ["expires_at_us"])
        return
    # SQLite cannot change a primary key in place, nor whether a table has rowids.
    op.create_table(
        "open_locks_0007",
        sa.Column("lock_id", sa.String(160), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=expiry_index,  # the clustered key has no rowid on SQLite
    )
    op.execute(
        "INSERT INTO open_locks_0007 (lock_id, expires_at_us) "
        "SELECT lock_id, expires_at_us FROM open_locks"
    )
    op.drop_table("open_locks")
    op.rename_table("open_locks_0007", "open_locks")
    if expiry_index:
        op.create_index("ix_open_locks_expires_at_us", "open_locks", ["expires_at_us"])


def _rebuild_sqlite_transfers(*, pending_unique: bool) -> None:
    """SQLite cannot drop a table's unnamed UNIQUE constraint: copy the rows into a table
    declared without it (or with it, going down) and put the indexes back."""
    columns: list[sa.Column[Any]] = [
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(160), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("debit_account_id", sa.String(96), nullable=False),
        sa.Column("credit_account_id", sa.String(96), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("pending_id", sa.String(160), nullable=True, unique=pending_unique),
        sa.Column("timeout_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at_us", sa.BigInteger, nullable=True),
        sa.Column("holds", sa.Text, nullable=False, server_default=""),
        sa.Column("memo", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    ]
    names = ", ".join(c.name for c in columns)
    op.create_table("transfers_0007", *columns)
    op.execute(f"INSERT INTO transfers_0007 ({names}) SELECT {names} FROM transfers")  # noqa: S608
    op.drop_table("transfers")  # its indexes go with it
    op.rename_table("transfers_0007", "transfers")
    op.create_index("ix_transfers_debit", "transfers", ["debit_account_id", "seq"])
    op.create_index("ix_transfers_credit", "transfers", ["credit_account_id", "seq"])
    if not pending_unique:
        _create_partial_pending_index()


def _create_partial_pending_index() -> None:
    op.create_index(
        "ux_transfers_pending",
        "transfers",
        ["pending_id"],
        unique=True,
        sqlite_where=sa.text("pending_id IS NOT NULL"),
        postgresql_where=sa.text("pending_id IS NOT NULL"),
    )
