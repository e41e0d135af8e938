from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicredits.errors import InvalidInput
from apicredits.providers.dialects import (
    UPSTREAM_TIMEOUT,
    CallPlan,
    MalformedUpstream,
    Route,
    error_body,
    plan_call,
    upstream_body,
    upstream_error_code,
    upstream_path,
    usage_from_response,
)
from apicredits.tariffs.units import Unit

# -- usage from non-streaming responses (payloads as documented by each provider) ------------

OPENAI_CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "o4-mini-2025-04-16",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi!", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 546,
        "total_tokens": 1663,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 448,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}
OPENAI_EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}
OPENAI_RESPONSES = {
    "id": "resp_67ccd3a9da748190baa7f1570fe91ac6",
    "object": "response",
    "created_at": 1741476777,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c7d54b34",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "The image depicts...", "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 128},
        "output_tokens": 52,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 380,
    },
}
ANTHROPIC = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 2051, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}
GEMINI = {
    "candidates": [
        {
            "content": {"parts": [{"text": "AI learns patterns from data."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 2108,
        "candidatesTokenCount": 94,
        "totalTokenCount": 2726,
        "cachedContentTokenCount": 2048,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2108}],
        "thoughtsTokenCount": 524,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "Jd9taPuoBqSEm9kP1ryT4QQ",
}


@pytest.mark.parametrize(
    ("route", "payload", "expected"),
    [
        (
            Route.OPENAI_CHAT,
            OPENAI_CHAT,
            {
                Unit.INPUT_TOKENS: 93,
                Unit.CACHED_INPUT_TOKENS: 1024,
                Unit.OUTPUT_TOKENS: 98,
                Unit.REASONING_TOKENS: 448,
            },
        ),
        (Route.OPENAI_EMBEDDINGS, OPENAI_EMBEDDINGS, {Unit.INPUT_TOKENS: 8}),
        (
            Route.OPENAI_RESPONSES,
            OPENAI_RESPONSES,
            {Unit.INPUT_TOKENS: 200, Unit.CACHED_INPUT_TOKENS: 128, Unit.OUTPUT_TOKENS: 52},
        ),
        (
            Route.ANTHROPIC_MESSAGES,
            ANTHROPIC,
            {Unit.INPUT_TOKENS: 2095, Unit.CACHE_WRITE_TOKENS: 2051, Unit.OUTPUT_TOKENS: 503},
        ),
        (
            Route.GEMINI_GENERATE,
            GEMINI,
            {
                Unit.INPUT_TOKENS: 60,
                Unit.CACHED_INPUT_TOKENS: 2048,
                Unit.OUTPUT_TOKENS: 94,
                Unit.REASONING_TOKENS: 524,
            },
        ),
        (
            Route.GEMINI_STREAM,  # streamGenerateContent without alt=sse answers an array
            [{"candidates": []}, GEMINI],
            {
                Unit.INPUT_TOKENS: 60,
                Unit.CACHED_INPUT_TOKENS: 2048,
                Unit.OUTPUT_TOKENS: 94,
                Unit.REASONING_TOKENS: 524,
            },
        ),
    ],
)
def test_usage_from_response(route: Route, payload: object, expected: dict[Unit, int]) -> None:
    assert usage_from_response(route, json.dumps(payload).encode()) == expected


def test_usage_omits_zero_units_and_tolerates_null_details() -> None:
    payload = {"usage": {"prompt_tokens": 5, "completion_tokens": 0, "prompt_tokens_details": None}}
    assert usage_from_response(Route.OPENAI_CHAT, json.dumps(payload).encode()) == {
        Unit.INPUT_TOKENS: 5
    }
    gemini = {"usageMetadata": {"promptTokenCount": 4, "toolUsePromptTokenCount": 6}}
    assert usage_from_response(Route.GEMINI_GENERATE, json.dumps(gemini).encode()) == {
        Unit.INPUT_TOKENS: 10
    }


def _with_usage(payload: dict[str, Any], key: str, **changes: object) -> bytes:
    return json.dumps({**payload, key: {**payload[key], **changes}}).encode()


@pytest.mark.parametrize(
    ("route", "payload", "match"),
    [
        (Route.OPENAI_CHAT, b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (Route.OPENAI_CHAT, b"\xff\xfe", "not valid JSON"),
        (Route.OPENAI_CHAT, b"[1, 2]", "not a JSON object"),
        (Route.OPENAI_CHAT, json.dumps({"choices": []}).encode(), "no usage"),
        (Route.OPENAI_CHAT, json.dumps({"usage": None}).encode(), "no usage"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", prompt_tokens=-1), "non-negative"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", prompt_tokens=1.5), "non-negative"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", prompt_tokens=True), "non-negative"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", prompt_tokens="9"), "non-negative"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", completion_tokens=None), "non-neg"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", prompt_tokens=10), "cached"),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", completion_tokens=5), "reasoning"),
        (
            Route.OPENAI_CHAT,
            _with_usage(OPENAI_CHAT, "usage", prompt_tokens_details=[1]),
            "must be an object",
        ),
        (Route.OPENAI_CHAT, _with_usage(OPENAI_CHAT, "usage", prompt_tokens=2**64), "non-neg"),
        (Route.OPENAI_EMBEDDINGS, json.dumps({"usage": {}}).encode(), "prompt_tokens"),
        (Route.OPENAI_RESPONSES, _with_usage(OPENAI_RESPONSES, "usage", input_tokens=1), "cached"),
        (Route.ANTHROPIC_MESSAGES, _with_usage(ANTHROPIC, "usage", output_tokens=None), "output"),
        (
            Route.ANTHROPIC_MESSAGES,
            _with_usage(ANTHROPIC, "usage", cache_read_input_tokens=-3),
            "cache_read",
        ),
        (Route.GEMINI_GENERATE, json.dumps({"candidates": []}).encode(), "usageMetadata"),
        (
            Route.GEMINI_GENERATE,
            _with_usage(GEMINI, "usageMetadata", promptTokenCount=None),
            "promptTokenCount",
        ),
        (
            Route.GEMINI_GENERATE,
            _with_usage(GEMINI, "usageMetadata", cachedContentTokenCount=9999),
            "cached",
        ),
        (Route.GEMINI_STREAM, b"[]", "usageMetadata"),
    ],
)
def test_malformed_usage(route: Route, payload: bytes, match: str) -> None:
    with pytest.raises(MalformedUpstream, match=match) as caught:
        usage_from_response(route, payload)
    assert (caught.value.code, caught.value.status) == ("upstream_malformed", 502)


# -- plans -------------------------------------------------------------------------------------

CHAT_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y"}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_completion_tokens": 300,
    "n": 2,
}


def test_plan_openai_chat() -> None:
    plan = plan_call(Route.OPENAI_CHAT, CHAT_BODY)
    assert plan.model == "gpt-4o"
    assert plan.stream
    assert plan.client_wants_usage_chunk
    assert plan.max_output_tokens == 600  # n choices of up to 300 tokens
    assert 1000 + 5 * 8 + 16 < plan.input_tokens_estimate < 1300  # one image + text + tools


def test_plan_defaults() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    plan = plan_call(Route.OPENAI_CHAT, body, default_max_output_tokens=99)
    assert plan == CallPlan("gpt-4o", False, 2 + 8 + 16, 99, False)
    streamed = plan_call(Route.OPENAI_CHAT, {**body, "stream": True, "max_tokens": 5})
    assert (streamed.stream, streamed.client_wants_usage_chunk) == (True, False)
    assert streamed.max_output_tokens == 5


def test_plan_openai_embeddings() -> None:
    assert plan_call(Route.OPENAI_EMBEDDINGS, {"model": "e", "input": "abcd"}) == CallPlan(
        "e", False, 2 + 1 + 8 + 16, 0, False
    )
    tokens = plan_call(Route.OPENAI_EMBEDDINGS, {"model": "e", "input": [1, 2, 3]})
    assert tokens.input_tokens_estimate == 3 + 8 + 16
    nested = plan_call(Route.OPENAI_EMBEDDINGS, {"model": "e", "input": [[1, 2], [3], "ab"]})
    assert nested.input_tokens_estimate == 3 + 2 + 3 * 8 + 16


def test_plan_openai_responses() -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Describe"}]},
            {"role": "user", "content": [{"type": "input_image", "image_url": "data:..."}]},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
        "max_output_tokens": 1024,
        "stream": True,
    }
    plan = plan_call(Route.OPENAI_RESPONSES, body)
    assert (plan.stream, plan.max_output_tokens, plan.client_wants_usage_chunk) == (
        True,
        1024,
        False,
    )
    assert plan.input_tokens_estimate > 1000 + 4 * 8 + 16
    assert (
        plan_call(Route.OPENAI_RESPONSES, {"model": "m", "input": "hi"}).max_output_tokens == 4096
    )


def test_plan_anthropic() -> None:
    body = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are a pirate.", "cache_control": {}}],
        "messages": [
            {"role": "user", "content": "Hello"},
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "data": "iVBOR" * 999}},
                    {"type": "document", "source": {"type": "text", "data": "x" * 4000}},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "15 degrees"}],
                    },
                ],
            },
        ],
    }
    plan = plan_call(Route.ANTHROPIC_MESSAGES, body)
    assert plan.max_output_tokens == 1024
    assert not plan.stream
    # one image at the fixed cost (not its base64 size), the text document by its bytes
    assert 1000 + 2000 + 3 * 8 + 16 < plan.input_tokens_estimate < 1000 + 2000 + 100


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 7, None])
def test_a_part_of_an_odd_type_is_read_as_text(kind: object) -> None:
    # found by fuzzing: a list as a part's type was a 500 (unhashable in the media lookup)
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": kind, "data": "x" * 400}]}]}  # fmt: skip
    plan = plan_call(Route.ANTHROPIC_MESSAGES, body)
    assert plan.input_tokens_estimate > 100  # its JSON, counted as text


def test_plan_gemini() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Explain"}, {"inlineData": {"data": "AAAA"}}]}
        ],
        "systemInstruction": {"parts": [{"text": "Be brief"}]},
        "generationConfig": {"maxOutputTokens": 800, "candidateCount": 2},
    }
    plan = plan_call(Route.GEMINI_STREAM, body, model_from_path="gemini-2.5-flash")
    assert plan.model == "gemini-2.5-flash"
    assert plan.stream
    assert plan.max_output_tokens == 1600
    assert plan.input_tokens_estimate > 1000 + 2 * 8 + 16
    snake = {"contents": body["contents"], "generation_config": {"max_output_tokens": 7}}
    assert plan_call(Route.GEMINI_GENERATE, snake, model_from_path="g").max_output_tokens == 7
    assert not plan_call(Route.GEMINI_GENERATE, snake, model_from_path="g").stream


MSG = [{"role": "user", "content": "hi"}]
CONTENTS = [{"parts": [{"text": "hi"}]}]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        (Route.OPENAI_CHAT, [], "body"),
        (Route.OPENAI_CHAT, {"messages": MSG}, "model"),
        (Route.OPENAI_CHAT, {"model": "", "messages": MSG}, "model"),
        (Route.OPENAI_CHAT, {"model": 3, "messages": MSG}, "model"),
        (Route.OPENAI_CHAT, {"model": "m"}, "messages"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": []}, "messages"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": "hi"}, "messages"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": ["hi"]}, "messages[0]"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": [{"content": 5}]}, "messages[0].content"),
        (
            Route.OPENAI_CHAT,
            {"model": "m", "messages": [{"content": ["x"]}]},
            "messages[0].content[0]",
        ),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "stream": "yes"}, "stream"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "stream_options": 1}, "stream_options"),
        (
            Route.OPENAI_CHAT,
            {"model": "m", "messages": MSG, "stream_options": {"include_usage": 1}},
            "stream_options.include_usage",
        ),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "max_tokens": 0}, "max_tokens"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "max_tokens": -5}, "max_tokens"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "max_tokens": 1.0}, "max_tokens"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "max_tokens": True}, "max_tokens"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "max_tokens": "9"}, "max_tokens"),
        (
            Route.OPENAI_CHAT,
            {"model": "m", "messages": MSG, "max_completion_tokens": 1_000_001},
            "max_completion_tokens",
        ),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "n": 0}, "n"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "n": 129}, "n"),
        (Route.OPENAI_CHAT, {"model": "m", "messages": MSG, "n": 100, "max_tokens": 10**5}, "n"),
        (Route.OPENAI_EMBEDDINGS, {"model": "m"}, "input"),
        (Route.OPENAI_EMBEDDINGS, {"model": "m", "input": []}, "input"),
        (Route.OPENAI_EMBEDDINGS, {"model": "m", "input": [{"x": 1}]}, "input[0]"),
        (Route.OPENAI_EMBEDDINGS, {"model": "m", "input": ["a", []]}, "input[1]"),
        (Route.OPENAI_EMBEDDINGS, {"input": "a"}, "model"),
        (Route.OPENAI_RESPONSES, {"model": "m"}, "input"),
        (Route.OPENAI_RESPONSES, {"model": "m", "input": [3]}, "input[0]"),
        (Route.OPENAI_RESPONSES, {"model": "m", "input": "x", "instructions": 1}, "instructions"),
        (
            Route.OPENAI_RESPONSES,
            {"model": "m", "input": "x", "max_output_tokens": 0},
            "max_output_tokens",
        ),
        (
            Route.OPENAI_RESPONSES,
            {"model": "m", "input": "x", "previous_response_id": "resp_1"},
            "previous_response_id",
        ),
        (Route.OPENAI_RESPONSES, {"model": "m", "input": "x", "stream": 1}, "stream"),
        (Route.ANTHROPIC_MESSAGES, {"model": "m", "messages": MSG}, "max_tokens"),
        (Route.ANTHROPIC_MESSAGES, {"model": "m", "messages": MSG, "max_tokens": 0}, "max_tokens"),
        (Route.ANTHROPIC_MESSAGES, {"model": "m", "max_tokens": 5}, "messages"),
        (
            Route.ANTHROPIC_MESSAGES,
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]},
            "messages[0].content",
        ),
        (
            Route.ANTHROPIC_MESSAGES,
            {"model": "m", "max_tokens": 5, "messages": MSG, "system": 7},
            "system",
        ),
        (Route.GEMINI_GENERATE, {"contents": CONTENTS}, "model"),
        (Route.GEMINI_GENERATE, {}, "contents"),
        (Route.GEMINI_GENERATE, {"contents": [{"role": "user"}]}, "contents[0].parts"),
        (Route.GEMINI_GENERATE, {"contents": [{"parts": [1]}]}, "contents[0].parts[0]"),
        (
            Route.GEMINI_GENERATE,
            {"contents": CONTENTS, "generationConfig": []},
            "generationConfig",
        ),
        (
            Route.GEMINI_GENERATE,
            {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": 2.5}},
            "generationConfig.maxOutputTokens",
        ),
        (
            Route.GEMINI_GENERATE,
            {"contents": CONTENTS, "generationConfig": {"candidateCount": 9}},
            "generationConfig.candidateCount",
        ),
        (
            Route.GEMINI_GENERATE,
            {
                "contents": CONTENTS,
                "generationConfig": {"maxOutputTokens": 1, "max_output_tokens": 1},
            },
            "maxOutputTokens",
        ),
        (
            Route.GEMINI_GENERATE,
            {"contents": CONTENTS, "cachedContent": "cachedContents/abc"},
            "cachedContent",
        ),
    ],
)
def test_plan_rejects(route: Route, body: object, field: str) -> None:
    path_model = "gemini-2.5-flash" if body != {"contents": CONTENTS} else None
    with pytest.raises(InvalidInput) as caught:
        plan_call(route, body, model_from_path=path_model)
    assert caught.value.details["field"] == field


def test_plan_respects_a_custom_limit() -> None:
    body = {"model": "m", "messages": MSG, "max_tokens": 101}
    with pytest.raises(InvalidInput, match="between 1 and 100"):
        plan_call(Route.ANTHROPIC_MESSAGES, body, max_output_tokens_limit=100)


# -- the estimate bounds our simulator's count ------------------------------------------------

_WHITESPACE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\u3000", "\x1c", "\x85", "\xa0"])
_texts = st.one_of(
    st.text(),
    st.lists(st.tuples(st.text(min_size=1, max_size=3), _WHITESPACE)).map(
        lambda pairs: "".join(word + space for word, space in pairs)
    ),
)


def simulator_tokens(texts: list[str], messages: int) -> int:
    return sum(len(text.split()) for text in texts) + 3 * messages


@given(st.lists(st.lists(_texts, min_size=1, max_size=4), min_size=1, max_size=5), _texts)
def test_estimate_bounds_the_simulator_count(messages: list[list[str]], system: str) -> None:
    texts = [text for parts in messages for text in parts] + [system]
    expected = simulator_tokens(texts, len(messages) + 1)
    as_parts = [
        {"role": "user", "content": [{"type": "text", "text": text} for text in parts]}
        for parts in messages
    ]
    chat = [{"role": "system", "content": system}, *as_parts]
    bodies: list[tuple[Route, dict[str, Any]]] = [
        (Route.OPENAI_CHAT, {"model": "m", "messages": chat}),
        (Route.OPENAI_RESPONSES, {"model": "m", "input": as_parts, "instructions": system}),
        (
            Route.ANTHROPIC_MESSAGES,
            {"model": "m", "max_tokens": 1, "messages": as_parts, "system": system},
        ),
        (
            Route.GEMINI_GENERATE,
            {
                "contents": [{"parts": [{"text": text} for text in parts]} for parts in messages],
                "systemInstruction": {"parts": [{"text": system}]},
            },
        ),
    ]
    for route, body in bodies:
        plan = plan_call(route, body, model_from_path="g")
        assert plan.input_tokens_estimate >= expected, route
    embeddings = plan_call(Route.OPENAI_EMBEDDINGS, {"model": "m", "input": texts})
    assert embeddings.input_tokens_estimate >= simulator_tokens(texts, len(texts))


# -- upstream bodies ---------------------------------------------------------------------------


def test_upstream_body_swaps_the_model_and_forces_stream_usage() -> None:
    body = {**CHAT_BODY, "stream_options": {"include_usage": False, "x": 1}}
    plan = plan_call(Route.OPENAI_CHAT, body)
    sent = json.loads(upstream_body(Route.OPENAI_CHAT, body, plan, upstream_model="gpt-4o-2024"))
    assert sent["model"] == "gpt-4o-2024"
    assert sent["stream_options"] == {"include_usage": True, "x": 1}
    assert sent["messages"] == body["messages"]
    assert body["stream_options"] == {"include_usage": False, "x": 1}  # not mutated
    assert body["model"] == "gpt-4o"


def test_upstream_body_injects_stream_options_only_for_chat_streams() -> None:
    body = {"model": "m", "messages": MSG, "stream": True}
    plan = plan_call(Route.OPENAI_CHAT, body)
    sent = json.loads(upstream_body(Route.OPENAI_CHAT, body, plan, upstream_model="u"))
    assert sent["stream_options"] == {"include_usage": True}
    plain = {"model": "m", "messages": MSG}
    plan = plan_call(Route.OPENAI_CHAT, plain)
    assert json.loads(upstream_body(Route.OPENAI_CHAT, plain, plan, upstream_model="u")) == {
        "model": "u",
        "messages": MSG,
    }
    anthropic = {"model": "m", "messages": MSG, "max_tokens": 5, "stream": True}
    plan = plan_call(Route.ANTHROPIC_MESSAGES, anthropic)
    sent = json.loads(upstream_body(Route.ANTHROPIC_MESSAGES, anthropic, plan, upstream_model="u"))
    assert sent == {**anthropic, "model": "u"}


def test_upstream_body_keeps_gemini_unchanged_and_unicode_raw() -> None:
    body = {"contents": [{"parts": [{"text": "héllo ✓"}]}]}
    plan = plan_call(Route.GEMINI_STREAM, body, model_from_path="g")
    sent = upstream_body(Route.GEMINI_STREAM, body, plan, upstream_model="other")
    assert json.loads(sent) == body
    assert "héllo ✓".encode() in sent


# -- errors ------------------------------------------------------------------------------------


def test_error_body_openai() -> None:
    body = json.loads(error_body(Route.OPENAI_CHAT, 402, "insufficient_credits", "no", needed=5))
    assert body == {
        "error": {
            "message": "no",
            "type": "insufficient_credits",
            "code": "insufficient_credits",
            "param": None,
            "needed": 5,
        }
    }


def test_error_body_anthropic() -> None:
    body = json.loads(error_body("anthropic", 429, "rate_limited", "slow down"))
    assert body == {
        "type": "error",
        "error": {"type": "rate_limited", "code": "rate_limited", "message": "slow down"},
    }


@pytest.mark.parametrize(
    ("status", "google_status"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (402, "RESOURCE_EXHAUSTED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (413, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (507, "INTERNAL"),
        (418, "FAILED_PRECONDITION"),
    ],
)
def test_error_body_gemini(status: int, google_status: str) -> None:
    body = json.loads(error_body("gemini.generate", status, "c", "m", retry_after_seconds=1.5))
    assert body == {
        "error": {
            "code": status,
            "message": "m",
            "status": google_status,
            "details": [{"reason": "c", "retry_after_seconds": 1.5}],
        }
    }


def test_error_body_renders_any_detail_and_refuses_unknown_dialects() -> None:
    assert b'"when":"2025-01-01"' in error_body("openai", 400, "c", "m", when=_Date())
    with pytest.raises(ValueError, match="unknown route or dialect"):
        error_body("cohere", 400, "c", "m")


class _Date:
    def __str__(self) -> str:
        return "2025-01-01"


def test_upstream_error_codes() -> None:
    assert upstream_error_code(429) == "upstream_rate_limited"
    assert upstream_error_code(500) == upstream_error_code(400) == "upstream_error"
    assert UPSTREAM_TIMEOUT == "upstream_timeout"


def test_upstream_paths() -> None:
    """Each route where its provider serves it, the provider's model name in Gemini's path."""
    assert {route: upstream_path(route, "m-1") for route in Route} == {
        Route.OPENAI_CHAT: "/v1/chat/completions",
        Route.OPENAI_EMBEDDINGS: "/v1/embeddings",
        Route.OPENAI_RESPONSES: "/v1/responses",
        Route.ANTHROPIC_MESSAGES: "/v1/messages",
        Route.GEMINI_GENERATE: "/v1beta/models/m-1:generateContent",
        Route.GEMINI_STREAM: "/v1beta/models/m-1:streamGenerateContent?alt=sse",
    }


def test_route_dialects() -> None:
    assert [route.dialect for route in Route] == [
        "openai",
        "openai",
        "openai",
        "anthropic",
        "gemini",
        "gemini",
    ]
