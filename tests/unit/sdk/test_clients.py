"""The official OpenAI SDK through CapabilityAuth, against the fake gateway's real checks."""

from __future__ import annotations

import pytest
from fake_gateway import BASE_URL, FakeGateway

from apicredits.sdk import ServiceKey, async_openai_client, openai_client
from apicredits.sdk.clients import PLACEHOLDER_API_KEY

CLIENT_ID = "svc-chat"
SCOPES = ["route:/v1/chat/completions", "model:sim-*"]
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(params=["Ed25519", "P-256"])
def key(request: pytest.FixtureRequest) -> ServiceKey:
    return ServiceKey.generate(request.param)


@pytest.fixture
def gateway(key: ServiceKey) -> FakeGateway:
    gateway = FakeGateway(nonce_on_resource=True)
    gateway.register(CLIENT_ID, key)
    return gateway


def assert_dpop_calls(gateway: FakeGateway, key: ServiceKey, count: int) -> None:
    assert len(gateway.calls) == count
    for call in gateway.calls:
        assert call.request.url == f"{BASE_URL}/v1/chat/completions"
        assert call.request.headers["Authorization"].startswith("DPoP ")
        assert PLACEHOLDER_API_KEY not in call.request.headers["Authorization"]
        assert call.proof is not None
        assert call.proof.jkt == call.claims.jkt == key.thumbprint()
        assert call.claims.scopes == tuple(SCOPES)
    sent = [r.request for r in gateway.token_responses + gateway.resource_responses]
    assert all(PLACEHOLDER_API_KEY not in r.headers.get("Authorization", "") for r in sent)


def test_openai_chat_completion_through_capability_auth(
    gateway: FakeGateway, key: ServiceKey
) -> None:
    client = openai_client(
        BASE_URL, CLIENT_ID, key, scopes=SCOPES, transport=gateway.transport,
        clock=gateway.clock, max_retries=0,
    )  # fmt: skip
    with client:
        for _ in range(2):
            completion = client.chat.completions.create(model="sim-medium", messages=MESSAGES)  # type: ignore[arg-type]
            assert completion.choices[0].message.content == "hello from the gateway"
            assert completion.model == "sim-medium"  # the body survived the nonce retry
    assert_dpop_calls(gateway, key, 2)
    assert gateway.token_requests == 1


def test_openai_model_outside_the_scopes_is_refused(gateway: FakeGateway, key: ServiceKey) -> None:
    import openai

    client = openai_client(
        BASE_URL, CLIENT_ID, key, scopes=SCOPES, transport=gateway.transport,
        clock=gateway.clock, max_retries=0,
    )  # fmt: skip
    with client, pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_openai_chat_completion(gateway: FakeGateway, key: ServiceKey) -> None:
    client = async_openai_client(
        BASE_URL, CLIENT_ID, key, scopes=SCOPES, transport=gateway.transport,
        clock=gateway.clock, max_retries=0,
    )  # fmt: skip
    async with client:
        for _ in range(2):
            completion = await client.chat.completions.create(model="sim-large", messages=MESSAGES)  # type: ignore[arg-type]
            assert completion.model == "sim-large"
    assert_dpop_calls(gateway, key, 2)
