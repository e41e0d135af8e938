"""capabilities: service keys, the token signing key ring, revocations

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("scopes", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("token_spend_cap_micro", sa.BigInteger, nullable=True))
    op.create_table(
        "service_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("credential_id", sa.String(64), sa.ForeignKey("credentials.id"), nullable=False),
        sa.Column("jwk", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_service_keys_credential", "service_keys", ["credential_id"])
    op.create_table(
        "auth_keyring",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )
    op.create_table(
        "revocations",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("until_s", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revocations")
    op.drop_table("auth_keyring")
    op.drop_index("ix_service_keys_credential", "service_keys")
    op.drop_table("service_keys")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("token_spend_cap_micro")
        batch.drop_column("scopes")
