"""Capability access end to end: token endpoint, DPoP at the gateway, scopes, revocation,
usage tokens, tenant policies, and every refusal with its status, code and challenge."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.sdk import CapabilityAuth, ServiceKey, client_assertion, dpop_proof, openai_client
from gateway_support import Gateway, Service, wait_for

PROMPT = [{"role": "user", "content": "capabilities, not keys"}]
CHAT = {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 16}
CHAT_PATH = "/v1/chat/completions"
GRANT = {
    "grant_type": "client_credentials",
    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
}


def token_request(
    gw: Gateway, svc: Service, *, dpop: ServiceKey | None = None, nonce: str | None = None,
    assertion: str | None = None, **form: str,
) -> httpx.Response:  # fmt: skip
    url = f"{gw.url}/v1/capabilities"
    now = int(time.time())
    body = {
        **GRANT,
        "client_assertion": assertion
        or client_assertion(svc.key, client_id=svc.client_id, audience=url, now=now),
        **form,
    }
    headers = {}
    if dpop is not None:
        headers["DPoP"] = dpop_proof(dpop, method="POST", url=url, now=now, nonce=nonce)
    return httpx.post(url, data=body, headers=headers)


def get_token(gw: Gateway, svc: Service, **form: str) -> tuple[dict[str, Any], str]:
    """A DPoP-bound token for ``svc`` (answering the nonce challenge) and the nonce."""
    first = token_request(gw, svc, dpop=svc.key, **form)
    assert first.status_code == 401, first.text
    nonce = first.headers["DPoP-Nonce"]
    r = token_request(gw, svc, dpop=svc.key, nonce=nonce, **form)
    assert r.status_code == 200, r.text
    return r.json(), r.headers["DPoP-Nonce"]


def call(
    gw: Gateway, token: str, key: ServiceKey, nonce: str | None, *, path: str = CHAT_PATH,
    body: dict[str, Any] | None = None, proof: str | None = None, method: str = "POST",
    extra: dict[str, str] | None = None,
) -> httpx.Response:  # fmt: skip
    url = gw.url + path
    proof = proof or dpop_proof(
        key, method=method, url=url, now=int(time.time()), nonce=nonce, access_token=token
    )
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof, **(extra or {})}
    return httpx.request(method, url, json=body or CHAT, headers=headers)


def refused(r: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error.get("reason", error["code"]) == reason, error
    return error


def test_a_service_calls_through_the_sdk_with_dpop(gateway: Gateway) -> None:
    svc = gateway.service()
    with httpx.Client(
        base_url=gateway.url, auth=CapabilityAuth(gateway.url, svc.client_id, svc.key)
    ) as client:
        for _ in range(3):
            r = client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200, r.text
            assert int(r.headers["apicredits-cost-micro"]) > 0
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'apicredits_auth_requests_total{method="dpop"}' in metrics


@pytest.mark.parametrize("curve", ["Ed25519", "P-256"])
def test_openai_sdk_through_sdk_openai_client(gateway: Gateway, curve: Any) -> None:
    svc = gateway.service(curve=curve)
    client = openai_client(gateway.url, svc.client_id, svc.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="sim-gpt", messages=PROMPT, max_tokens=16
    )
    completion = raw.parse()
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert int(raw.headers["apicredits-cost-micro"]) > 0
    stream = client.chat.completions.create(
        model="sim-gpt", messages=PROMPT, max_tokens=16, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_token_response_and_jwks(gateway: Gateway) -> None:
    svc = gateway.service(scopes=["route:/v1/*", "model:sim-*"])
    token, _ = get_token(gateway, svc, scope="route:/v1/chat/completions model:sim-gpt")
    assert token["token_type"] == "DPoP"
    assert token["expires_in"] == 900
    assert token["scope"] == "route:/v1/chat/completions model:sim-gpt"
    assert "." not in token["usage_auth"]  # a CWT, base64url
    assert len(token["usage_auth"]) > 100
    jwks = httpx.get(f"{gateway.url}/.well-known/jwks.json").json()
    assert [k["kty"] for k in jwks["keys"]] == ["OKP"]
    assert all("d" not in k for k in jwks["keys"])


def test_token_endpoint_refusals(gateway: Gateway) -> None:
    svc = gateway.service()
    url = f"{gateway.url}/v1/capabilities"
    now = int(time.time())
    other = ServiceKey.generate()
    impostor = ServiceKey(other._key, kid=svc.key.kid)  # the registered kid, another key
    cases: list[tuple[httpx.Response, int, str]] = [
        (httpx.post(url, json={"grant_type": "client_credentials"}), 400, "invalid_request"),
        (token_request(gateway, svc, grant_type="password"), 400, "invalid_request"),
        (token_request(gateway, svc, assertion="not.a.jwt"), 401, "malformed"),
        (
            token_request(
                gateway,
                svc,
                assertion=client_assertion(svc.key, client_id="svc_unknown", audience=url, now=now),
            ),
            401,
            "unknown_client",
        ),
        (
            token_request(
                gateway,
                svc,
                assertion=client_assertion(other, client_id=svc.client_id, audience=url, now=now),
            ),
            401,
            "unknown_key",
        ),
        (
            token_request(
                gateway,
                svc,
                assertion=client_assertion(
                    impostor, client_id=svc.client_id, audience=url, now=now
                ),
            ),
            401,
            "bad_signature",
        ),
        (
            token_request(
                gateway,
                svc,
                assertion=client_assertion(
                    svc.key,
                    client_id=svc.client_id,
                    audience="https://elsewhere/v1/capabilities",
                    now=now,
                ),
            ),
            401,
            "wrong_audience",
        ),
        (
            token_request(
                gateway,
                svc,
                assertion=client_assertion(
                    svc.key, client_id=svc.client_id, audience=url, now=now - 1000
                ),
            ),
            401,
            "expired",
        ),
        (token_request(gateway, svc, dpop=svc.key, scope="model:gpt-4o"), 401, "use_dpop_nonce"),
        (token_request(gateway, svc, ttl="7200"), 400, "invalid_request"),
    ]
    for response, status, reason in cases:
        refused(response, status, reason)
    missing = token_request(gateway, svc)  # DPoP required, none sent
    refused(missing, 401, "missing")
    assert missing.headers["WWW-Authenticate"].startswith("DPoP ")
    assert missing.headers["DPoP-Nonce"]


def test_an_assertion_is_used_once_and_scopes_stay_within_the_service(gateway: Gateway) -> None:
    svc = gateway.service(scopes=["route:/v1/chat/completions", "model:sim-gpt"])
    _, nonce = get_token(gateway, svc)
    url = f"{gateway.url}/v1/capabilities"
    assertion = client_assertion(
        svc.key, client_id=svc.client_id, audience=url, now=int(time.time())
    )
    assert token_request(gateway, svc, dpop=svc.key, nonce=nonce, assertion=assertion).is_success
    again = token_request(gateway, svc, dpop=svc.key, nonce=nonce, assertion=assertion)
    refused(again, 401, "replayed")
    wider = token_request(gateway, svc, dpop=svc.key, nonce=nonce, scope="model:*")
    assert refused(wider, 400, "invalid_request")["field"] == "scope"


def test_dpop_refusals_at_the_gateway(gateway: Gateway) -> None:
    svc = gateway.service()
    token, nonce = get_token(gateway, svc)
    access = token["access_token"]
    url = gateway.url + "/v1/chat/completions"
    now = int(time.time())
    stranger = ServiceKey.generate()

    def proof(**kw: Any) -> str:
        args: dict[str, Any] = {
            "method": "POST", "url": url, "now": now, "nonce": nonce, "access_token": access,
        }  # fmt: skip
        key = kw.pop("key", svc.key)
        return dpop_proof(key, **(args | kw))

    ok = proof()
    assert call(gateway, access, svc.key, nonce, proof=ok).status_code == 200
    cases = [
        (call(gateway, access, svc.key, nonce, proof=ok), "replayed"),
        (call(gateway, access, svc.key, nonce, proof=proof(method="GET")), "wrong_htm"),
        (call(gateway, access, svc.key, nonce, proof=proof(url=url + "x")), "wrong_htu"),
        (call(gateway, access, svc.key, nonce, proof=proof(access_token=None)), "missing_ath"),
        (call(gateway, access, svc.key, nonce, proof=proof(access_token="other")), "wrong_ath"),
        (call(gateway, access, svc.key, nonce, proof=proof(key=stranger)), "key_mismatch"),
        (call(gateway, access, svc.key, nonce, proof=proof(now=now - 3600)), "stale"),
        (call(gateway, access, svc.key, nonce, proof=proof(nonce=None)), "use_dpop_nonce"),
        (call(gateway, access, svc.key, nonce, proof="e30.e30.sig"), "malformed"),
    ]
    for response, reason in cases:
        error = refused(response, 401, reason)
        assert response.headers["WWW-Authenticate"].startswith("DPoP error=")
        assert error["code"] == "invalid_dpop_proof"
    no_proof = httpx.post(url, json=CHAT, headers={"Authorization": f"DPoP {access}"})
    refused(no_proof, 401, "missing")
    # RFC 9449 4.3: more than one DPoP header is refused, though each proof would pass
    two_proofs = [("Authorization", f"DPoP {access}"), ("DPoP", proof()), ("DPoP", proof())]
    refused(httpx.post(url, json=CHAT, headers=two_proofs), 401, "malformed")
    assert call(gateway, access, svc.key, nonce, proof=proof()).status_code == 200


def test_token_refusals_at_the_gateway(gateway: Gateway) -> None:
    svc = gateway.service(scopes=["route:/v1/chat/completions", "model:sim-gpt"])
    token, nonce = get_token(gateway, svc)
    access = token["access_token"]
    head, body, sig = access.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BA")
    tampered = call(gateway, f"{head}.{body}.{flipped}", svc.key, nonce)
    assert refused(tampered, 401, "bad_signature")["code"] == "invalid_token"
    assert tampered.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    refused(call(gateway, "garbage", svc.key, nonce), 401, "malformed")
    refused(call(gateway, f"{head}.e30.{sig}", svc.key, nonce), 401, "bad_signature")
    bearer = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {access}"},
    )
    refused(bearer, 401, "dpop_required")
    scoped = call(gateway, access, svc.key, nonce, body={**CHAT, "model": "sim-claude"})
    error = refused(scoped, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in scoped.headers["WWW-Authenticate"]
    assert error["model"] == "sim-claude"
    embed = call(
        gateway,
        access,
        svc.key,
        nonce,
        path="/v1/embeddings",
        body={"model": "sim-gpt", "input": "x"},
    )
    refused(embed, 403, "insufficient_scope")
    nothing = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT)
    refused(nothing, 401, "malformed")


def test_revoking_a_token_a_service_and_a_tenant(gateway: Gateway) -> None:
    svc = gateway.service()
    first, nonce = get_token(gateway, svc)
    second, _ = get_token(gateway, svc)
    payload = first["access_token"].split(".")[1]  # the jti, read back from the token
    jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    r = gateway.admin.post(
        "/admin/v1/revocations", json={"kind": "jti", "tenant_id": svc.tenant_id, "value": jti}
    )
    assert r.status_code == 201, r.text
    wait_for(lambda: call(gateway, first["access_token"], svc.key, nonce).status_code == 401)
    refused(call(gateway, first["access_token"], svc.key, nonce), 401, "revoked")
    assert call(gateway, second["access_token"], svc.key, nonce).status_code == 200
    r = gateway.admin.post(
        "/admin/v1/revocations",
        json={"kind": "subject", "tenant_id": svc.tenant_id, "value": svc.client_id},
    )
    assert r.status_code == 201, r.text
    wait_for(lambda: call(gateway, second["access_token"], svc.key, nonce).status_code == 401)
    time.sleep(1.1)  # revocation times are whole seconds: a token of the next second is fresh
    fresh, nonce = get_token(gateway, svc)
    assert call(gateway, fresh["access_token"], svc.key, nonce).status_code == 200
    gateway.admin.delete(f"/admin/v1/keys/{svc.client_id}")  # revoking the service
    wait_for(lambda: call(gateway, fresh["access_token"], svc.key, nonce).status_code == 401)
    refused(token_request(gateway, svc, dpop=svc.key, nonce=nonce), 401, "unknown_client")


def test_usage_tokens_bind_execute_to_its_job(gateway: Gateway) -> None:
    svc = gateway.service()
    auth = CapabilityAuth(gateway.url, svc.client_id, svc.key)
    with httpx.Client(base_url=gateway.url, auth=auth) as client:
        jobs = [client.post("/v1/jobs/lock", json={"amount_micro": 5_000}).json() for _ in "ab"]
        request = {"request": CHAT}
        a, b = jobs
        missing = client.post("/v1/execute", json={"job_id": a["job_id"], **request})
        refused(missing, 401, "malformed")
        crossed = client.post(
            "/v1/execute",
            json={"job_id": a["job_id"], **request},
            headers={"Usage-Auth": b["usage_token"]},
        )
        refused(crossed, 401, "wrong_job")
        ok = client.post(
            "/v1/execute",
            json={"job_id": a["job_id"], **request},
            headers={"Usage-Auth": a["usage_token"]},
        )
        assert ok.status_code == 200, ok.text
        state = client.get(f"/v1/jobs/{a['job_id']}").json()
        assert state["usage_token"]
        assert state["calls"] == 1
    other = gateway.service()  # another caller cannot use a's token
    with httpx.Client(
        base_url=gateway.url, auth=CapabilityAuth(gateway.url, other.client_id, other.key)
    ) as client:
        stolen = client.post(
            "/v1/execute",
            json={"job_id": a["job_id"], "request": CHAT},
            headers={"Usage-Auth": a["usage_token"]},
        )
        refused(stolen, 401, "token_bound_to_other_key")


def test_a_token_spend_cap_holds_for_the_tokens_life(gateway: Gateway) -> None:
    svc = gateway.service(token_spend_cap_micro=100)
    with httpx.Client(
        base_url=gateway.url, auth=CapabilityAuth(gateway.url, svc.client_id, svc.key)
    ) as client:
        refusal = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 100_000})
        assert refusal.status_code == 402, refusal.text
        assert refusal.json()["error"]["code"] == "budget_exceeded"


def test_bearer_tokens_only_where_the_tenant_allows_them(gateway: Gateway) -> None:
    svc = gateway.service(tenant={"dpop_required": False})
    with httpx.Client(
        base_url=gateway.url, auth=CapabilityAuth(gateway.url, svc.client_id, svc.key, dpop=False)
    ) as client:
        r = client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text
        assert client.auth.token is not None  # type: ignore[union-attr]
        assert client.auth.token.token_type == "Bearer"  # type: ignore[union-attr]
    strict = gateway.service()
    refused(token_request(gateway, strict), 401, "missing")


def test_static_keys_are_opt_in_and_counted(gateway: Gateway) -> None:
    tid = gateway.admin.post("/admin/v1/tenants", json={"name": "old"}).json()["id"]
    gateway.admin.post(
        f"/admin/v1/tenants/{tid}/deposits", json={"amount_micro": 10**6, "idempotency_key": "f"}
    )
    key = gateway.admin.post("/admin/v1/keys", json={"tenant_id": tid}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers)
    refused(r, 401, "legacy_keys_disabled")
    patched = gateway.admin.patch(f"/admin/v1/tenants/{tid}", json={"legacy_keys": True})
    assert patched.json()["legacy_keys"] is True

    def served() -> bool:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers
        ).is_success

    wait_for(served, timeout=10)  # tenant policies are cached for auth_cache_seconds
    metrics = httpx.get(f"{gateway.url}/metrics").text
    uses = [
        line for line in metrics.splitlines() if line.startswith("apicredits_static_key_uses_total")
    ]
    assert len(uses) == 1
    assert float(uses[0].split()[-1]) >= 1


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
JWS_LIKE = st.lists(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120),
    min_size=1,
    max_size=4,
).map(".".join)


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from(["DPoP", "Bearer", "dpop", "Basic", ""]),
    token=st.one_of(JWS_LIKE, HEADER_TEXT),
    proof=st.one_of(st.none(), JWS_LIKE, HEADER_TEXT),
)
def test_fuzz_no_credential_is_accepted_or_crashes(
    gateway: Gateway, scheme: str, token: str, proof: str | None
) -> None:
    headers = {"Authorization": f"{scheme} {token}".strip()}  # httpx refuses edge spaces
    if proof is not None and proof.strip():
        headers["DPoP"] = proof.strip()
    r = httpx.post(f"{gateway.url}{CHAT_PATH}", json=CHAT, headers=headers)
    assert r.status_code in (400, 401, 403), r.text
    assert r.json()["error"]["code"]


@settings(max_examples=150, deadline=None)
@given(
    form=st.dictionaries(
        st.sampled_from(
            ["grant_type", "client_assertion_type", "client_assertion", "scope", "ttl", "x"]
        ),
        st.one_of(JWS_LIKE, HEADER_TEXT),
    ),
    proof=st.one_of(st.none(), JWS_LIKE),
)
def test_fuzz_token_requests_never_succeed_or_crash(
    gateway: Gateway, form: dict[str, str], proof: str | None
) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/capabilities",
        data={**GRANT, **form} if form.get("x") else form,
        headers={"DPoP": proof} if proof else {},
    )
    assert r.status_code in (400, 401, 403), r.text
    assert r.json()["error"]["code"]


def test_static_keys_carry_scopes_like_tokens(gateway: Gateway) -> None:
    tid = gateway.admin.post("/admin/v1/tenants", json={"legacy_keys": True}).json()["id"]
    gateway.admin.post(
        f"/admin/v1/tenants/{tid}/deposits", json={"amount_micro": 10**6, "idempotency_key": "f"}
    )
    created = gateway.admin.post(
        "/admin/v1/keys",
        json={"tenant_id": tid, "scopes": ["route:/v1/chat/completions", "model:sim-gpt"]},
    ).json()
    assert created["scopes"] == ["route:/v1/chat/completions", "model:sim-gpt"]
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert httpx.post(f"{gateway.url}{CHAT_PATH}", json=CHAT, headers=headers).is_success
    other = httpx.post(
        f"{gateway.url}{CHAT_PATH}", json={**CHAT, "model": "sim-claude"}, headers=headers
    )
    refused(other, 403, "insufficient_scope")
    bad = gateway.admin.post("/admin/v1/keys", json={"tenant_id": tid, "scopes": ["all"]})
    assert bad.status_code == 400
