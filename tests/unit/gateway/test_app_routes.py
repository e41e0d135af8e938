"""Requests no route serves: a data-plane path asked with another method is a 405 naming
the methods it takes (not the control plane's 404: it is mounted at the root, behind
them), an unknown path a 404 naming what was asked, both in the gateway's JSON error
shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from apicredits.gateway.app import create_app
from apicredits.gateway.proxy import Proxy
from apicredits.settings import Settings

TOKEN = "test-admin-token"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path, admin_token=TOKEN))) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/chat/completions", "POST"),  # a hot route
        ("PUT", "/v1/messages", "POST"),
        ("POST", "/v1/models", "GET, HEAD"),
        ("DELETE", "/v1/jobs/job_1", "GET, HEAD"),
        ("GET", "/v1/jobs/job_1/settle", "POST"),
        ("GET", "/v1/oracle/receipt", "POST"),
        ("GET", "/v1beta/models/sim-gemini:generateContent", "POST"),
        ("GET", "/v1/usage/emit", "POST"),  # not a usage record called "emit"
        ("GET", "/v1/jobs/lock", "POST"),  # nor a job called "lock"
        ("OPTIONS", "/v1/jobs/quote", "POST"),
        ("POST", "/v1/models/sim-gpt", "GET, HEAD"),  # a model, not a Gemini "model:action"
    ],
)
def test_a_known_path_with_another_method_is_405(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 405, r.text
    assert sorted(r.headers["allow"].split(", ")) == sorted(allow.split(", "))
    error = r.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["message"] == f"Method Not Allowed: {method} {path}"


def test_a_405_names_every_method_the_path_takes(client: TestClient) -> None:
    """Starlette's router names only the first route's methods; the path takes more."""
    r = client.put("/admin/v1/tenants", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("path", ["/v1/nope", "/v2/chat/completions", "/admin/v1/nope"])
def test_an_unknown_path_is_404_naming_it(client: TestClient, path: str) -> None:
    r = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404, r.text
    assert r.json()["error"] == {"code": "not_found", "message": f"Not Found: GET {path}"}


@pytest.mark.parametrize(
    "path", ["/v1/usage/a%00b", "/v1/jobs/job%00", "/admin/v1/tenants/t%00/balance", "/%00"]
)
def test_a_nul_in_the_path_is_a_400_on_every_engine(client: TestClient, path: str) -> None:
    # SQLite would simply find nothing, PostgreSQL refuse the text: both answer this
    r = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "code": "invalid_request",
        "message": "the path holds a NUL character",
    }


def test_the_control_plane_at_the_root_still_answers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").status_code == 200


def test_the_openapi_document_describes_the_errors_as_they_are(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 body, which we never send
    error = schemas["Error"]
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert len(operations) > 25
    ref = {"$ref": "#/components/schemas/Error"}
    for op in operations:
        assert "422" not in op["responses"], op["summary"]
        if op.get("tags") != ["data plane: provider-compatible"]:  # those: the provider's
            assert op["responses"]["default"]["content"]["application/json"]["schema"] == ref
    create = document["paths"]["/admin/v1/tenants"]["post"]["responses"]
    assert create["400"]["content"]["application/json"]["schema"] == ref
    # bounds as the API checks them: 2**63 - 1 as a float would be 2**63
    amount = schemas["DepositCreate"]["properties"]["amount_micro"]
    assert (amount["maximum"], amount["exclusiveMinimum"]) == (2**63 - 1, 0)
    assert isinstance(amount["maximum"], int)
    assert client.get("/openapi.json").content.count(b"9.223372036854776e+18") == 0
    # what the gateway answers has the documented shape
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = client.post("/admin/v1/tenants", json={"name": 5}, headers=auth)
    missing = client.get("/admin/v1/tenants/ten_nobody", headers=auth)
    assert (refused.status_code, missing.status_code) == (400, 404)
    fields = error["properties"]["error"]["properties"]
    for answer in (refused.json(), missing.json()):
        assert set(answer) == set(error["required"])
        assert set(error["properties"]["error"]["required"]) <= set(answer["error"])
        for name, value in answer["error"].items():  # other details are allowed, untyped
            kind = fields.get(name, {}).get("type")
            assert kind is None or isinstance(value, {"string": str, "array": list}[kind])
    assert refused.json()["error"]["problems"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat/completions"),  # a hot route
        ("POST", "/v1beta/models/sim-gemini:generateContent"),  # one past the hot path
        ("POST", "/v1/jobs/quote"),
        ("GET", "/v1/jobs/job_1"),
    ],
)
def test_a_bug_is_a_500_in_the_gateways_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, path: str
) -> None:
    async def bug(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Proxy, "authenticate", bug)
    app = create_app(Settings(data_dir=tmp_path, admin_token=TOKEN))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.request(method, path, json={"contents": []}, headers={"x-api-key": "ak_x"})
    assert r.status_code == 500, r.text
    assert r.json()["error"] == {
        "code": "internal_error",
        "message": "internal error; see the server log",
    }
