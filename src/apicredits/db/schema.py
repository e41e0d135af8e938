"""The relational schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Times are integer unix microseconds (``*_us``) so both engines order and compare them the
same way; money is BIGINT micro-credits. Transfers are insert-only: nothing in the code
base updates or deletes a transfer row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()


def partial(condition: str) -> dict[str, Any]:
    """A partial index's condition, on both engines."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Seq = BigInteger().with_variant(Integer(), "sqlite")

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("settings", Text, nullable=False, server_default="{}"),  # JSON
    Column("created_at_us", BigInteger, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=True),
    Column("kind", String(32), nullable=False),  # "api_key" for now
    Column("secret_hash", String(128), nullable=True, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("requests_per_minute", Integer, nullable=True),
    Column("tokens_per_minute", Integer, nullable=True),
    Column("max_concurrent", Integer, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("revoked_at_us", BigInteger, nullable=True),
    Column("scopes", Text, nullable=False, server_default=""),  # "" = every route and model
    Column("token_spend_cap_micro", BigInteger, nullable=True),  # per capability token
)

# -- capabilities (auth): services prove possession of these keys to obtain tokens

service_keys = Table(
    "service_keys",
    metadata,
    Column("kid", String(64), primary_key=True),  # RFC 7638 thumbprint
    Column("credential_id", String(64), ForeignKey("credentials.id"), nullable=False),
    Column("jwk", Text, nullable=False),  # public members only
    Column("created_at_us", BigInteger, nullable=False),
    Column("revoked_at_us", BigInteger, nullable=True),
    Index("ix_service_keys_credential", "credential_id"),
)

# The gateway's token signing keys (one row, id 1): shared by every worker and replica.
auth_keyring = Table(
    "auth_keyring",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("document", Text, nullable=False),  # SECRET: KeyRing.to_document()
)

# Insert-only; kind jti (value = jti, until_s = its exp), subject (value = service id,
# until_s = revoked_before) or tenant (value = "", until_s = revoked_before).
revocations = Table(
    "revocations",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("value", String(256), nullable=False),
    Column("until_s", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(96), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("debits_pending", BigInteger, nullable=False, server_default="0"),
    Column("debits_posted", BigInteger, nullable=False, server_default="0"),
    Column("credits_pending", BigInteger, nullable=False, server_default="0"),
    Column("credits_posted", BigInteger, nullable=False, server_default="0"),
    Column("debits_must_not_exceed_credits", Boolean, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

transfers = Table(
    "transfers",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(160), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    # No foreign keys to accounts: the ledger rules refuse unknown accounts, and a per-row
    # FK check would cost the hot path ~10% on PostgreSQL.
    Column("debit_account_id", String(96), nullable=False),
    Column("credit_account_id", String(96), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("released", BigInteger, nullable=False, server_default="0"),
    # A lock is closed by exactly one transfer: the unique index makes a second one fail.
    Column("pending_id", String(160), nullable=True),
    Column("timeout_seconds", Integer, nullable=False, server_default="0"),
    Column("expires_at_us", BigInteger, nullable=True),
    Column("holds", Text, nullable=False, server_default=""),  # "budget|period;..."
    Column("memo", Text, nullable=False, server_default=""),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_transfers_debit", "debit_account_id", "seq"),
    Index("ix_transfers_credit", "credit_account_id", "seq"),
    # Partial: most transfers close nothing, and an index entry each would be one more page
    # written per commit on the hot path.
    Index("ux_transfers_pending", "pending_id", unique=True, **partial("pending_id IS NOT NULL")),
)

# Index of locks not yet closed (a lock transfer itself never changes): the sweeper reads
# due rows here instead of scanning every lock ever made. Deleted when the lock closes, by
# its full key (the closer knows the lock's expiry). Keyed by expiry alone and clustered
# (no rowid on SQLite), a lock's row costs one page write when it opens and one when it
# closes, where a lock_id key plus an expiry index cost three each.
open_locks = Table(
    "open_locks",
    metadata,
    Column("lock_id", String(160), nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("expires_at_us", "lock_id"),
    sqlite_with_rowid=False,
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("scope", String(16), nullable=False),  # tenant | project | credential
    Column("scope_id", String(64), nullable=False),
    Column("period", String(8), nullable=False),  # day | month | none
    Column("cap_micro", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    UniqueConstraint("scope", "scope_id", "period", name="uq_budget_scope_period"),
)

budget_usage = Table(
    "budget_usage",
    metadata,
    Column("budget_id", String(64), ForeignKey("budgets.id"), primary_key=True),
    Column("period_key", String(16), primary_key=True),
    Column("used_micro", BigInteger, nullable=False, server_default="0"),
)

tariff_versions = Table(
    "tariff_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("effective_from", BigInteger, nullable=False),  # unix seconds
    Column("document", Text, nullable=False),  # canonical JSON of the rate card
    Column("created_at_us", BigInteger, nullable=False),
)

# -- metering (the gateway)

# One row per provider call: what the provider reported, what it cost, under which tariff
# version. Written in the same transaction as the charge; these are what oracles settle.
usage_records = Table(
    "usage_records",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),  # the request id
    Column("tenant_id", String(64), nullable=False),
    Column("project_id", String(64), nullable=True),
    Column("credential_id", String(64), nullable=False),
    Column("job_id", String(160), nullable=True),
    Column("lock_id", String(160), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("route", String(32), nullable=False),
    Column("units", Text, nullable=False),  # JSON {unit: count}
    Column("tariff_version", Integer, nullable=False),
    Column("cost_micro", BigInteger, nullable=False),
    Column("uncollected_micro", BigInteger, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # ok | partial | failed
    Column("request_hash", String(64), nullable=False),
    Column("started_at_us", BigInteger, nullable=False),
    Column("ttft_us", BigInteger, nullable=True),
    Column("duration_us", BigInteger, nullable=False),
    Index("ix_usage_tenant", "tenant_id", "seq"),
    Index("ix_usage_job", "job_id", **partial("job_id IS NOT NULL")),  # most calls have no job
)

# A job: one ledger lock shared by several calls (POST /v1/jobs/lock ... /settle).
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("project_id", String(64), nullable=True),
    Column("credential_id", String(64), nullable=False),
    Column("lock_id", String(160), nullable=False, unique=True),
    Column("locked_micro", BigInteger, nullable=False),
    Column("reserved_micro", BigInteger, nullable=False, server_default="0"),  # calls in flight
    Column("used_micro", BigInteger, nullable=False, server_default="0"),
    Column("calls", Integer, nullable=False, server_default="0"),
    Column("state", String(16), nullable=False),  # open | settled
    Column("quote_id", String(64), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False, index=True),
)

# Idempotency-Key records of provider calls (Stripe-style): a retry of a completed call
# replays its stored response instead of charging again.
idempotent_requests = Table(
    "idempotent_requests",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # in_progress | completed | failed
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("cost_micro", BigInteger, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
)

# -- chain (the vault indexer)

# Which tenant an on-chain address funds: the vault's `tenant` argument of Deposit.
tenant_wallets = Table(
    "tenant_wallets",
    metadata,
    Column("address", String(42), primary_key=True),  # EIP-55 checksum
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("created_at_us", BigInteger, nullable=False),
)

# How far the indexer has applied one vault's events: the last block and its hash (a
# different hash at that height later means a reorg).
chain_cursors = Table(
    "chain_cursors",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("vault", String(42), primary_key=True),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# One row per vault event the indexer applied (or could not), keyed by the ledger transfer
# id it produced; `reversal_id` is set when a reorg removed the event's block.
chain_events = Table(
    "chain_events",
    metadata,
    Column("transfer_id", String(160), primary_key=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("vault", String(42), nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("event", String(32), nullable=False),  # Deposit | Withdraw
    Column("address", String(42), nullable=False),  # the tenant's wallet
    Column("tenant_id", String(64), nullable=True),  # None: wallet not linked to a tenant
    Column("amount", String(80), nullable=False),  # uint256, decimal
    Column("status", String(16), nullable=False),  # applied | unassigned | refused
    Column("reason", Text, nullable=False, server_default=""),
    Column("reversal_id", String(160), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_chain_events_block", "chain_id", "vault", "block_number"),
    Index("ix_chain_events_tx", "chain_id", "tx_hash", "log_index"),
)

# What a tenant still owes after a reorg removed a deposit it had already spent: the indexer
# reversed what was left and recovers the rest from the tenant's next on-chain deposits.
chain_debts = Table(
    "chain_debts",
    metadata,
    Column("id", String(170), primary_key=True),  # chain-debt:<the reversed transfer id>
    Column("tenant_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),  # micro-credits owed after the reversal
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_chain_debts_tenant", "tenant_id"),
)

# Each recovery: a ledger Move (tenant -> world) with this transfer id, written here before
# the Move runs, so a replay after a crash repeats the same Move and never collects twice.
chain_debt_repayments = Table(
    "chain_debt_repayments",
    metadata,
    Column("transfer_id", String(160), primary_key=True),  # <deposit transfer id>:repay:<n>
    Column("debt_id", String(170), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_chain_debt_repayments_debt", "debt_id"),
)

# -- verifiable usage (metering events, oracle epochs)

# One signed UsageEvent per usage record (signed by the gateway's metering key) or per
# provider-emitted event (which replaces the gateway's until the event is sealed). `epoch`
# and `leaf_index` are set when the aggregator seals the event into an epoch.
usage_events = Table(
    "usage_events",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(66), nullable=False, unique=True),  # 0x keccak256(request id)
    Column("request_id", String(64), nullable=True),
    Column("tenant_id", String(64), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("digest", String(66), nullable=False),  # EIP-712 digest, 0x-hex
    Column("document", Text, nullable=False),  # SignedUsageEvent.to_document(), canonical JSON
    Column("signer", String(42), nullable=False),
    Column("meter", String(8), nullable=False),  # provider | gateway
    Column("cost_micro", BigInteger, nullable=False),
    Column("epoch", BigInteger, nullable=True),
    Column("leaf_index", Integer, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_usage_events_epoch", "epoch", "seq"),
)

# How far a background producer has read its source: the usage-event producer's last
# usage_records seq turned into an event (name "usage_events").
metering_cursors = Table(
    "metering_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# One row per sealed epoch (written by `apicredits settle`).
epochs = Table(
    "epochs",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("receipts", String(42), nullable=False),
    Column("events_root", String(66), nullable=False),
    Column("lines_root", String(66), nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("total_micro", BigInteger, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # sealed | submitted | settled | failed
    Column("signers", Text, nullable=False, server_default="[]"),  # JSON
    Column("excluded", Text, nullable=False, server_default="[]"),  # JSON
    Column("submit_tx", String(66), nullable=True),
    Column("submit_block", BigInteger, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("submitted_at_us", BigInteger, nullable=True),
)

# An epoch's settlement lines, in lines-tree order.
epoch_lines = Table(
    "epoch_lines",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("line_index", Integer, primary_key=True, autoincrement=False),
    Column("tenant_id", String(64), nullable=False),
    Column("tenant_address", String(42), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("provider_id", String(66), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),
    Column("fee_micro", BigInteger, nullable=False),
    Column("leaf", String(66), nullable=False),
    Column("executed_tx", String(66), nullable=True),
    Column("executed_block", BigInteger, nullable=True),
)
