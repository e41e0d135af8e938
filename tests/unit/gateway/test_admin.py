"""The control plane over HTTP (in process, SQLite in a temp dir): happy paths and every
kind of bad input, which must get a 4xx JSON error and change nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.testclient import TestClient

from apicredits.gateway.app import create_app
from apicredits.json_input import MAX_DEPTH
from apicredits.settings import Settings
from apicredits.tariffs import verify_quote

TOKEN = "test-admin-token"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN, max_body_bytes=4096)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert isinstance(body["code"], str)
    assert body["message"]
    return body


@pytest.fixture
def tenant(client: TestClient) -> str:
    r = client.post("/admin/v1/tenants", json={"name": "Acme"})
    assert r.status_code == 201
    tid: str = r.json()["id"]
    r = client.post(
        f"/admin/v1/tenants/{tid}/deposits",
        json={"amount_micro": 1_000_000, "idempotency_key": "k1"},
    )
    assert r.status_code == 201
    return tid


def balance(client: TestClient, tid: str) -> dict[str, int]:
    doc: dict[str, int] = client.get(f"/admin/v1/tenants/{tid}/balance").json()
    return doc


def test_admin_token_is_required(client: TestClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + TOKEN},
    ):
        r = client.get("/admin/v1/tenants", headers=headers)
        assert error_of(r, 401)["code"] == "unauthorized"


def test_tenant_deposit_and_balance(client: TestClient, tenant: str) -> None:
    assert balance(client, tenant) == {
        "tenant_id": tenant,
        "available_micro": 1_000_000,
        "locked_micro": 0,
        "spent_micro": 0,
        "deposited_micro": 1_000_000,
        "chain_debt_micro": 0,
    }
    history = client.get(f"/admin/v1/tenants/{tenant}/ledger").json()["transfers"]
    assert [t["kind"] for t in history] == ["deposit"]
    assert '"source": "admin"' in history[0]["memo"]  # off-chain top-ups are marked


def test_deposit_is_idempotent(client: TestClient, tenant: str) -> None:
    url = f"/admin/v1/tenants/{tenant}/deposits"
    again = client.post(url, json={"amount_micro": 1_000_000, "idempotency_key": "k1"})
    assert again.status_code == 201
    assert balance(client, tenant)["available_micro"] == 1_000_000
    conflict = client.post(url, json={"amount_micro": 5, "idempotency_key": "k1"})
    assert error_of(conflict, 409)["code"] == "idempotency_conflict"
    assert balance(client, tenant)["available_micro"] == 1_000_000


@pytest.mark.parametrize("amount", [-1, 0, 1.5, "100", None, True, 2**63, [1]])
def test_bad_amounts_are_refused(client: TestClient, tenant: str, amount: Any) -> None:
    r = client.post(
        f"/admin/v1/tenants/{tenant}/deposits",
        json={"amount_micro": amount, "idempotency_key": "bad"},
    )
    assert error_of(r, 400)["code"] == "invalid_request"
    assert balance(client, tenant)["available_micro"] == 1_000_000


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (
            b'{"amount_micro": 5, "idempotency_key": "x", "extra": 1}',
            {"content-type": "application/json"},
        ),
        (b"\xff\xfe", {"content-type": "application/json"}),
    ],
)
def test_malformed_bodies(
    client: TestClient, tenant: str, body: bytes, headers: dict[str, str]
) -> None:
    r = client.post(f"/admin/v1/tenants/{tenant}/deposits", content=body, headers=headers)
    assert error_of(r, 400)["code"] == "invalid_request"


@pytest.mark.parametrize("path", ["/admin/v1/tenants", "/admin/v1/siwe/login"])
def test_a_body_nested_too_deep_is_refused_as_malformed(client: TestClient, path: str) -> None:
    depth = MAX_DEPTH + 1
    body = '{"name": ' + "[" * depth + "]" * depth + "}"
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    error = error_of(r, 400)
    assert error["code"] == "invalid_request"
    assert error["message"] == f"body: malformed JSON: nested deeper than {depth - 1} levels"
    assert len(client.get("/admin/v1/tenants").json()["tenants"]) == 0


def test_a_nul_in_free_text_is_refused_on_either_engine(client: TestClient, tenant: str) -> None:
    # PostgreSQL stores no NUL in text; SQLite could, but answers the same
    r = client.post("/admin/v1/tenants", json={"name": "a\x00b"})
    assert error_of(r, 400)["message"] == "name: a NUL character (\\u0000) is not allowed"
    deposit = {"amount_micro": 5, "idempotency_key": "k", "memo": "\x00"}
    r = client.post(f"/admin/v1/tenants/{tenant}/deposits", json=deposit)
    assert error_of(r, 400)["message"] == "memo: a NUL character (\\u0000) is not allowed"
    assert balance(client, tenant)["deposited_micro"] == 1_000_000  # the fixture's only


@pytest.mark.parametrize("value", [0, 1, "true", "yes"])
def test_a_switch_is_a_json_boolean(client: TestClient, value: object) -> None:
    # as the document says: 0 or "yes" for dpop_required is a mistake, not false or true
    r = client.post("/admin/v1/tenants", json={"name": "t", "dpop_required": value})
    assert error_of(r, 400)["message"] == "dpop_required: Input should be a valid boolean"
    assert len(client.get("/admin/v1/tenants").json()["tenants"]) == 0


def test_malformed_json_names_the_problem(client: TestClient) -> None:
    r = client.post(
        "/admin/v1/tenants", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert error_of(r, 400)["message"] == "body: malformed JSON: Expecting value"


def test_oversized_body(client: TestClient, tenant: str) -> None:
    r = client.post(
        f"/admin/v1/tenants/{tenant}/deposits",
        json={"amount_micro": 5, "idempotency_key": "x", "memo": "m" * 10_000},
    )
    assert error_of(r, 413)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it streams
        yield b'{"name": "'
        yield b"x" * 10_000
        yield b'"}'

    r = client.post(
        "/admin/v1/tenants", content=chunks(), headers={"content-type": "application/json"}
    )
    assert error_of(r, 413)["code"] == "payload_too_large"
    assert len(client.get("/admin/v1/tenants").json()["tenants"]) == 1


def test_unknown_ids_routes_and_methods(client: TestClient) -> None:
    assert error_of(client.get("/admin/v1/tenants/ten_nope/balance"), 404)["code"] == "not_found"
    assert error_of(client.post("/admin/v1/keys", json={"tenant_id": "ten_nope"}), 404)
    assert error_of(client.get("/admin/v1/nothing-here"), 404)["code"] == "not_found"
    assert error_of(client.put("/admin/v1/tenants"), 405)["code"] == "method_not_allowed"


def test_keys_are_shown_once_and_stored_hashed(client: TestClient, tenant: str) -> None:
    created = client.post("/admin/v1/keys", json={"tenant_id": tenant, "requests_per_minute": 60})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("ak_")
    assert len(key) > 40
    listed = client.get(f"/admin/v1/tenants/{tenant}/keys").json()["keys"]
    assert len(listed) == 1
    assert "key" not in listed[0]
    assert listed[0]["requests_per_minute"] == 60
    assert key[:11] == listed[0]["prefix"]
    revoked = client.delete(f"/admin/v1/keys/{listed[0]['id']}").json()
    assert revoked["revoked_at"] is not None


def test_key_for_another_tenants_project_is_refused(client: TestClient, tenant: str) -> None:
    other = client.post("/admin/v1/tenants", json={}).json()["id"]
    project = client.post(f"/admin/v1/tenants/{other}/projects", json={"name": "p"}).json()["id"]
    r = client.post("/admin/v1/keys", json={"tenant_id": tenant, "project_id": project})
    assert error_of(r, 400)["code"] == "invalid_request"


def test_lock_consume_refund_over_http(client: TestClient, tenant: str) -> None:
    base = f"/admin/v1/tenants/{tenant}/locks"
    lock = client.post(base, json={"lock_id": "job-1", "amount_micro": 300_000})
    assert lock.status_code == 201
    assert lock.json()["kind"] == "lock"
    assert balance(client, tenant)["locked_micro"] == 300_000
    consumed = client.post(f"{base}/job-1/consume", json={"amount_micro": 100_000}).json()
    assert (consumed["amount_micro"], consumed["released_micro"]) == (100_000, 200_000)
    again = client.post(f"{base}/job-1/consume", json={"amount_micro": 100_000})
    assert again.json() == consumed  # a retried consume returns the original
    assert error_of(client.post(f"{base}/job-1/refund", json={}), 409)["code"] == "lock_closed"
    client.post(base, json={"lock_id": "job-2", "amount_micro": 50_000})
    over = client.post(f"{base}/job-2/consume", json={"amount_micro": 50_001})
    assert error_of(over, 409)["code"] == "lock_exceeded"
    refunded = client.post(f"{base}/job-2/refund", json={}).json()
    assert refunded["released_micro"] == 50_000
    assert balance(client, tenant) == {
        "tenant_id": tenant,
        "available_micro": 900_000,
        "locked_micro": 0,
        "spent_micro": 100_000,
        "deposited_micro": 1_000_000,
        "chain_debt_micro": 0,
    }


def test_lock_beyond_credits(client: TestClient, tenant: str) -> None:
    r = client.post(
        f"/admin/v1/tenants/{tenant}/locks", json={"lock_id": "big", "amount_micro": 1_000_001}
    )
    err = error_of(r, 402)
    assert err["code"] == "insufficient_credits"
    assert err["available_micro"] == 1_000_000
    assert balance(client, tenant)["locked_micro"] == 0


def test_budgets_cap_locks(client: TestClient, tenant: str) -> None:
    project = client.post(f"/admin/v1/tenants/{tenant}/projects", json={"name": "p"}).json()["id"]
    cred = client.post("/admin/v1/keys", json={"tenant_id": tenant, "project_id": project}).json()
    put = client.put(
        "/admin/v1/budgets",
        json={
            "tenant_id": tenant,
            "scope": "project",
            "scope_id": project,
            "period": "day",
            "cap_micro": 100_000,
        },
    )
    assert put.status_code == 200
    assert put.json()["remaining_micro"] == 100_000
    base = f"/admin/v1/tenants/{tenant}/locks"
    assert (
        client.post(
            base, json={"lock_id": "a", "amount_micro": 80_000, "credential_id": cred["id"]}
        ).status_code
        == 201
    )
    refused = client.post(
        base, json={"lock_id": "b", "amount_micro": 30_000, "credential_id": cred["id"]}
    )
    err = error_of(refused, 402)
    assert err["code"] == "budget_exceeded"
    assert err["used_micro"] == 80_000
    # A lock outside the project is not bound by the project's budget.
    assert client.post(base, json={"lock_id": "c", "amount_micro": 30_000}).status_code == 201
    budgets = client.get(f"/admin/v1/tenants/{tenant}/budgets").json()["budgets"]
    assert budgets[0]["used_micro"] == 80_000
    bad = client.put(
        "/admin/v1/budgets",
        json={"tenant_id": tenant, "scope": "project", "period": "week", "cap_micro": 1},
    )
    assert error_of(bad, 400)["code"] == "invalid_request"
    assert client.delete(f"/admin/v1/budgets/{budgets[0]['id']}").status_code == 204
    assert (
        client.post(
            base, json={"lock_id": "b", "amount_micro": 30_000, "credential_id": cred["id"]}
        ).status_code
        == 201
    )


TARIFF = """
effective_from = "2020-01-01T00:00:00Z"
source = "test"
[models."sim-gpt"]
provider = "sim"
input_tokens = 7_000_000
output_tokens = 9_000_000
"""


def test_the_documented_tariff_bodies_upload(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/admin/v1/tariffs"]["post"]["requestBody"]
    example = body["content"]["application/toml"]["example"]
    up = client.post(
        "/admin/v1/tariffs", content=example, headers={"content-type": "application/toml"}
    )
    assert up.status_code == 201, up.text
    schema = body["content"]["application/json"]["schema"]
    document = {
        "effective_from": 1_767_225_600,
        "models": {"m": {"provider": "p", "input_tokens": 5}},
    }
    assert set(schema["required"]) <= set(document)
    up = client.post("/admin/v1/tariffs", json=document)
    assert up.status_code == 201, up.text
    assert (
        client.get(f"/admin/v1/tariffs/{up.json()['version']}").json()["models"]["m"][
            "input_tokens"
        ]
        == 5
    )


def test_tariff_versions(client: TestClient) -> None:
    listed = client.get("/admin/v1/tariffs").json()
    assert listed["current_version"] == 1  # the shipped default
    up = client.post(
        "/admin/v1/tariffs", content=TARIFF, headers={"content-type": "application/toml"}
    )
    assert up.status_code == 201
    assert up.json()["version"] == 2
    assert (
        client.get("/admin/v1/tariffs/2").json()["models"]["sim-gpt"]["input_tokens"] == 7_000_000
    )
    clash = client.post(
        "/admin/v1/tariffs",
        content="version = 2\n" + TARIFF.replace("7_000", "8_000"),
        headers={"content-type": "application/toml"},
    )
    assert error_of(clash, 409)["code"] == "idempotency_conflict"
    broken = client.post(
        "/admin/v1/tariffs", content="[models", headers={"content-type": "application/toml"}
    )
    assert error_of(broken, 400)["code"] == "invalid_request"
    negative = client.post(
        "/admin/v1/tariffs",
        content=TARIFF.replace("7_000_000", "-1"),
        headers={"content-type": "application/toml"},
    )
    assert error_of(negative, 400)["code"] == "invalid_request"


def test_signed_quotes(client: TestClient, tenant: str) -> None:
    calls = [{"model": "sim-gpt", "input_tokens": 1000, "max_output_tokens": 500}] * 2
    r = client.post("/admin/v1/quotes", json={"tenant_id": tenant, "calls": calls})
    assert r.status_code == 201
    signed = r.json()
    # sim-gpt: 1 credit / M input, 2 credits / M output -> 1000 + 1000 micro per call
    assert signed["quote"]["total_micro"] == 4_000
    keys = client.get("/admin/v1/quote-keys").json()["keys"]
    raw = base64.urlsafe_b64decode(keys[0]["public_key"] + "==")
    public = {keys[0]["key_id"]: Ed25519PublicKey.from_public_bytes(raw)}
    quote = verify_quote(signed, public, now=signed["quote"]["issued_at"])
    assert quote.total_micro == 4_000
    unknown = client.post("/admin/v1/quotes", json={"calls": [{**calls[0], "model": "gpt-99"}]})
    assert error_of(unknown, 404)["code"] == "unknown_model"
    empty = client.post("/admin/v1/quotes", json={"calls": []})
    assert error_of(empty, 400)["code"] == "invalid_request"
