"""chain debts: what a reorg left a tenant owing, and its recoveries

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_debts",
        sa.Column("id", sa.String(170), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chain_debts_tenant", "chain_debts", ["tenant_id"])
    op.create_table(
        "chain_debt_repayments",
        sa.Column("transfer_id", sa.String(160), primary_key=True),
        sa.Column("debt_id", sa.String(170), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chain_debt_repayments_debt", "chain_debt_repayments", ["debt_id"])


def downgrade() -> None:
    op.drop_index("ix_chain_debt_repayments_debt", "chain_debt_repayments")
    op.drop_table("chain_debt_repayments")
    op.drop_index("ix_chain_debts_tenant", "chain_debts")
    op.drop_table("chain_debts")
