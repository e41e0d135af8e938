"""``Directory``: tenants, projects, credentials and budgets in the database."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from apicredits.db.engine import Database
from apicredits.db.schema import budget_usage, budgets, credentials, projects, tenants
from apicredits.errors import InvalidInput, NotFound
from apicredits.ledger import AccountType, Ledger, period_key
from apicredits.money import require_micro
from apicredits.tenants.keys import generate_api_key, hash_api_key, new_id
from apicredits.tenants.model import (
    BUDGET_PERIODS,
    BUDGET_SCOPES,
    BudgetStatus,
    Credential,
    Project,
    Tenant,
    normalized_scopes,
)


class Directory:
    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger

    def _now(self) -> int:
        return self.ledger.clock_us()

    # -- tenants
    async def create_tenant(self, name: str, settings: dict[str, Any] | None = None) -> Tenant:
        tenant = Tenant(new_id("ten"), name, self._now(), dict(settings or {}))
        row = {
            "id": tenant.id,
            "name": name,
            "settings": json.dumps(tenant.settings),
            "created_at_us": tenant.created_at_us,
        }
        await self.db.write(lambda c: c.execute(tenants.insert(), row))
        await self.ledger.open_account(tenant.account_id, AccountType.TENANT)
        return tenant

    async def tenant(self, tenant_id: str) -> Tenant:
        row = await self.db.read(
            lambda c: c.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        )
        if row is None:
            raise NotFound(f"tenant {tenant_id} does not exist", tenant_id=tenant_id)
        return _tenant(row)

    async def tenants(self, *, limit: int = 100) -> list[Tenant]:
        stmt = select(tenants).order_by(tenants.c.created_at_us).limit(limit)
        return [_tenant(r) for r in await self.db.read(lambda c: c.execute(stmt).all())]

    async def update_tenant_settings(self, tenant_id: str, changes: dict[str, Any]) -> Tenant:
        tenant = await self.tenant(tenant_id)
        merged = {**tenant.settings, **changes}
        stmt = update(tenants).where(tenants.c.id == tenant_id).values(settings=json.dumps(merged))
        await self.db.write(lambda c: c.execute(stmt))
        return await self.tenant(tenant_id)

    # -- projects
    async def create_project(self, tenant_id: str, name: str) -> Project:
        await self.tenant(tenant_id)
        project = Project(new_id("prj"), tenant_id, name, self._now())
        row = {
            "id": project.id,
            "tenant_id": tenant_id,
            "name": name,
            "created_at_us": project.created_at_us,
        }
        await self.db.write(lambda c: c.execute(projects.insert(), row))
        return project

    async def project(self, project_id: str) -> Project:
        stmt = select(projects).where(projects.c.id == project_id)
        row = await self.db.read(lambda c: c.execute(stmt).first())
        if row is None:
            raise NotFound(f"project {project_id} does not exist", project_id=project_id)
        return Project(row.id, row.tenant_id, row.name, row.created_at_us)

    async def projects(self, tenant_id: str) -> list[Project]:
        stmt = select(projects).where(projects.c.tenant_id == tenant_id).order_by("created_at_us")
        rows = await self.db.read(lambda c: c.execute(stmt).all())
        return [Project(r.id, r.tenant_id, r.name, r.created_at_us) for r in rows]

    # -- credentials
    async def create_api_key(
        self,
        tenant_id: str,
        project_id: str | None = None,
        *,
        name: str = "",
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_concurrent: int | None = None,
        scopes: Iterable[str] = (),
    ) -> tuple[Credential, str]:
        """Create an API key; the plaintext key is returned here and never again. ``scopes``
        (route/model globs) limit it like a capability token's; none means everything."""
        allowed = normalized_scopes(scopes)
        await self.tenant(tenant_id)
        if project_id is not None and (await self.project(project_id)).tenant_id != tenant_id:
            raise InvalidInput(f"project {project_id} belongs to another tenant")
        key, prefix, secret_hash = generate_api_key()
        cred = Credential(
            new_id("key"),
            tenant_id,
            project_id,
            "api_key",
            prefix,
            name,
            self._now(),
            requests_per_minute,
            tokens_per_minute,
            max_concurrent,
            scopes=allowed,
        )
        row = {
            "id": cred.id,
            "tenant_id": tenant_id,
            "project_id": project_id,
            "kind": cred.kind,
            "secret_hash": secret_hash,
            "prefix": prefix,
            "name": name,
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
            "max_concurrent": max_concurrent,
            "created_at_us": cred.created_at_us,
            "scopes": " ".join(allowed),
        }
        await self.db.write(lambda c: c.execute(credentials.insert(), row))
        return cred, key

    async def credential(self, credential_id: str) -> Credential:
        stmt = select(credentials).where(credentials.c.id == credential_id)
        row = await self.db.read(lambda c: c.execute(stmt).first())
        if row is None:
            raise NotFound(
                f"credential {credential_id} does not exist", credential_id=credential_id
            )
        return _credential(row)

    async def credential_for_key(self, key: str) -> Credential | None:
        stmt = select(credentials).where(credentials.c.secret_hash == hash_api_key(key))
        row = await self.db.read(lambda c: c.execute(stmt).first())
        return _credential(row) if row else None

    async def credentials(self, tenant_id: str) -> list[Credential]:
        stmt = select(credentials).where(credentials.c.tenant_id == tenant_id)
        rows = await self.db.read(lambda c: c.execute(stmt.order_by("created_at_us")).all())
        return [_credential(r) for r in rows]

    async def revoke_credential(self, credential_id: str) -> Credential:
        await self.credential(credential_id)
        stmt = (
            update(credentials)
            .where(credentials.c.id == credential_id, credentials.c.revoked_at_us.is_(None))
            .values(revoked_at_us=self._now())
        )
        await self.db.write(lambda c: c.execute(stmt))
        return await self.credential(credential_id)

    # -- budgets
    async def set_budget(
        self, tenant_id: str, scope: str, scope_id: str | None, period: str, cap_micro: int
    ) -> BudgetStatus:
        """Create or change the spend cap of a scope for a period (one per scope+period)."""
        await self.tenant(tenant_id)
        if scope not in BUDGET_SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(BUDGET_SCOPES)}", field="scope")
        if period not in BUDGET_PERIODS:
            raise InvalidInput(f"period must be one of {', '.join(BUDGET_PERIODS)}", field="period")
        require_micro(cap_micro, "cap_micro", allow_zero=True)
        scope_id = await self._check_scope(tenant_id, scope, scope_id)
        row = {
            "id": new_id("bud"),
            "tenant_id": tenant_id,
            "scope": scope,
            "scope_id": scope_id,
            "period": period,
            "cap_micro": cap_micro,
            "created_at_us": self._now(),
        }
        work = functools.partial(_upsert_budget, row=row)
        budget_id = await self.db.write(work)
        return next(b for b in await self.budgets(tenant_id) if b.id == budget_id)

    async def _check_scope(self, tenant_id: str, scope: str, scope_id: str | None) -> str:
        if scope == "tenant":
            if scope_id not in (None, tenant_id):
                raise InvalidInput("a tenant budget's scope_id is the tenant id")
            return tenant_id
        if not scope_id:
            raise InvalidInput(f"a {scope} budget needs scope_id", field="scope_id")
        owner = (
            (await self.project(scope_id)).tenant_id
            if scope == "project"
            else (await self.credential(scope_id)).tenant_id
        )
        if owner != tenant_id:
            raise InvalidInput(f"{scope} {scope_id} belongs to another tenant")
        return scope_id

    async def budgets(self, tenant_id: str) -> list[BudgetStatus]:
        now = self._now()
        rows = await self.db.read(functools.partial(_budgets_with_usage, tenant_id=tenant_id))
        out = []
        for r, used_by_key in rows:
            key = period_key(r.period, now)
            out.append(
                BudgetStatus(
                    r.id,
                    r.tenant_id,
                    r.scope,
                    r.scope_id,
                    r.period,
                    r.cap_micro,
                    key,
                    used_by_key.get(key, 0),
                )
            )
        return out

    async def delete_budget(self, budget_id: str) -> None:
        def work(c: Connection) -> int:
            c.execute(budget_usage.delete().where(budget_usage.c.budget_id == budget_id))
            return c.execute(budgets.delete().where(budgets.c.id == budget_id)).rowcount

        if not await self.db.write(work):
            raise NotFound(f"budget {budget_id} does not exist", budget_id=budget_id)


def _upsert_budget(conn: Connection, row: dict[str, Any]) -> str:
    factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = factory(budgets).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "scope_id", "period"], set_={"cap_micro": row["cap_micro"]}
    )
    conn.execute(stmt)
    found = conn.execute(
        select(budgets.c.id).where(
            budgets.c.scope == row["scope"],
            budgets.c.scope_id == row["scope_id"],
            budgets.c.period == row["period"],
        )
    ).scalar_one()
    return str(found)


def _budgets_with_usage(conn: Connection, tenant_id: str) -> list[tuple[Row[Any], dict[str, int]]]:
    rows = conn.execute(select(budgets).where(budgets.c.tenant_id == tenant_id)).all()
    out = []
    for r in rows:
        usage = conn.execute(
            select(budget_usage.c.period_key, budget_usage.c.used_micro).where(
                budget_usage.c.budget_id == r.id
            )
        ).all()
        out.append((r, {u.period_key: u.used_micro for u in usage}))
    return out


def _tenant(r: Row[Any]) -> Tenant:
    return Tenant(r.id, r.name, r.created_at_us, json.loads(r.settings or "{}"))


def _credential(r: Row[Any]) -> Credential:
    return Credential(
        r.id,
        r.tenant_id,
        r.project_id,
        r.kind,
        r.prefix,
        r.name,
        r.created_at_us,
        r.requests_per_minute,
        r.tokens_per_minute,
        r.max_concurrent,
        r.revoked_at_us,
        tuple(r.scopes.split()) if r.scopes else (),
        r.token_spend_cap_micro,
    )
