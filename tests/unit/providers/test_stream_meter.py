from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicredits.providers.base import CallPlan, MalformedUpstream, Route, Usage
from apicredits.providers.stream_meter import StreamMeter
from apicredits.tariffs.units import Unit

PLAN = CallPlan("m", True, 500, 4096, False)


def _chunk(choices: str, usage: str = "null") -> str:
    return (
        '{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk",'
        '"created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default",'
        f'"system_fingerprint":"fp_f9f4fb6dbf","choices":{choices},"usage":{usage}}}'
    )


CHAT_USAGE = (
    '{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,'
    '"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},'
    '"completion_tokens_details":{"reasoning_tokens":12,"audio_tokens":0,'
    '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)
CHAT_USAGE_EVENT = f"data: {_chunk('[]', CHAT_USAGE)}\n\n".encode()
CHAT_HEAD = (
    "data: "
    + _chunk(
        '[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        '"logprobs":null,"finish_reason":null}]'
    )
    + "\n\n"
    + "data: "
    + _chunk('[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]')
    + "\n\n"
    + "data: "
    + _chunk('[{"index":0,"delta":{"content":" wörld ✓"},"logprobs":null,"finish_reason":null}]')
    + "\n\n"
    + ": keep-alive\n\n"
    + "data: "
    + _chunk('[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]')
    + "\n\n"
).encode()
CHAT_STREAM = CHAT_HEAD + CHAT_USAGE_EVENT + b"data: [DONE]\n\n"
CHAT_EXPECTED = {
    Unit.INPUT_TOKENS: 93,
    Unit.CACHED_INPUT_TOKENS: 1024,
    Unit.OUTPUT_TOKENS: 34,
    Unit.REASONING_TOKENS: 12,
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


RESPONSE = {"id": "resp_67c9fdcecf", "object": "response", "model": "gpt-4.1-2025-04-14"}
TEXT_ITEM = {"item_id": "msg_67c9fdcf37", "output_index": 0, "content_index": 0}
RESPONSES_STREAM = b"".join(
    [
        sse(
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None},
            },
        ),
        sse(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": 2,
                "output_index": 0,
                "item": {"id": "msg_67c9fdcf37", "type": "message", "role": "assistant"},
            },
        ),
        sse(
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 4,
                **TEXT_ITEM,
                "delta": "Hi",
            },
        ),
        sse(
            "response.output_text.delta",
            {"type": "response.output_text.delta", "sequence_number": 5, **TEXT_ITEM, "delta": "!"},
        ),
        sse(
            "response.completed",
            {
                "type": "response.completed",
                "sequence_number": 9,
                "response": {
                    **RESPONSE,
                    "status": "completed",
                    "usage": {
                        "input_tokens": 37,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": 11,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 48,
                    },
                },
            },
        ),
    ]
)
RESPONSES_EXPECTED = {Unit.INPUT_TOKENS: 37, Unit.OUTPUT_TOKENS: 11}


def text_delta(text: str) -> bytes:
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    return sse("content_block_delta", delta)


MESSAGE: dict[str, Any] = {
    "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
    "type": "message",
    "role": "assistant",
    "content": [],
    "model": "claude-sonnet-4-20250514",
    "stop_reason": None,
    "stop_sequence": None,
    "usage": {
        "input_tokens": 25,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 1,
        "service_tier": "standard",
    },
}
ANTHROPIC_STREAM = b"".join(
    [
        sse("message_start", {"type": "message_start", "message": MESSAGE}),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        b'event: ping\ndata: {"type": "ping"}\n\n',
        text_delta("Hello"),
        text_delta("!"),
        text_delta(" How"),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
)
ANTHROPIC_EXPECTED = {
    Unit.INPUT_TOKENS: 25,
    Unit.CACHED_INPUT_TOKENS: 2000,
    Unit.CACHE_WRITE_TOKENS: 100,
    Unit.OUTPUT_TOKENS: 15,
}

GEMINI_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},'
    b'"modelVersion": "gemini-2.5-flash","responseId": "Jd9taPuoBqSEm9"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": " quick brown"}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 4,'
    b'"totalTokenCount": 50,"thoughtsTokenCount": 37},"modelVersion": "gemini-2.5-flash"}'
    b"\r\n\r\n"
    b'data: {"candidates": [{"content": {"parts": [{"text": " fox"}],"role": "model"},'
    b'"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 9,'
    b'"candidatesTokenCount": 12,"totalTokenCount": 58,"thoughtsTokenCount": 37,'
    b'"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}]},'
    b'"modelVersion": "gemini-2.5-flash"}\r\n\r\n'
)
GEMINI_EXPECTED = {Unit.INPUT_TOKENS: 9, Unit.OUTPUT_TOKENS: 12, Unit.REASONING_TOKENS: 37}

SAMPLES: list[tuple[Route, bytes, Usage]] = [
    (Route.OPENAI_CHAT, CHAT_STREAM, CHAT_EXPECTED),
    (Route.OPENAI_RESPONSES, RESPONSES_STREAM, RESPONSES_EXPECTED),
    (Route.ANTHROPIC_MESSAGES, ANTHROPIC_STREAM, ANTHROPIC_EXPECTED),
    (Route.GEMINI_STREAM, GEMINI_STREAM, GEMINI_EXPECTED),
]


def run(
    route: Route, chunks: list[bytes], *, strip: bool = False, plan: CallPlan = PLAN
) -> tuple[StreamMeter, bytes]:
    meter = StreamMeter(route, plan, strip_usage_chunk=strip)
    out = b"".join(meter.feed(chunk) for chunk in chunks) + meter.flush()
    return meter, out


@pytest.mark.parametrize(("route", "stream", "expected"), SAMPLES)
def test_stream_usage_and_bytes_forwarded_unchanged(
    route: Route, stream: bytes, expected: Usage
) -> None:
    meter, out = run(route, [stream])
    assert out == stream
    assert meter.complete
    assert meter.usage() == expected
    assert meter.partial_usage() == expected


def test_strip_removes_exactly_the_usage_chunk() -> None:
    meter, out = run(Route.OPENAI_CHAT, [CHAT_STREAM], strip=True)
    assert out == CHAT_HEAD + b"data: [DONE]\n\n"
    assert meter.usage() == CHAT_EXPECTED


def test_forwarding_waits_for_the_end_of_an_event() -> None:
    meter = StreamMeter(Route.OPENAI_CHAT, PLAN, strip_usage_chunk=True)
    half = len(CHAT_USAGE_EVENT) // 2
    assert meter.feed(CHAT_USAGE_EVENT[:half]) == b""
    assert meter.feed(CHAT_USAGE_EVENT[half:] + b"data: [DONE]") == b""
    assert meter.flush() == b"data: [DONE]"
    assert meter.complete


def _chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(stream) + 1) for cut in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@given(
    st.sampled_from(SAMPLES),
    st.booleans(),
    st.lists(st.integers(min_value=0), max_size=40),
    st.integers(min_value=0),
)
def test_any_chunking_gives_the_same_bytes_and_usage(
    sample: tuple[Route, bytes, Usage], crlf: bool, cuts: list[int], cut_at: int
) -> None:
    route, stream, expected = sample
    if crlf:
        stream = stream.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    strip = route is Route.OPENAI_CHAT
    whole_meter, whole = run(route, [stream], strip=strip)
    meter, out = run(route, _chunked(stream, cuts), strip=strip)
    assert out == whole
    assert meter.usage() == whole_meter.usage() == expected
    # a cut anywhere meters the same however the bytes before it were chunked
    prefix = stream[: cut_at % (len(stream) + 1)]
    whole_cut, _ = run(route, [prefix], strip=strip)
    cut, _ = run(route, _chunked(prefix, cuts), strip=strip)
    assert cut.complete == whole_cut.complete
    assert cut.partial_usage() == whole_cut.partial_usage()


def test_partial_usage_openai_chat_uses_the_estimate_and_delta_count() -> None:
    meter, _ = run(Route.OPENAI_CHAT, [CHAT_HEAD])
    assert not meter.complete
    assert meter.partial_usage() == {Unit.INPUT_TOKENS: 500, Unit.OUTPUT_TOKENS: 2}
    with pytest.raises(MalformedUpstream, match="ended before"):
        meter.usage()


def test_partial_usage_anthropic_uses_message_start_and_deltas() -> None:
    cut = ANTHROPIC_STREAM.index(b"event: message_delta")
    meter, _ = run(Route.ANTHROPIC_MESSAGES, [ANTHROPIC_STREAM[:cut]])
    assert not meter.complete
    assert meter.partial_usage() == {
        Unit.INPUT_TOKENS: 25,
        Unit.CACHED_INPUT_TOKENS: 2000,
        Unit.CACHE_WRITE_TOKENS: 100,
        Unit.OUTPUT_TOKENS: 3,
    }


def test_partial_usage_gemini_uses_reported_counts() -> None:
    cut = GEMINI_STREAM.index(b'data: {"candidates": [{"content": {"parts": [{"text": " fox')
    meter, _ = run(Route.GEMINI_STREAM, [GEMINI_STREAM[:cut]])
    assert meter.partial_usage() == {
        Unit.INPUT_TOKENS: 9,
        Unit.OUTPUT_TOKENS: 4,
        Unit.REASONING_TOKENS: 37,
    }


def test_partial_usage_responses_before_any_usage() -> None:
    cut = RESPONSES_STREAM.index(b"event: response.completed")
    meter, _ = run(Route.OPENAI_RESPONSES, [RESPONSES_STREAM[:cut]])
    assert meter.partial_usage() == {Unit.INPUT_TOKENS: 500, Unit.OUTPUT_TOKENS: 2}


def test_partial_output_from_deltas_is_capped_by_the_plan() -> None:
    plan = CallPlan("m", True, 500, 1, False)
    meter, _ = run(Route.OPENAI_CHAT, [CHAT_HEAD], plan=plan)
    assert meter.partial_usage() == {Unit.INPUT_TOKENS: 500, Unit.OUTPUT_TOKENS: 1}


def test_empty_stream_partial_usage_is_the_estimate() -> None:
    meter, out = run(Route.ANTHROPIC_MESSAGES, [])
    assert out == b""
    assert meter.partial_usage() == {Unit.INPUT_TOKENS: 500}


@pytest.mark.parametrize(
    ("route", "stream", "garbage"),
    [
        (Route.OPENAI_CHAT, CHAT_STREAM, b"data: {not json\n\n"),
        (Route.OPENAI_CHAT, CHAT_STREAM, b'data: {"choices":[],"usage":{"prompt_tokens":1}}\n\n'),
        (
            Route.OPENAI_RESPONSES,
            RESPONSES_STREAM,
            b"event: response.output_text.delta\ndata: x\n\n",
        ),
        (Route.ANTHROPIC_MESSAGES, ANTHROPIC_STREAM, b"event: content_block_delta\ndata: [\n\n"),
        (Route.GEMINI_STREAM, GEMINI_STREAM, b'data: {"candidates": [{"content": \n\n'),
        (
            Route.GEMINI_STREAM,
            GEMINI_STREAM,
            b'data: {"usageMetadata": {"promptTokenCount": -1}}\n\n',
        ),
    ],
)
def test_garbled_event_is_forwarded_and_breaks_the_meter(
    route: Route, stream: bytes, garbage: bytes
) -> None:
    end = b"\n\n" if b"\n\n" in stream else b"\r\n\r\n"
    cut = stream.index(end) + len(end)
    polluted = stream[:cut] + garbage + stream[cut:]
    meter, out = run(route, [polluted])
    assert out == polluted
    assert not meter.complete
    with pytest.raises(MalformedUpstream, match="unreadable stream"):
        meter.usage()
    assert meter.partial_usage()[Unit.OUTPUT_TOKENS] > 0


def test_done_without_usage_is_not_complete() -> None:
    meter, _ = run(Route.OPENAI_CHAT, [CHAT_HEAD + b"data: [DONE]\n\n"])
    assert not meter.complete


def test_openai_per_chunk_usage_completes_at_done_and_is_never_stripped() -> None:
    # vLLM with continuous_usage_stats: usage on every chunk, choices never empty
    usage = '{"prompt_tokens":7,"completion_tokens":%d,"total_tokens":9}'
    stream = (
        f'data: {_chunk("""[{"index":0,"delta":{"content":"a"}}]""", usage % 1)}\n\n'
        f'data: {_chunk("""[{"index":0,"delta":{"content":"b"}}]""", usage % 2)}\n\n'
    ).encode()
    meter, out = run(Route.OPENAI_CHAT, [stream], strip=True)
    assert out == stream
    assert not meter.complete
    assert meter.partial_usage() == {Unit.INPUT_TOKENS: 7, Unit.OUTPUT_TOKENS: 2}
    meter.feed(b"data: [DONE]\n\n")
    assert meter.usage() == {Unit.INPUT_TOKENS: 7, Unit.OUTPUT_TOKENS: 2}


def test_openai_tool_call_and_whitespace_deltas_count() -> None:
    stream = (
        b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
        b'"function":{"arguments":"{\\"city\\""}}]}}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {"content" : "x"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":null},"logprobs":{"content":[]}}]}\n\n'
    )
    meter, _ = run(Route.OPENAI_CHAT, [stream])
    assert meter.partial_usage()[Unit.OUTPUT_TOKENS] == 2


def test_anthropic_final_usage_fields_override_message_start() -> None:
    stream = ANTHROPIC_STREAM.replace(
        b'"usage":{"output_tokens":15}}',
        b'"usage":{"input_tokens":30,"cache_read_input_tokens":null,"output_tokens":15}}',
    )
    meter, _ = run(Route.ANTHROPIC_MESSAGES, [stream])
    assert meter.usage() == {**ANTHROPIC_EXPECTED, Unit.INPUT_TOKENS: 30}


def test_anthropic_error_event_leaves_the_stream_incomplete() -> None:
    cut = ANTHROPIC_STREAM.index(b"event: message_delta")
    error = (
        b'event: error\ndata: {"type": "error", "error": '
        b'{"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    )
    meter, _ = run(Route.ANTHROPIC_MESSAGES, [ANTHROPIC_STREAM[:cut] + error])
    assert not meter.complete
    assert meter.partial_usage()[Unit.OUTPUT_TOKENS] == 3


@pytest.mark.parametrize(
    ("route", "stream"),
    [
        (Route.OPENAI_RESPONSES, RESPONSES_STREAM),
        (Route.ANTHROPIC_MESSAGES, ANTHROPIC_STREAM),
    ],
)
def test_event_type_is_read_from_data_when_event_lines_are_missing(
    route: Route, stream: bytes
) -> None:
    bare = b"\n".join(line for line in stream.split(b"\n") if not line.startswith(b"event:"))
    meter, _ = run(route, [bare])
    assert meter.usage() == run(route, [stream])[0].usage()


def test_responses_failed_without_usage_is_incomplete() -> None:
    failed = (
        b'event: response.failed\ndata: {"type":"response.failed","response":'
        b'{"id":"resp_1","status":"failed","error":{"code":"server_error"},"usage":null}}\n\n'
    )
    meter, _ = run(Route.OPENAI_RESPONSES, [failed])
    assert not meter.complete


def test_gemini_blocked_prompt_completes_without_candidates() -> None:
    stream = (
        b'data: {"promptFeedback": {"blockReason": "SAFETY"},'
        b'"usageMetadata": {"promptTokenCount": 12,"totalTokenCount": 12}}\r\n\r\n'
    )
    meter, _ = run(Route.GEMINI_STREAM, [stream])
    assert meter.usage() == {Unit.INPUT_TOKENS: 12}


def test_gemini_finish_without_any_usage_is_incomplete() -> None:
    stream = (
        b'data: {"candidates": [{"content": {"parts": [{"text": "x"}]},"finishReason": "STOP"}]}'
        b"\n\n"
    )
    meter, _ = run(Route.GEMINI_STREAM, [stream])
    assert not meter.complete
    assert meter.partial_usage() == {Unit.INPUT_TOKENS: 500, Unit.OUTPUT_TOKENS: 1}


def test_final_event_without_trailing_blank_line_is_metered_at_flush() -> None:
    meter, out = run(Route.ANTHROPIC_MESSAGES, [ANTHROPIC_STREAM.rstrip(b"\n") + b"\n"])
    assert meter.usage() == ANTHROPIC_EXPECTED
    assert out == ANTHROPIC_STREAM.rstrip(b"\n") + b"\n"


@pytest.mark.parametrize("route", [Route.OPENAI_EMBEDDINGS, Route.GEMINI_GENERATE])
def test_routes_that_do_not_stream_are_refused(route: Route) -> None:
    with pytest.raises(ValueError, match="does not stream"):
        StreamMeter(route, PLAN, strip_usage_chunk=False)


def test_strip_only_for_openai_chat() -> None:
    with pytest.raises(ValueError, match="usage chunk"):
        StreamMeter(Route.ANTHROPIC_MESSAGES, PLAN, strip_usage_chunk=True)
