"""Token counts through the gateway with the official SDKs: the provider's count of the same
prompt a call reports, authenticated and rate-limited like a call, and never charged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from gateway_support import Gateway, gateway_on, gateway_settings

PROMPT = [{"role": "user", "content": "count the sheep that jump over the fence"}]
# an operator's names for the simulator's models: the provider must get its own name
HOUSE = {
    "house-gpt": {"provider": "sim", "upstream_model": "sim-gpt"},
    "house-claude": {"provider": "sim", "upstream_model": "sim-claude"},
    "house-gemini": {"provider": "sim", "upstream_model": "sim-gemini"},
}


@pytest.fixture(scope="module")
def gw(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = gateway_settings(sim_url, tmp_path_factory.mktemp("counts"), models=HOUSE)
    with gateway_on(settings) as gateway:
        yield gateway


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for client in made:
        client.close()


def untouched(gw: Gateway, tid: str) -> bool:
    balance = gw.balance(tid)
    return (balance["locked_micro"], balance["spent_micro"]) == (0, 0)


@pytest.mark.parametrize("model", ["sim-gpt", "house-gpt"])
def test_openai_counts_what_the_call_reports_for_free(
    gw: Gateway, clients: list[Any], model: str
) -> None:
    tid, key = gw.tenant()
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    clients.append(client)
    raw = client.responses.input_tokens.with_raw_response.count(
        model=model, input="name three rivers", instructions="be brief"
    )
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert raw.headers["apicredits-cost-micro"] == "0"
    assert raw.headers["apicredits-remaining-micro"] == "10000000"
    assert raw.headers["apicredits-request-id"].startswith("req_")
    assert untouched(gw, tid)
    called = client.responses.create(
        model="sim-gpt", input="name three rivers", instructions="be brief", max_output_tokens=8
    )
    assert called.usage is not None
    assert counted.input_tokens == called.usage.input_tokens


@pytest.mark.parametrize("model", ["sim-claude", "house-claude"])
def test_anthropic_counts_what_the_call_reports_for_free(
    gw: Gateway, clients: list[Any], model: str
) -> None:
    tid, key = gw.tenant()
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    clients.append(client)
    counted = client.messages.count_tokens(model=model, system="be brief", messages=PROMPT)  # type: ignore[arg-type]
    assert counted.input_tokens == 2 + 8 + 2 * 3  # the simulator's words, 3 per message
    assert untouched(gw, tid)
    called = client.messages.create(
        model="sim-claude",
        system="be brief",
        max_tokens=8,
        messages=PROMPT,  # type: ignore[arg-type]
    )
    assert counted.input_tokens == called.usage.input_tokens


@pytest.mark.parametrize("model", ["sim-gemini", "house-gemini"])
def test_gemini_counts_what_the_call_reports_for_free(
    gw: Gateway, clients: list[Any], model: str
) -> None:
    tid, key = gw.tenant()
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=gw.url))
    clients.append(client)
    counted = client.models.count_tokens(model=model, contents="name three rivers")
    assert untouched(gw, tid)
    called = client.models.generate_content(
        model="sim-gemini", contents="name three rivers", config={"max_output_tokens": 8}
    )
    assert called.usage_metadata is not None
    assert counted.total_tokens == called.usage_metadata.prompt_token_count
    whole = httpx.post(  # the call itself as generateContentRequest, as the REST API allows
        f"{gw.url}/v1beta/models/{model}:countTokens",
        json={"generateContentRequest": {"model": f"models/{model}",
                                         "contents": [{"parts": [{"text": "name three rivers"}]}]}},
        headers={"x-goog-api-key": key},
    )  # fmt: skip
    assert whole.status_code == 200, whole.text
    assert whole.json()["totalTokens"] == counted.total_tokens


def test_counts_need_a_credential_and_a_known_model(gw: Gateway, clients: list[Any]) -> None:
    _, key = gw.tenant()
    nobody = anthropic.Anthropic(base_url=gw.url, api_key="sk-nobody", max_retries=0)
    clients.append(nobody)
    with pytest.raises(anthropic.AuthenticationError):
        nobody.messages.count_tokens(model="sim-claude", messages=PROMPT)  # type: ignore[arg-type]
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    clients.append(client)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-99", messages=PROMPT)  # type: ignore[arg-type]
    google = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=gw.url))
    clients.append(google)
    with pytest.raises(genai_errors.ClientError) as err:
        google.models.count_tokens(model="gemini-99", contents="hi")
    assert err.value.code == 404


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"input": "hi"}, {}, "model is required"),
        (b"[1, 2]", {"content-type": "application/json"}, "must be a JSON object"),
        (b"{broken", {"content-type": "application/json"}, "not valid JSON"),
        ({"model": "sim-gpt", "input": "hi"}, {"content-type": "text/plain"}, "application/json"),
    ],
)
def test_a_bad_count_request_is_a_400_in_the_sdks_shape(
    gw: Gateway, body: object, headers: dict[str, str], message: str
) -> None:
    _, key = gw.tenant()
    sent = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(
        f"{gw.url}/v1/responses/input_tokens",
        headers={"authorization": f"Bearer {key}", **headers},
        **sent,  # type: ignore[arg-type]
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert message in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fail", "status", "code"),
    [("429", 429, "upstream_rate_limited"), ("500", 502, "upstream_error"),
     ("malformed", 502, "upstream_error"), ("cut", 502, "upstream_error")],
)  # fmt: skip
def test_a_failed_count_is_mapped_and_costs_nothing(
    gw: Gateway, fail: str, status: int, code: str
) -> None:
    tid, key = gw.tenant()
    r = httpx.post(
        f"{gw.url}/v1/messages/count_tokens",
        json={"model": "sim-claude", "messages": PROMPT},
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "x-sim-fail": fail},
    )
    assert r.status_code == status
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == code
    if status == 429:
        assert int(r.headers["retry-after"]) >= 1
    assert untouched(gw, tid)


def test_counts_spend_the_credentials_requests_per_minute(gw: Gateway) -> None:
    _, key = gw.tenant(requests_per_minute=1)
    url, body = f"{gw.url}/v1/responses/input_tokens", {"model": "sim-gpt", "input": "hi"}
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.post(url, json=body, headers=auth).status_code == 200
    before = refusals(gw)
    limited = httpx.post(url, json=body, headers=auth)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert refusals(gw) == before + 1


def refusals(gw: Gateway) -> float:
    """Rate-limit refusals, as /metrics counts them."""
    lines = httpx.get(f"{gw.url}/metrics").text.splitlines()
    prefix = "apicredits_rate_limit_rejections_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def test_counts_are_in_the_metrics(gw: Gateway) -> None:
    _, key = gw.tenant()
    httpx.post(
        f"{gw.url}/v1/messages/count_tokens",
        json={"model": "sim-claude", "messages": PROMPT},
        headers={"x-api-key": key},
    )
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'route="anthropic.count_tokens",status="200"' in text
