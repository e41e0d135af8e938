"""The OpenAPI document describes the data plane as it is: every route in it, and the seed
job API's answers in the documented shapes."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from apicredits.gateway import dataplane, oracle_receipts
from apicredits.gateway.dataplane_openapi import (
    EXECUTE_EXAMPLE,
    JOB,
    LOCK_EXAMPLE,
    QUOTE_EXAMPLE,
    SIGNED_QUOTE,
    USAGE_RECORD,
)
from apicredits.gateway.models import routes as model_routes
from apicredits.gateway.usage import routes as usage_routes
from gateway_support import Gateway

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "object": dict,
    "array": list,
    "boolean": bool,
    "null": type(None),
}


def problems(value: object, schema: dict[str, Any], at: str = "$") -> list[str]:
    """Where ``value`` departs from ``schema`` (the JSON Schema the document uses here:
    type, enum, properties, required, items)."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else kinds
        if isinstance(value, bool) and "boolean" not in allowed:
            return [f"{at}: a boolean, documented {kinds}"]
        if not any(isinstance(value, _TYPES[k]) for k in allowed):
            return [f"{at}: {type(value).__name__}, documented {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    found = []
    if isinstance(value, dict):
        found += [
            f"{at}.{name}: missing" for name in schema.get("required", []) if name not in value
        ]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += problems(value[name], sub, f"{at}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(item, schema["items"], f"{at}[{i}]")
    return found


def test_the_checker_finds_departures() -> None:
    assert problems({"a": "x"}, {"type": "object", "required": ["a", "b"]}) == ["$.b: missing"]
    assert problems({"a": True}, {"properties": {"a": {"type": "integer"}}}) == [
        "$.a: a boolean, documented integer"
    ]
    assert problems([1, "2"], {"items": {"type": "integer"}}) == ["$[1]: str, documented integer"]
    assert problems("z", {"enum": ["a"]}) == ["$: 'z' is not one of ['a']"]


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{gateway.url}/openapi.json").json()
    return found


def test_every_data_plane_route_is_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    routes = [*usage_routes(), *model_routes(), *dataplane.routes(), *oracle_receipts.routes()]
    for route in routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {request_id:usage_id}
        if path.endswith("/{model_action}"):  # Gemini's actions, documented one by one
            documented = [p for p in paths if p.startswith("/v1beta/models/{model}:")]
            assert len(documented) == 3, documented
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            assert method.lower() in paths.get(path, {}), f"{method} {path} is not documented"


def test_the_data_plane_says_how_to_authenticate(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) >= {"bearer", "x-api-key", "x-goog-api-key"}
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert {"bearer": []} in chat["security"]
    assert "apicredits-cost-micro" in chat["responses"]["200"]["headers"]
    # its errors are the provider's (Gemini's error.code is a number), not the gateway's
    error = chat["responses"]["default"]["content"]["application/json"]["schema"]
    assert "$ref" not in error


def test_the_seed_api_answers_as_documented(gateway: Gateway, document: dict[str, Any]) -> None:
    _, key = gateway.tenant()
    auth = {"authorization": f"Bearer {key}"}
    paths = document["paths"]

    def documented(path: str, method: str, status: str) -> dict[str, Any]:
        schema: dict[str, Any] = paths[path][method]["responses"][status]["content"][
            "application/json"
        ]["schema"]
        return schema

    with httpx.Client(base_url=gateway.url, headers=auth) as client:
        quote = client.post("/v1/jobs/quote", json=QUOTE_EXAMPLE)
        assert quote.status_code == 200, quote.text
        assert documented("/v1/jobs/quote", "post", "200") == SIGNED_QUOTE
        assert problems(quote.json(), SIGNED_QUOTE) == []
        lock = client.post("/v1/jobs/lock", json=LOCK_EXAMPLE)
        assert lock.status_code == 201, lock.text
        job = lock.json()
        assert problems(job, JOB) == []
        assert "usage_token" in job
        call = {**EXECUTE_EXAMPLE, "job_id": job["job_id"]}
        executed = client.post("/v1/execute", json=call, headers={"usage-auth": job["usage_token"]})
        assert executed.status_code == 200, executed.text
        for header in paths["/v1/execute"]["post"]["responses"]["200"]["headers"]:
            assert header in executed.headers, header
        request_id = executed.headers["apicredits-request-id"]
        seen = client.get(f"/v1/jobs/{job['job_id']}")
        assert problems(seen.json(), documented("/v1/jobs/{job_id}", "get", "200")) == []
        assert len(seen.json()["usage"]) == 1
        usage = client.get(f"/v1/usage/{request_id}")
        assert problems(usage.json(), USAGE_RECORD) == []
        settled = client.post(f"/v1/jobs/{job['job_id']}/settle")
        schema = documented("/v1/jobs/{job_id}/settle", "post", "200")
        assert problems(settled.json(), schema) == []
        assert settled.json()["state"] == "settled"
        refused = client.post("/v1/jobs/lock", json={})
        assert refused.status_code == 400
        error = documented("/v1/jobs/lock", "post", "default")
        resolved = document["components"]["schemas"][error["$ref"].rsplit("/", 1)[1]]
        assert problems(refused.json(), resolved) == []
