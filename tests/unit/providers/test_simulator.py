from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicredits.providers.simulator import (
    SIM_MODELS,
    WORDS,
    completion_words,
    create_sim_app,
    prompt_tokens_of,
)

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
GEMINI = "/v1beta/models/sim-gemini:generateContent"
GEMINI_SSE = "/v1beta/models/sim-gemini:streamGenerateContent?alt=sse"
USER = "what does the meter count"  # 5 words


async def post(path: str, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_sim_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post(path, content=content, headers=headers or {})


def events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event."""
    parsed = []
    for block in response.text.split("\n\n"):
        if not block:
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        parsed.append((name, "\n".join(data)))
    return parsed


def chat_body(**extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": USER}, {"type": "image_url"}]},
    ]
    return {"model": "sim-gpt", "messages": messages, **extra}


CHAT_PROMPT = "be brief\n" + USER
CHAT_TOKENS = 2 + 5 + 2 * 3


# -- rules -----------------------------------------------------------------------------------


def test_prompt_tokens_count_words_and_messages() -> None:
    assert prompt_tokens_of(["a b  c", " d\n e "], 2) == 5 + 6
    assert prompt_tokens_of([], 0) == 0


@given(st.text(), st.one_of(st.none(), st.integers(0, 100)))
def test_completion_words_follow_the_rule(prompt: str, max_tokens: int | None) -> None:
    words = completion_words(prompt, max_tokens)
    natural = completion_words(prompt, None)
    assert 16 <= len(natural) <= 47
    assert len(words) == (len(natural) if max_tokens is None else min(max_tokens, len(natural)))
    assert words == natural[: len(words)]
    start = WORDS.index(natural[0])
    assert natural == [WORDS[(start + i) % len(WORDS)] for i in range(len(natural))]
    assert completion_words(prompt, max_tokens) == words


# -- OpenAI ----------------------------------------------------------------------------------


async def test_models_lists_the_sim_models() -> None:
    transport = httpx.ASGITransport(app=create_sim_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        response = await client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(SIM_MODELS)
    assert {m["owned_by"] for m in body["data"]} == {"apicredits-sim"}


async def test_chat_completion_text_and_usage() -> None:
    response = await post(CHAT, chat_body())
    assert response.status_code == 200
    body = response.json()
    words = completion_words(CHAT_PROMPT, None)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == " ".join(words)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": CHAT_TOKENS,
        "completion_tokens": len(words),
        "total_tokens": CHAT_TOKENS + len(words),
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


async def test_chat_is_deterministic_but_ids_are_unique() -> None:
    first = (await post(CHAT, chat_body())).json()
    second = (await post(CHAT, chat_body())).json()
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]
    assert first["id"] != second["id"]


async def test_chat_max_tokens_cut_the_answer() -> None:
    body = (await post(CHAT, chat_body(max_tokens=100, max_completion_tokens=4))).json()
    assert body["choices"][0]["message"]["content"].split() == completion_words(CHAT_PROMPT, 4)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4


async def test_chat_usage_modifiers() -> None:
    headers = {"x-sim-cached-tokens": "1000", "x-sim-reasoning-tokens": "7"}
    usage = (await post(CHAT, chat_body(max_tokens=5), headers)).json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == CHAT_TOKENS  # capped
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 7
    assert usage["completion_tokens"] == 5 + 7
    assert usage["total_tokens"] == CHAT_TOKENS + 12


async def test_chat_stream_one_chunk_per_word_without_usage() -> None:
    response = await post(CHAT, chat_body(stream=True, max_tokens=5))
    assert response.headers["content-type"] == "text/event-stream"
    data = [d for _, d in events(response)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == " ".join(
        completion_words(CHAT_PROMPT, 5)
    )
    assert len(chunks) == 5 + 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert not any("usage" in c for c in chunks)


async def test_chat_stream_usage_chunk_when_asked() -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    response = await post(CHAT, body, {"x-sim-reasoning-tokens": "2"})
    data = [d for _, d in events(response)]
    usage_chunk = json.loads(data[-2])
    words = completion_words(CHAT_PROMPT, None)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == CHAT_TOKENS
    assert usage_chunk["usage"]["completion_tokens"] == len(words) + 2
    assert json.loads(data[-3])["choices"][0]["finish_reason"] == "stop"
    assert len(data) == len(words) + 3


async def test_embeddings_floats_and_base64_agree() -> None:
    body = {"model": "sim-embed", "input": ["one two three", "four"]}
    floats = (await post("/v1/embeddings", body)).json()
    packed = (await post("/v1/embeddings", {**body, "encoding_format": "base64"})).json()
    assert floats["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert [d["index"] for d in floats["data"]] == [0, 1]
    for plain, encoded in zip(floats["data"], packed["data"], strict=True):
        assert len(plain["embedding"]) == 8
        decoded = struct.unpack("<8f", base64.b64decode(encoded["embedding"]))
        assert decoded == pytest.approx(plain["embedding"], abs=1e-6)
    single = (await post("/v1/embeddings", {"model": "sim-embed", "input": "four"})).json()
    assert single["data"][0]["embedding"] == floats["data"][1]["embedding"]
    sized = (await post("/v1/embeddings", {**body, "dimensions": 40})).json()
    assert len(sized["data"][0]["embedding"]) == 40
    tokens = (await post("/v1/embeddings", {"model": "sim-embed", "input": [1, 2, 3]})).json()
    assert tokens["usage"]["prompt_tokens"] == 3


async def test_responses_text_and_usage() -> None:
    body = {"model": "sim-gpt", "instructions": "be brief", "input": USER}
    response = await post("/v1/responses", body, {"x-sim-cached-tokens": "3"})
    result = response.json()
    words = completion_words(CHAT_PROMPT, None)
    assert result["object"] == "response"
    assert result["status"] == "completed"
    assert result["output"][0]["content"][0]["text"] == " ".join(words)
    assert result["usage"] == {
        "input_tokens": CHAT_TOKENS,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": len(words),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": CHAT_TOKENS + len(words),
    }


async def test_responses_input_list_counts_per_item() -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "a b"}]},
        {"role": "assistant", "content": "c"},
        {"type": "function_call_output", "call_id": "x", "output": "ignored"},
    ]
    usage = (await post("/v1/responses", {"model": "sim-gpt", "input": items})).json()["usage"]
    assert usage["input_tokens"] == 3 + 3 * 3


async def test_responses_stream_events() -> None:
    body = {"model": "sim-gpt", "input": USER, "stream": True, "max_output_tokens": 4}
    stream = events(await post("/v1/responses", body, {"x-sim-reasoning-tokens": "5"}))
    names = [name for name, _ in stream]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    parsed = [json.loads(d) for _, d in stream]
    assert [p["type"] for p in parsed] == names
    assert [p["sequence_number"] for p in parsed] == list(range(len(parsed)))
    text = " ".join(completion_words(USER, 4))
    assert "".join(p["delta"] for p in parsed[4:8]) == text
    assert parsed[8]["text"] == text
    usage = parsed[-1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (5 + 3, 4 + 5)
    assert usage["output_tokens_details"]["reasoning_tokens"] == 5


# -- Anthropic -------------------------------------------------------------------------------


def messages_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "sim-claude",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [{"role": "user", "content": USER}],
        **extra,
    }


async def test_messages_text_and_cache_usage() -> None:
    headers = {"x-sim-cached-tokens": "4", "x-sim-cache-write-tokens": "2"}
    result = (await post("/v1/messages", messages_body(), headers)).json()
    words = completion_words(CHAT_PROMPT, None)
    assert result["type"] == "message"
    assert result["content"] == [{"type": "text", "text": " ".join(words)}]
    assert result["stop_reason"] == "end_turn"
    assert result["usage"] == {
        "input_tokens": CHAT_TOKENS - 4 - 2,
        "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 4,
        "output_tokens": len(words),
    }


async def test_messages_cache_write_is_capped_by_what_the_read_left() -> None:
    headers = {"x-sim-cached-tokens": "10", "x-sim-cache-write-tokens": "100"}
    usage = (await post("/v1/messages", messages_body(), headers)).json()["usage"]
    assert usage["cache_read_input_tokens"] == 10
    assert usage["cache_creation_input_tokens"] == CHAT_TOKENS - 10
    assert usage["input_tokens"] == 0


async def test_messages_stream_events() -> None:
    stream = events(await post("/v1/messages", messages_body(stream=True, max_tokens=3)))
    names = [name for name, _ in stream]
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    parsed = [json.loads(d) for _, d in stream]
    assert [p["type"] for p in parsed] == names
    start_usage = parsed[0]["message"]["usage"]
    assert (start_usage["input_tokens"], start_usage["output_tokens"]) == (CHAT_TOKENS, 1)
    text = "".join(p["delta"]["text"] for p in parsed[2:5])
    assert text == " ".join(completion_words(CHAT_PROMPT, 3))
    assert parsed[-2]["usage"]["output_tokens"] == 3
    assert parsed[-2]["delta"]["stop_reason"] == "max_tokens"


# -- Gemini ----------------------------------------------------------------------------------


def generate_body(**config: Any) -> dict[str, Any]:
    return {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": USER}, {"inlineData": {}}]}],
        "generationConfig": config,
    }


async def test_generate_content_text_and_usage() -> None:
    headers = {"x-sim-cached-tokens": "4", "x-sim-reasoning-tokens": "9"}
    result = (await post(GEMINI, generate_body(maxOutputTokens=6), headers)).json()
    candidate = result["candidates"][0]
    assert candidate["content"]["parts"][0]["text"] == " ".join(completion_words(CHAT_PROMPT, 6))
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert result["modelVersion"] == "sim-gemini"
    assert result["usageMetadata"] == {
        "promptTokenCount": CHAT_TOKENS,
        "candidatesTokenCount": 6,
        "totalTokenCount": CHAT_TOKENS + 6 + 9,
        "cachedContentTokenCount": 4,
        "thoughtsTokenCount": 9,
    }
    plain = (await post(GEMINI, generate_body())).json()
    assert plain["candidates"][0]["finishReason"] == "STOP"
    assert set(plain["usageMetadata"]) == {
        "promptTokenCount",
        "candidatesTokenCount",
        "totalTokenCount",
    }


async def test_generate_stream_sse_and_json_array_agree() -> None:
    sse = await post(GEMINI_SSE, generate_body(maxOutputTokens=4))
    chunks = [json.loads(d) for _, d in events(sse)]
    assert len(chunks) == 4
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [1, 2, 3, 4]
    assert ["finishReason" in c["candidates"][0] for c in chunks] == [False] * 3 + [True]
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == " ".join(completion_words(CHAT_PROMPT, 4))
    array = await post(GEMINI_SSE.removesuffix("?alt=sse"), generate_body(maxOutputTokens=4))
    assert array.headers["content-type"] == "application/json"
    listed = array.json()
    for chunk in [*listed, *chunks]:
        del chunk["responseId"]
    assert listed == chunks


async def test_generate_accepts_the_v1_prefix_and_empty_answers() -> None:
    path = "/v1/models/sim-gemini:streamGenerateContent?alt=sse"
    chunks = [json.loads(d) for _, d in events(await post(path, generate_body(maxOutputTokens=0)))]
    assert len(chunks) == 1
    assert chunks[0]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert chunks[0]["usageMetadata"]["candidatesTokenCount"] == 0


# -- token counts ----------------------------------------------------------------------------


async def test_token_counts_are_the_prompt_tokens_a_call_reports() -> None:
    responses = {"model": "sim-gpt", "instructions": "be brief", "input": USER}
    counted = (await post("/v1/responses/input_tokens", responses)).json()
    assert counted == {"object": "response.input_tokens", "input_tokens": CHAT_TOKENS}
    called = (await post("/v1/responses", responses)).json()
    assert called["usage"]["input_tokens"] == CHAT_TOKENS
    counted = (await post("/v1/messages/count_tokens", messages_body())).json()
    called = (await post("/v1/messages", messages_body())).json()
    assert counted == {"input_tokens": called["usage"]["input_tokens"]}
    gemini = {k: v for k, v in generate_body().items() if k != "generationConfig"}
    counted = (await post("/v1beta/models/sim-gemini:countTokens", gemini)).json()
    assert counted["totalTokens"] == CHAT_TOKENS
    assert counted["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": CHAT_TOKENS}]
    whole = {"generateContentRequest": {"model": "models/sim-gemini", **generate_body()}}
    assert (await post("/v1/models/sim-gemini:countTokens", whole)).json() == counted


async def test_a_part_of_an_odd_type_is_not_text() -> None:
    # found by fuzzing: a list as a part's type was a 500
    odd = [{"type": [1], "text": "not counted"}, {"type": "input_text", "text": "two words"}]
    body = {"model": "sim-gpt", "input": [{"role": "user", "content": odd}]}
    counted = await post("/v1/responses/input_tokens", body)
    assert counted.status_code == 200
    assert counted.json()["input_tokens"] == 2 + 3


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages/count_tokens", {"model": "sim-claude"}),
        ("/v1/responses/input_tokens", {"model": "sim-gpt", "input": 3}),
        ("/v1beta/models/sim-gemini:countTokens", {"generateContentRequest": []}),
        ("/v1beta/models/sim-gemini:countTokens", {}),
    ],
)
async def test_a_malformed_count_request_is_400(path: str, body: dict[str, Any]) -> None:
    response = await post(path, body)
    assert response.status_code == 400
    assert_error_shape(path, response.json(), 400)


# -- failure modes ---------------------------------------------------------------------------

DIALECTS = [
    (CHAT, chat_body()),
    ("/v1/messages", messages_body()),
    (GEMINI, generate_body()),
]


@pytest.mark.parametrize(("path", "body"), DIALECTS)
@pytest.mark.parametrize("status", [429, 500])
async def test_failures_use_each_providers_error_shape(
    path: str, body: dict[str, Any], status: int
) -> None:
    response = await post(path, body, {"x-sim-fail": str(status)})
    assert response.status_code == status
    assert (response.headers.get("retry-after") == "1") is (status == 429)
    assert_error_shape(path, response.json(), status)


def assert_error_shape(path: str, error: dict[str, Any], status: int) -> None:
    if path.startswith("/v1/messages"):
        assert error["type"] == "error"
        assert set(error["error"]) == {"type", "message"}
    elif path.startswith("/v1beta"):
        assert set(error["error"]) == {"code", "message", "status"}
        assert error["error"]["code"] == status
    else:
        assert set(error["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("path", "body"), DIALECTS)
async def test_unknown_model_is_404(path: str, body: dict[str, Any]) -> None:
    if path == GEMINI:
        path = path.replace("sim-gemini", "gemini-2.5-pro")
    else:
        body = {**body, "model": "gpt-4o"}
    response = await post(path, body)
    assert response.status_code == 404
    assert_error_shape(path, response.json(), 404)


@pytest.mark.parametrize(("path", "body"), DIALECTS)
async def test_malformed_request_is_400(path: str, body: dict[str, Any]) -> None:
    response = await post(path, json.dumps(body).encode()[:-3])
    assert response.status_code == 400
    assert_error_shape(path, response.json(), 400)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (CHAT, {"x-sim-fail": "teapot"}),
        (CHAT, {"x-sim-latency-ms": "-1"}),
    ],
)
async def test_bad_sim_headers_are_400(path: str, headers: dict[str, str]) -> None:
    assert (await post(path, chat_body(), headers)).status_code == 400


async def test_unknown_path_and_wrong_method() -> None:
    assert (await post("/v1/nothing", {})).status_code == 404
    transport = httpx.ASGITransport(app=create_sim_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        assert (await client.get(CHAT)).status_code == 405
        assert (await client.post("/v1/models")).status_code == 405


@pytest.mark.parametrize(
    ("path", "body"), [*DIALECTS, ("/v1/embeddings", {"model": "sim-embed", "input": "x"})]
)
async def test_malformed_and_cut_bodies_are_not_json(path: str, body: dict[str, Any]) -> None:
    whole = await post(path, body)
    for fail in ("malformed", "cut"):
        response = await post(path, body, {"x-sim-fail": fail})
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
    cut = await post(path, body, {"x-sim-fail": "cut"})
    assert len(cut.content) == len(whole.content) // 2


STREAMS = [
    (CHAT, chat_body(stream=True, stream_options={"include_usage": True}), 0),
    ("/v1/responses", {"model": "sim-gpt", "input": USER, "stream": True}, 4),
    ("/v1/messages", messages_body(stream=True), 2),
    (GEMINI_SSE, generate_body(), 0),
]


@pytest.mark.parametrize(("path", "body", "head"), STREAMS)
async def test_cut_stream_stops_after_k_words(path: str, body: dict[str, Any], head: int) -> None:
    full = events(await post(path, body))
    for k, headers in [(3, {}), (5, {"x-sim-cut-after": "5"}), (0, {"x-sim-cut-after": "0"})]:
        cut = events(await post(path, body, {"x-sim-fail": "cut", **headers}))
        assert len(cut) == head + k
        assert [name for name, _ in cut] == [name for name, _ in full[: head + k]]
        for (_, got), (_, want) in zip(cut, full, strict=False):
            assert strip_ids(got) == strip_ids(want)


def strip_ids(data: str) -> object:
    """A chunk without its per-response id and creation time (two requests may straddle a
    second), to compare cut with full."""
    parsed = json.loads(data)
    text = json.dumps(parsed)
    for key in ("chatcmpl-", "resp_", "msg_"):
        while key in text:
            start = text.index(key)
            end = text.index('"', start)
            text = text[:start] + text[end:]
    return _without(json.loads(text), {"responseId", "created", "created_at"})


def _without(value: object, keys: set[str]) -> object:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


@pytest.mark.parametrize(("path", "body", "head"), STREAMS)
async def test_malformed_stream_has_one_non_json_event(
    path: str, body: dict[str, Any], head: int
) -> None:
    full = events(await post(path, body))
    broken = events(await post(path, body, {"x-sim-fail": "malformed"}))
    assert len(broken) == len(full) + 1
    bad = []
    for i, (_, data) in enumerate(broken):
        if data == "[DONE]":
            continue
        try:
            json.loads(data)
        except ValueError:
            bad.append(i)
    assert bad == [head + 1]


async def test_latency_delays_the_answer() -> None:
    started = time.monotonic()
    response = await post(CHAT, chat_body(), {"x-sim-latency-ms": "120"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.12
