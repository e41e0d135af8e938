"""CapabilityAuth against a gateway made of the real server-side checks (see ``fake_gateway``)."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest
from fake_gateway import BASE_URL, NOW, TOKEN_URL, FakeGateway

from apicredits.auth.dpop import ath_of
from apicredits.sdk import (
    CapabilityAuth,
    InvalidTokenResponse,
    SdkError,
    ServiceKey,
    TokenRequestFailed,
)

CLIENT_ID = "svc-search"
ECHO = f"{BASE_URL}/v1/echo"


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


@pytest.fixture(params=["Ed25519", "P-256"])
def key(request: pytest.FixtureRequest) -> ServiceKey:
    return ServiceKey.generate(request.param)


@pytest.fixture
def gateway(key: ServiceKey) -> FakeGateway:
    gateway = FakeGateway()
    gateway.register(CLIENT_ID, key)
    return gateway


def client(gateway: FakeGateway, key: ServiceKey, **options: Any) -> httpx.Client:
    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key, clock=gateway.clock, **options)
    return httpx.Client(auth=auth, transport=gateway.transport)


def test_a_token_is_obtained_once_and_used(gateway: FakeGateway, key: ServiceKey) -> None:
    with client(gateway, key) as http:
        assert http.get(ECHO).json() == {"ok": True, "sub": CLIENT_ID}
        assert http.post(ECHO, json={"model": "sim-small"}).status_code == 200
    assert gateway.token_requests == 1
    assert [call.claims.jkt for call in gateway.calls] == [key.thumbprint()] * 2
    assert all(call.claims.sub == CLIENT_ID for call in gateway.calls)


def test_resource_requests_carry_a_dpop_proof_with_ath(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    with client(gateway, key) as http:
        http.get(f"{ECHO}?q=1#frag")
        http.get(ECHO)
    first, second = (call.request for call in gateway.calls)
    scheme, token = first.headers["Authorization"].split(" ")
    assert scheme == "DPoP"
    proof = claims_of(first.headers["DPoP"])
    assert proof["ath"] == ath_of(token)
    assert (proof["htm"], proof["htu"]) == ("GET", ECHO)
    assert claims_of(second.headers["DPoP"])["jti"] != proof["jti"]  # a fresh proof each time


def test_the_token_request_is_what_the_protocol_says(gateway: FakeGateway, key: ServiceKey) -> None:
    with client(gateway, key, scopes=["route:/v1/echo", "model:sim-*"], ttl=600) as http:
        assert http.get(ECHO).status_code == 200
    token_request = gateway.token_responses[0].request
    proof = claims_of(token_request.headers["DPoP"])
    assert "ath" not in proof
    assert proof["htu"] == TOKEN_URL
    assert proof["htm"] == "POST"
    assertion = claims_of(
        dict(httpx.QueryParams(token_request.content.decode()))["client_assertion"]
    )
    assert assertion["aud"] == TOKEN_URL
    assert assertion["exp"] - assertion["iat"] == 60
    auth = http.auth
    assert isinstance(auth, CapabilityAuth)
    assert auth.token is not None
    assert auth.token.scopes == ("route:/v1/echo", "model:sim-*")
    assert auth.token.expires_at == NOW + 600
    assert auth.token.usage_auth
    assert gateway.calls[0].claims.exp == NOW + 600


def test_a_separate_dpop_key_is_what_the_token_is_bound_to(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    ephemeral = ServiceKey.generate("Ed25519")
    with client(gateway, key, dpop=ephemeral) as http:
        assert http.get(ECHO).status_code == 200
    assert gateway.calls[0].claims.jkt == ephemeral.thumbprint() != key.thumbprint()


def test_a_nonce_demanded_by_the_token_endpoint_is_sent_on_retry(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    gateway.nonce_on_token = True
    with client(gateway, key) as http:
        assert http.get(ECHO).status_code == 200
    refused, issued = gateway.token_responses
    assert refused.status_code == 401
    assert 'error="use_dpop_nonce"' in refused.headers["WWW-Authenticate"]
    assert claims_of(issued.request.headers["DPoP"])["nonce"] == refused.headers["DPoP-Nonce"]


def test_a_nonce_demanded_by_the_resource_is_retried_once_then_reused(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    gateway.nonce_on_resource = True
    with client(gateway, key) as http:
        assert http.get(ECHO).status_code == 200
        assert http.get(ECHO).status_code == 200
    statuses = [r.status_code for r in gateway.resource_responses]
    assert statuses == [401, 200, 200]  # the second request used the remembered nonce
    nonce = gateway.resource_responses[0].headers["DPoP-Nonce"]
    assert [call.proof and call.proof.nonce for call in gateway.calls] == [nonce, nonce]
    assert gateway.token_requests == 1


def test_a_nonce_challenge_is_retried_only_once(key: ServiceKey) -> None:
    def always_nonce(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/capabilities":
            body = {"access_token": "tok", "token_type": "DPoP", "expires_in": 900}
            return httpx.Response(200, json=body)
        challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-1"}
        return httpx.Response(401, headers=challenge)

    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return always_nonce(request)

    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as http:
        assert http.get(ECHO).status_code == 401
    assert [r.url.path for r in sent] == ["/v1/capabilities", "/v1/echo", "/v1/echo"]


def test_the_token_is_renewed_shortly_before_it_expires(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    with client(gateway, key) as http:
        http.get(ECHO)
        gateway.clock.now = NOW + 900 - 61  # 839 s into a 900 s token: keep it
        http.get(ECHO)
        assert gateway.token_requests == 1
        gateway.clock.now = NOW + 900 - 59  # less than 60 s left: renew first
        assert http.get(ECHO).status_code == 200
        assert gateway.token_requests == 2
    assert gateway.resource_responses[-1].status_code == 200
    assert gateway.calls[-1].claims.iat == NOW + 841


def test_a_short_token_is_renewed_at_80_percent_of_its_life(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    with client(gateway, key, ttl=100) as http:
        http.get(ECHO)
        gateway.clock.now = NOW + 79
        http.get(ECHO)
        gateway.clock.now = NOW + 80
        http.get(ECHO)
    assert gateway.token_requests == 2


def test_an_invalid_token_answer_renews_the_token_once(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    with client(gateway, key) as http:
        http.get(ECHO)
        gateway.revoked.add(gateway.calls[0].claims.jti)
        assert http.get(ECHO).status_code == 200
        assert gateway.token_requests == 2
        assert [r.status_code for r in gateway.resource_responses] == [200, 401, 200]
        assert 'error="invalid_token"' in gateway.resource_responses[1].headers["WWW-Authenticate"]
    assert gateway.calls[-1].claims.jti != gateway.calls[0].claims.jti


def test_invalid_token_is_retried_only_once(key: ServiceKey) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if request.url.path == "/v1/capabilities":
            body = {"access_token": f"tok{len(sent)}", "token_type": "DPoP", "expires_in": 900}
            return httpx.Response(200, json=body)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as http:
        assert http.get(ECHO).status_code == 401
    assert sent == ["/v1/capabilities", "/v1/echo", "/v1/capabilities", "/v1/echo"]


def test_bearer_mode_sends_no_proofs(gateway: FakeGateway, key: ServiceKey) -> None:
    with client(gateway, key, dpop=False) as http:
        assert http.get(ECHO).status_code == 200
    assert "DPoP" not in gateway.token_responses[0].request.headers
    request = gateway.calls[0].request
    assert request.headers["Authorization"].startswith("Bearer ")
    assert "DPoP" not in request.headers
    assert gateway.calls[0].proof is None


def test_a_dpop_token_without_a_dpop_key_is_refused(key: ServiceKey) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"access_token": "t", "token_type": "DPoP", "expires_in": 9}
        )

    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key, dpop=False)
    with (
        httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as http,
        pytest.raises(InvalidTokenResponse, match="no DPoP key"),
    ):
        http.get(ECHO)


def test_token_endpoint_errors_carry_status_and_code(gateway: FakeGateway, key: ServiceKey) -> None:
    stranger = ServiceKey.generate("Ed25519")
    with client(gateway, stranger) as http, pytest.raises(TokenRequestFailed) as caught:
        http.get(ECHO)
    assert (caught.value.status, caught.value.code) == (401, "invalid_token")
    assert caught.value.reason == "unknown_key"
    assert caught.value.request.url == TOKEN_URL
    assert caught.value.response is not None
    assert caught.value.response.status_code == 401
    assert isinstance(caught.value, SdkError)

    with client(gateway, key, scopes=["bogus"]) as http, pytest.raises(TokenRequestFailed) as bad:
        http.get(ECHO)
    assert (bad.value.status, bad.value.code) == (400, "invalid_request")
    assert "route:<glob>" in bad.value.message


def token_body(**fields: object) -> dict[str, object]:
    return {"access_token": "t", "token_type": "DPoP", "expires_in": 9} | fields


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (httpx.Response(503, text="upstream down"), "http_error"),
        (httpx.Response(400, json={"error": "invalid_client"}), "invalid_client"),
        (httpx.Response(200, text="not json"), "invalid_token_response"),
        (httpx.Response(200, json=token_body(access_token=None)), "invalid_token_response"),
        (httpx.Response(200, json=token_body(token_type="mac")), "invalid_token_response"),
        (httpx.Response(200, json=token_body(expires_in=True)), "invalid_token_response"),
        (httpx.Response(200, json=token_body(expires_in=0)), "invalid_token_response"),
        (httpx.Response(200, json=token_body(access_token="t\r\nX: y")), "invalid_token_response"),
        (httpx.Response(200, json=token_body(scope=7)), "invalid_token_response"),
    ],
)
def test_unusable_token_responses_raise(
    response: httpx.Response, code: str, key: ServiceKey
) -> None:
    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key)
    transport = httpx.MockTransport(lambda request: response)
    with (
        httpx.Client(auth=auth, transport=transport) as http,
        pytest.raises(TokenRequestFailed) as caught,
    ):
        http.get(ECHO)
    assert caught.value.code == code
    assert caught.value.status == response.status_code


def test_requests_to_other_origins_pass_through_untouched(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "gw.example":
            return gateway.handle(request)
        seen.append(request)
        return httpx.Response(204)

    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key, clock=gateway.clock)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as http:
        http.get("https://elsewhere.example/v1/echo")
        http.get("http://gw.example/v1/echo")  # another scheme is another origin
    assert gateway.token_requests == 0
    assert all("Authorization" not in r.headers and "DPoP" not in r.headers for r in seen)


def test_threads_share_one_token(gateway: FakeGateway, key: ServiceKey) -> None:
    with client(gateway, key) as http, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: http.get(ECHO).status_code, range(32)))
    assert statuses == [200] * 32
    assert gateway.token_requests == 1


@pytest.mark.anyio
async def test_async_client_shares_one_token(gateway: FakeGateway, key: ServiceKey) -> None:
    gateway.nonce_on_token = gateway.nonce_on_resource = True
    auth = CapabilityAuth(BASE_URL, CLIENT_ID, key, clock=gateway.clock)
    statuses: list[int] = []
    async with httpx.AsyncClient(auth=auth, transport=gateway.transport) as http:

        async def call() -> None:
            statuses.append((await http.get(ECHO)).status_code)

        async with anyio.create_task_group() as tasks:
            for _ in range(8):
                tasks.start_soon(call)
        await call()
    assert statuses == [200] * 9
    assert gateway.token_requests == 2  # one nonce challenge, then one token for everyone
    assert len(gateway.calls) == 9


def test_base_url_must_be_absolute(key: ServiceKey) -> None:
    with pytest.raises(ValueError, match="absolute"):
        CapabilityAuth("gw.example", CLIENT_ID, key)
