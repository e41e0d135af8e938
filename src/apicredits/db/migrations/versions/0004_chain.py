"""chain: tenant wallets, the vault indexer's cursors and applied events

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_wallets",
        sa.Column("address", sa.String(42), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tenant_wallets_tenant_id", "tenant_wallets", ["tenant_id"])
    op.create_table(
        "chain_cursors",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("vault", sa.String(42), primary_key=True),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "chain_events",
        sa.Column("transfer_id", sa.String(160), primary_key=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("vault", sa.String(42), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer, nullable=False),
        sa.Column("block_number", sa.BigInteger, nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=True),
        sa.Column("amount", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("reversal_id", sa.String(160), nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chain_events_block", "chain_events", ["chain_id", "vault", "block_number"])
    op.create_index("ix_chain_events_tx", "chain_events", ["chain_id", "tx_hash", "log_index"])


def downgrade() -> None:
    op.drop_table("chain_events")
    op.drop_table("chain_cursors")
    op.drop_table("tenant_wallets")
