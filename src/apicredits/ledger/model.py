"""Ledger values: accounts, transfers and the commands that create transfers.

Everything here is a frozen dataclass of ints and strings. Accounts follow TigerBeetle:
four monotone-looking balance columns (pending and posted, debits and credits); a transfer
is immutable once written and identified by a client-chosen id.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class AccountType(enum.StrEnum):
    WORLD = "world"  # where deposits come from; its debits may exceed its credits
    TENANT = "tenant"  # a tenant's prepaid credits; debits must not exceed credits
    PROVIDER = "provider"  # what is owed to a provider
    PLATFORM = "platform"  # platform revenue and fees


class TransferKind(enum.StrEnum):
    DEPOSIT = "deposit"  # posted: world -> tenant
    MOVE = "move"  # posted: any account -> any account (fees, payouts)
    LOCK = "lock"  # pending: reserves credits on the debit account
    CONSUME = "consume"  # closes a lock: posts up to its amount, releases the rest
    REFUND = "refund"  # closes a lock: releases all of it
    EXPIRE = "expire"  # closes a lock past its timeout: releases all of it


CLOSING_KINDS = frozenset({TransferKind.CONSUME, TransferKind.REFUND, TransferKind.EXPIRE})

WORLD_ACCOUNT = "world"
PLATFORM_REVENUE_ACCOUNT = "platform:revenue"


def tenant_account(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def provider_account(provider_id: str) -> str:
    return f"provider:{provider_id}"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    type: AccountType
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    debits_must_not_exceed_credits: bool = False

    @property
    def available(self) -> int:
        """Credits that can still be locked or moved out."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def locked(self) -> int:
        return self.debits_pending

    def adjusted(self, dp: int = 0, dP: int = 0, cp: int = 0, cP: int = 0) -> Account:
        """A copy with the balance deltas applied (pending/Posted debits, credits)."""
        return Account(self.id, self.type, self.debits_pending + dp, self.debits_posted + dP,
                       self.credits_pending + cp, self.credits_posted + cP,
                       self.debits_must_not_exceed_credits)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BudgetHold:
    """A lock's share of one budget bucket, released when the lock closes."""

    budget_id: str
    period_key: str


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    kind: TransferKind
    debit_account_id: str
    credit_account_id: str
    amount: int  # posted (or, for a lock, reserved) by this transfer
    released: int = 0  # for closing transfers: the part of the lock returned to available
    pending_id: str | None = None  # for closing transfers: the lock they close
    timeout_seconds: int = 0  # for locks
    expires_at_us: int | None = None  # for locks
    created_at_us: int = 0
    holds: tuple[BudgetHold, ...] = ()
    memo: str = ""
    seq: int | None = None  # assigned by the store, orders the ledger's history

    def numbered(self, seq: int) -> Transfer:
        """A copy with its ``seq``: spelt out, as ``dataclasses.replace`` costs 2.5x this
        on the hot path (every call's transfers pass here)."""
        return Transfer(self.id, self.kind, self.debit_account_id, self.credit_account_id,
                        self.amount, self.released, self.pending_id, self.timeout_seconds,
                        self.expires_at_us, self.created_at_us, self.holds, self.memo,
                        seq)  # fmt: skip


# ---------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Deposit:
    id: str
    account_id: str
    amount: int
    source_account_id: str = WORLD_ACCOUNT
    memo: str = ""


@dataclass(frozen=True, slots=True)
class Move:
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    memo: str = ""


@dataclass(frozen=True, slots=True)
class Lock:
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    timeout_seconds: int
    # budget scopes, e.g. (("tenant", t), ("project", p)); the store resolves their caps
    budget_scopes: tuple[tuple[str, str], ...] = ()
    memo: str = ""


@dataclass(frozen=True, slots=True)
class Consume:
    id: str
    lock_id: str
    amount: int
    # Rows written in the same transaction if (and only if) this consume is applied, e.g.
    # the usage record that explains the charge: (table name, row).
    attach: tuple[tuple[str, Mapping[str, Any]], ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    lock_id: str


@dataclass(frozen=True, slots=True)
class Expire:
    lock_id: str

    @property
    def id(self) -> str:
        return f"{self.lock_id}:expire"


Command = Deposit | Move | Lock | Consume | Refund | Expire


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend cap on a scope (tenant, project or credential) for a period."""

    id: str
    scope: str
    scope_id: str
    period: str  # "day" | "month" | "none"
    cap_micro: int


@dataclass(frozen=True, slots=True)
class LedgerView:
    """What a batch of commands may read: loaded by the store under the right locks."""

    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)  # by id (commands + locks)
    closings: dict[str, Transfer] = field(default_factory=dict)  # by lock id
    budgets: dict[tuple[str, str], list[Budget]] = field(default_factory=dict)  # by scope
    usage: dict[tuple[str, str], int] = field(default_factory=dict)  # (budget, period) -> used
