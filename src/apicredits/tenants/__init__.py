"""Tenants, their projects and consumer credentials, budgets, and authentication."""

from __future__ import annotations

from apicredits.tenants.auth import ApiKeyAuthenticator, Authenticator, presented_key
from apicredits.tenants.directory import Directory
from apicredits.tenants.model import (
    BUDGET_PERIODS,
    BUDGET_SCOPES,
    BudgetStatus,
    Credential,
    Principal,
    Project,
    Tenant,
)

__all__ = [
    "BUDGET_PERIODS",
    "BUDGET_SCOPES",
    "ApiKeyAuthenticator",
    "Authenticator",
    "BudgetStatus",
    "Credential",
    "Directory",
    "Principal",
    "Project",
    "Tenant",
    "presented_key",
]
