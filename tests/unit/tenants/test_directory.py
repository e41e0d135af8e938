"""Tenants, keys and authentication from every header an SDK uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apicredits.db import Database, upgrade
from apicredits.errors import InvalidInput, NotFound, Unauthorized
from apicredits.ledger import Ledger
from apicredits.tenants import ApiKeyAuthenticator, Directory, presented_key

pytestmark = pytest.mark.anyio


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    db = Database(f"sqlite:///{tmp_path / 'd.db'}")
    await upgrade(db)
    ledger = Ledger(db)
    await ledger.open_system_accounts()
    yield Directory(db, ledger)
    await db.aclose()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer ak_1"}, "ak_1"),
        ({"authorization": "bearer   ak_2 "}, "ak_2"),
        ({"x-api-key": "ak_3"}, "ak_3"),
        ({"x-goog-api-key": "ak_4"}, "ak_4"),
        ({"authorization": "Basic xyz"}, None),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


async def test_api_key_authentication(directory: Directory) -> None:
    tenant = await directory.create_tenant("acme")
    project = await directory.create_project(tenant.id, "bot")
    cred, key = await directory.create_api_key(tenant.id, project.id, requests_per_minute=5)
    auth = ApiKeyAuthenticator(directory, cache_seconds=0)
    for headers in (
        {"authorization": f"Bearer {key}"},
        {"x-api-key": key},
        {"x-goog-api-key": key},
    ):
        principal = await auth.authenticate(headers)
        assert (principal.tenant_id, principal.project_id, principal.credential_id) == (
            tenant.id,
            project.id,
            cred.id,
        )
        assert principal.requests_per_minute == 5
        assert principal.budget_scopes == (
            ("tenant", tenant.id),
            ("project", project.id),
            ("credential", cred.id),
        )
    with pytest.raises(Unauthorized):
        await auth.authenticate({"x-api-key": key + "x"})
    with pytest.raises(Unauthorized):
        await auth.authenticate({})
    await directory.revoke_credential(cred.id)
    with pytest.raises(Unauthorized):
        await auth.authenticate({"x-api-key": key})


async def test_budgets_validate_their_scope(directory: Directory) -> None:
    a = await directory.create_tenant("a")
    b = await directory.create_tenant("b")
    b_project = await directory.create_project(b.id, "p")
    with pytest.raises(InvalidInput):
        await directory.set_budget(a.id, "project", b_project.id, "day", 10)
    with pytest.raises(NotFound):
        await directory.set_budget(a.id, "credential", "key_nope", "day", 10)
    with pytest.raises(InvalidInput):
        await directory.set_budget(a.id, "tenant", b.id, "day", 10)
    with pytest.raises(InvalidInput):
        await directory.set_budget(a.id, "tenant", None, "day", -1)
    first = await directory.set_budget(a.id, "tenant", None, "month", 10)
    changed = await directory.set_budget(a.id, "tenant", None, "month", 20)
    assert first.id == changed.id
    assert changed.cap_micro == 20
    assert len(await directory.budgets(a.id)) == 1


async def test_revocation_reaches_a_caching_authenticator_after_its_ttl(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apicredits.tenants.auth as auth_module

    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])
    tenant = await directory.create_tenant("acme")
    cred, key = await directory.create_api_key(tenant.id)
    auth = ApiKeyAuthenticator(directory, cache_seconds=5)
    await auth.authenticate({"x-api-key": key})
    await directory.revoke_credential(cred.id)
    await auth.authenticate({"x-api-key": key})  # still cached
    now[0] += 5.1
    with pytest.raises(Unauthorized):
        await auth.authenticate({"x-api-key": key})
