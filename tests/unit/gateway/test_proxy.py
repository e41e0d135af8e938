"""The proxy against an upstream that misbehaves in ways the simulator does not: answers
larger than ``max_upstream_body_bytes``, plain or as one stream event that never ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apicredits.demo import running_gateway, serving
from apicredits.settings import Settings
from gateway_support import Gateway, wait_for

LIMIT = 4096
CHAT = {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def answer(size: int) -> bytes:
    """An OpenAI chat completion of about ``size`` bytes."""
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    message = {"role": "assistant", "content": "x" * size}
    body = {"id": "c", "object": "chat.completion", "model": "sim-gpt", "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
    return json.dumps(body).encode()


async def bloated(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An OpenAI-compatible upstream: ``max_tokens`` 8 is a small answer, 9 a large one;
    a stream sends one event that never ends (until the client goes)."""
    if scope["type"] != "http":
        return
    request = b""
    while True:
        message = await receive()
        request += message.get("body", b"")
        if not message.get("more_body"):
            break
    doc = json.loads(request)
    if doc.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"data: {", "more_body": True})
        for _ in range(100):  # 100 KB, no end of event
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = answer(100 if doc["max_tokens"] == 8 else 2 * LIMIT)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serving(bloated) as upstream:
        settings = Settings(
            data_dir=Path(tmp_path_factory.mktemp("gw")),
            admin_token="t",
            sim_url=upstream,
            max_upstream_body_bytes=LIMIT,
        )
        with (
            running_gateway(settings) as url,
            httpx.Client(base_url=url, headers={"Authorization": "Bearer t"}, timeout=30) as admin,
        ):
            yield Gateway(url, admin)


def test_an_answer_within_the_limit_is_charged(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    r = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers={"x-api-key": key})
    assert r.status_code == 200, r.text
    assert gateway.balance(tid)["spent_micro"] == int(r.headers["apicredits-cost-micro"]) > 0


def test_an_answer_over_the_limit_is_a_502_and_refunded(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={**CHAT, "max_tokens": 9},
        headers={"x-api-key": key},
    )
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_error"
    assert f"larger than {LIMIT:,} bytes" in r.json()["error"]["message"]
    balance = gateway.balance(tid)
    assert (balance["locked_micro"], balance["spent_micro"]) == (0, 0)


def test_a_stream_event_over_the_limit_is_cut_and_refunded(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"x-api-key": key},
    )
    assert r.status_code == 200  # the stream had begun
    assert b"xxxx" not in r.content  # the event in progress was held back, then dropped
    assert b"the upstream stream ended early; the call was not charged" in r.content
    wait_for(lambda: gateway.balance(tid)["locked_micro"] == 0)  # settled in a task of its own
    assert gateway.balance(tid)["spent_micro"] == 0
