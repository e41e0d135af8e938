"""The gateway's answers in each SDK's own format: failed upstream calls, errors, replays,
a cut stream's last event and the charge headers."""

from __future__ import annotations

import json

import pytest

from apicredits.errors import InsufficientCredits, RateLimited
from apicredits.gateway.idempotency import Replay
from apicredits.gateway.sdk_responses import (
    UpstreamFailed,
    call_error,
    receipt_headers,
    replay_response,
    route_error,
    stream_error,
    upstream_failure,
)
from apicredits.oracle.messages import event_id
from apicredits.providers.base import Route


@pytest.mark.parametrize(
    ("status", "code", "client_status", "passed_through"),
    [
        (429, "upstream_rate_limited", 429, False),
        (400, "upstream_error", 400, True),  # about the request: the provider's own words
        (404, "upstream_error", 404, True),
        (401, "upstream_error", 502, False),  # the gateway's credential, not the client's
        (403, "upstream_error", 502, False),
        (500, "upstream_error", 502, False),
        (503, "upstream_error", 502, False),
    ],
)
def test_upstream_failure_maps_the_providers_status(
    status: int, code: str, client_status: int, passed_through: bool
) -> None:
    failure = upstream_failure("sim", status, {}, b'{"error": "theirs"}')
    assert (failure.code, failure.status) == (code, client_status)
    assert (failure.body == b'{"error": "theirs"}') is passed_through


def test_a_rate_limited_upstream_says_when_to_retry() -> None:
    assert upstream_failure("sim", 429, {"retry-after": "7"}, b"").retry_after == "7"
    assert upstream_failure("sim", 429, {}, b"").retry_after == "1"  # never without a hint


def test_route_error_takes_each_sdks_shape() -> None:
    exc = InsufficientCredits("tenant:t", 10, 3)
    openai = json.loads(route_error(Route.OPENAI_CHAT, exc).body)
    assert openai["error"]["code"] == "insufficient_credits"
    assert openai["error"]["needed_micro"] == 10
    anthropic = json.loads(route_error(Route.ANTHROPIC_MESSAGES, exc).body)
    assert anthropic["type"] == "error"
    assert anthropic["error"]["type"] == "insufficient_credits"
    gemini = json.loads(route_error(Route.GEMINI_GENERATE, exc).body)
    assert gemini["error"]["code"] == 402
    assert gemini["error"]["details"][0]["reason"] == "insufficient_credits"
    assert route_error(Route.OPENAI_CHAT, exc).status_code == 402


def test_route_error_passes_a_providers_4xx_through_and_carries_retry_after() -> None:
    refused = UpstreamFailed("upstream_error", 400, "sim refused", body=b'{"theirs": 1}')
    response = route_error(Route.OPENAI_CHAT, refused)
    assert (response.status_code, response.body) == (400, b'{"theirs": 1}')
    limited = route_error(Route.OPENAI_CHAT, RateLimited("requests_per_minute", 0.2))
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"  # whole seconds, rounded up
    upstream = UpstreamFailed("upstream_rate_limited", 429, "slow down", retry_after="4")
    assert route_error(Route.ANTHROPIC_MESSAGES, upstream).headers["retry-after"] == "4"


def test_a_replay_returns_the_stored_answer_but_never_a_stream() -> None:
    stored = replay_response(Route.OPENAI_CHAT, Replay("req_1", 200, b'{"ok": 1}', 14))
    assert (stored.status_code, stored.body) == (200, b'{"ok": 1}')
    assert stored.headers["apicredits-idempotent-replay"] == "true"
    assert stored.headers["apicredits-cost-micro"] == "14"
    streamed = replay_response(Route.OPENAI_CHAT, Replay("req_1", 200, None, 14))
    assert streamed.status_code == 409
    assert json.loads(streamed.body)["error"]["code"] == "already_completed"


def test_a_seed_api_replay_of_a_stream_is_refused_in_the_gateways_shape() -> None:
    streamed = replay_response(None, Replay("req_1", 200, None, 14))
    assert streamed.status_code == 409
    assert streamed.headers["apicredits-idempotent-replay"] == "true"
    assert json.loads(streamed.body) == {
        "error": {
            "code": "already_completed",
            "message": "this streamed request already completed; it was not charged again",
            "request_id": "req_1",
            "cost_micro": 14,
        }
    }


@pytest.mark.parametrize(
    ("body", "upstream"),
    [(b'{"error": {"message": "bad n"}}', {"error": {"message": "bad n"}}), (b"nope", "nope")],
)
def test_the_seed_api_carries_a_providers_refusal_as_upstream(
    body: bytes, upstream: object
) -> None:
    failure = upstream_failure("sim", 400, {}, body)
    seed = call_error(None, failure)
    assert seed.status_code == 400
    assert json.loads(seed.body) == {
        "error": {
            "code": "upstream_error",
            "message": "sim refused the request",
            "upstream": upstream,
        }
    }
    sdk = call_error(Route.OPENAI_CHAT, upstream_failure("sim", 400, {}, body))
    assert sdk.body == body  # a provider route passes the provider's own error through


def test_a_cut_stream_ends_with_an_error_event_in_its_dialect() -> None:
    anthropic = stream_error(Route.ANTHROPIC_MESSAGES, "upstream_error", "cut")
    assert anthropic.startswith(b"event: error\ndata: {")
    assert anthropic.endswith(b"\n\n")
    openai = stream_error(Route.OPENAI_CHAT, "upstream_error", "cut")
    assert openai.startswith(b"data: {")
    assert openai.endswith(b"\n\n")
    assert json.loads(openai[len(b"data: ") :])["error"]["code"] == "upstream_error"


def test_the_receipt_names_the_calls_usage_event() -> None:
    eid = "0x" + event_id("req_1").hex()
    assert receipt_headers("req_1") == {
        "apicredits-receipt": eid,
        "apicredits-receipt-url": f"/v1/usage/{eid}/proof",
    }
