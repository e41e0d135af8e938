"""verifiable usage: signed usage events, the producer's cursor, oracle epochs and lines

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(66), nullable=False, unique=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(66), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("signer", sa.String(42), nullable=False),
        sa.Column("meter", sa.String(8), nullable=False),
        sa.Column("cost_micro", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=True),
        sa.Column("leaf_index", sa.Integer, nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_events_epoch", "usage_events", ["epoch", "seq"])
    op.create_table(
        "metering_cursors",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "epochs",
        sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("receipts", sa.String(42), nullable=False),
        sa.Column("events_root", sa.String(66), nullable=False),
        sa.Column("lines_root", sa.String(66), nullable=False),
        sa.Column("line_count", sa.Integer, nullable=False),
        sa.Column("total_micro", sa.BigInteger, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("signers", sa.Text, nullable=False, server_default="[]"),
        sa.Column("excluded", sa.Text, nullable=False, server_default="[]"),
        sa.Column("submit_tx", sa.String(66), nullable=True),
        sa.Column("submit_block", sa.BigInteger, nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("submitted_at_us", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "epoch_lines",
        sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("line_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("tenant_address", sa.String(42), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_id", sa.String(66), nullable=False),
        sa.Column("amount_micro", sa.BigInteger, nullable=False),
        sa.Column("fee_micro", sa.BigInteger, nullable=False),
        sa.Column("leaf", sa.String(66), nullable=False),
        sa.Column("executed_tx", sa.String(66), nullable=True),
        sa.Column("executed_block", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("epoch_lines")
    op.drop_table("epochs")
    op.drop_table("metering_cursors")
    op.drop_table("usage_events")
