"""money core: tenants, projects, credentials, accounts, transfers, budgets, tariffs

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("settings", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_projects_tenant_id", "projects", ["tenant_id"])
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=True, unique=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("tokens_per_minute", sa.Integer, nullable=True),
        sa.Column("max_concurrent", sa.Integer, nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_credentials_tenant_id", "credentials", ["tenant_id"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(96), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("debits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("debits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "transfers",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(160), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("debit_account_id", sa.String(96), nullable=False),
        sa.Column("credit_account_id", sa.String(96), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("pending_id", sa.String(160), nullable=True, unique=True),
        sa.Column("timeout_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at_us", sa.BigInteger, nullable=True),
        sa.Column("holds", sa.Text, nullable=False, server_default=""),
        sa.Column("memo", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_transfers_debit", "transfers", ["debit_account_id", "seq"])
    op.create_index("ix_transfers_credit", "transfers", ["credit_account_id", "seq"])
    op.create_table(
        "open_locks",
        sa.Column("lock_id", sa.String(160), primary_key=True),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_open_locks_expires_at_us", "open_locks", ["expires_at_us"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("cap_micro", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("scope", "scope_id", "period", name="uq_budget_scope_period"),
    )
    op.create_table(
        "budget_usage",
        sa.Column("budget_id", sa.String(64), sa.ForeignKey("budgets.id"), primary_key=True),
        sa.Column("period_key", sa.String(16), primary_key=True),
        sa.Column("used_micro", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "tariff_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("effective_from", sa.BigInteger, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "tariff_versions",
        "budget_usage",
        "budgets",
        "open_locks",
        "transfers",
        "accounts",
        "credentials",
        "projects",
        "tenants",
    ):
        op.drop_table(table)
