"""metering: usage records, jobs, idempotent requests

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(160), nullable=True),
        sa.Column("lock_id", sa.String(160), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("units", sa.Text, nullable=False),
        sa.Column("tariff_version", sa.Integer, nullable=False),
        sa.Column("cost_micro", sa.BigInteger, nullable=False),
        sa.Column("uncollected_micro", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("started_at_us", sa.BigInteger, nullable=False),
        sa.Column("ttft_us", sa.BigInteger, nullable=True),
        sa.Column("duration_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_tenant", "usage_records", ["tenant_id", "seq"])
    op.create_index("ix_usage_job", "usage_records", ["job_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("credential_id", sa.String(64), nullable=False),
        sa.Column("lock_id", sa.String(160), nullable=False, unique=True),
        sa.Column("locked_micro", sa.BigInteger, nullable=False),
        sa.Column("reserved_micro", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("used_micro", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("quote_id", sa.String(64), nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_jobs_expires_at_us", "jobs", ["expires_at_us"])
    op.create_table(
        "idempotent_requests",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("cost_micro", sa.BigInteger, nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotent_requests")
    op.drop_table("jobs")
    op.drop_table("usage_records")
