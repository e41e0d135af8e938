"""Who spends: tenants own projects, projects own consumer credentials."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apicredits.auth.capabilities import MAX_SCOPES, Scope
from apicredits.errors import InvalidInput
from apicredits.ledger.model import tenant_account

BUDGET_SCOPES = ("tenant", "project", "credential")


def normalized_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validated, de-duplicated scopes (``route:<glob>`` / ``model:<glob>``)."""
    out = tuple(dict.fromkeys(scopes))
    if len(out) > MAX_SCOPES:
        raise InvalidInput(f"at most {MAX_SCOPES} scopes", field="scopes")
    for scope in out:
        Scope.parse(scope)
    return out


BUDGET_PERIODS = ("day", "month", "none")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at_us: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return tenant_account(self.id)


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    tenant_id: str
    name: str
    created_at_us: int


@dataclass(frozen=True, slots=True)
class Credential:
    id: str
    tenant_id: str
    project_id: str | None
    kind: str
    prefix: str
    name: str
    created_at_us: int
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    revoked_at_us: int | None = None
    scopes: tuple[str, ...] = ()  # empty: every route and model
    token_spend_cap_micro: int | None = None  # services: the cap each token carries

    @property
    def revoked(self) -> bool:
        return self.revoked_at_us is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by an ``Authenticator``.

    ``scopes`` empty means every route and model; ``token_id`` is the capability token's
    ``jti`` when the token carries its own spend cap (a budget with scope ``token``).
    ``method`` is how the caller proved itself: api_key, dpop or bearer."""

    tenant_id: str
    project_id: str | None
    credential_id: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    scopes: tuple[str, ...] = ()
    token_id: str | None = None
    method: str = "api_key"
    jkt: str | None = None  # the key a DPoP-bound token is bound to

    @property
    def account_id(self) -> str:
        return tenant_account(self.tenant_id)

    @property
    def budget_scopes(self) -> tuple[tuple[str, str], ...]:
        """The scopes whose spend caps a lock by this principal must respect."""
        scopes = [("tenant", self.tenant_id)]
        if self.project_id:
            scopes.append(("project", self.project_id))
        scopes.append(("credential", self.credential_id))
        if self.token_id is not None:
            scopes.append(("token", self.token_id))
        return tuple(scopes)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    id: str
    tenant_id: str
    scope: str
    scope_id: str
    period: str
    cap_micro: int
    period_key: str
    used_micro: int
