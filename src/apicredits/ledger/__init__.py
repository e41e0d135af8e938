"""The credit ledger: TigerBeetle-style double entry with two-phase transfers.

Accounts hold debits/credits, pending and posted. Transfers are immutable and carry a
client-chosen id; reusing an id with the same content returns the original transfer, with
different content raises ``IdempotencyConflict``. Credits move in two phases, in the
project's own words:

- ``lock``    a pending transfer with a timeout (checked: debits must not exceed credits,
              and every budget on the lock's scopes must have room);
- ``consume`` posts up to the locked amount and releases the remainder in the same step;
- ``refund``  releases all of it;
- expiry      the sweeper (``Ledger.run_sweeper``) closes locks past their timeout.

Each lock is closed exactly once (a unique index on the closing transfer's ``pending_id``).
"""

from __future__ import annotations

from apicredits.ledger.model import (
    PLATFORM_REVENUE_ACCOUNT,
    WORLD_ACCOUNT,
    Account,
    AccountType,
    Budget,
    BudgetHold,
    Command,
    Consume,
    Deposit,
    Expire,
    Lock,
    Move,
    Refund,
    Transfer,
    TransferKind,
    provider_account,
    tenant_account,
)
from apicredits.ledger.rules import apply_batch, period_key
from apicredits.ledger.service import Balance, Ledger

__all__ = [
    "PLATFORM_REVENUE_ACCOUNT",
    "WORLD_ACCOUNT",
    "Account",
    "AccountType",
    "Balance",
    "Budget",
    "BudgetHold",
    "Command",
    "Consume",
    "Deposit",
    "Expire",
    "Ledger",
    "Lock",
    "Move",
    "Refund",
    "Transfer",
    "TransferKind",
    "apply_batch",
    "period_key",
    "provider_account",
    "tenant_account",
]
