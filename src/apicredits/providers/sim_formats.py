"""The provider simulator's wire formats: requests read, responses, SSE streams and errors.

Each ``read_*`` function pulls what the simulator's rules need out of one request body (the
rules themselves are documented in ``apicredits.providers.simulator``). Each builder turns one
``Completion`` into the bytes a real provider would send, field and event names as the real APIs
spell them, so the official SDKs parse them. A stream is returned as
a ``StreamPlan`` (events before the words, one event per word, events after them) so the
simulator can cut it after any word or slip a malformed event in.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gemini"

_encode = json.JSONEncoder(separators=(",", ":")).encode


def dump(value: object) -> bytes:
    return _encode(value).encode()


@dataclass(slots=True)
class Completion:
    """What one simulated call produced; counts follow the rules in ``simulator``."""

    model: str
    words: list[str]
    truncated: bool  # max_tokens cut the answer short
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    response_id: str
    created: int

    def pieces(self) -> list[str]:
        """The text deltas: one per word, joined by single spaces."""
        return [word if i == 0 else " " + word for i, word in enumerate(self.words)]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def output_tokens(self) -> int:  # reasoning is billed as output on top of the visible words
        return len(self.words) + self.reasoning_tokens


class StreamPlan(NamedTuple):
    head: list[bytes]
    words: list[bytes]  # exactly one event per word
    tail: list[bytes]  # the closing events a cut stream never sends
    malformed: bytes  # an event whose data is not JSON
    media_type: bytes = b"text/event-stream"


def sse(payload: object) -> bytes:
    return b"data: " + dump(payload) + b"\n\n"


def named_sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dump(payload) + b"\n\n"


# -- requests --------------------------------------------------------------------------------


class Rejected(Exception):
    """A request the simulator answers with an error; never leaves the simulator."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # a key of ERRORS
        self.message = message


@dataclass(slots=True)
class Prompt:
    """The parts of a request the rules look at."""

    model: str
    texts: list[str] = field(default_factory=list)
    messages: int = 0
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False  # OpenAI chat stream_options.include_usage
    sse: bool = False  # Gemini ?alt=sse
    tokens: int = 0  # embeddings: the prompt tokens
    dimensions: int = 8  # embeddings
    base64: bool = False  # embeddings encoding_format


_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
MAX_DIMENSIONS = 4096


def _add_text(content: object, texts: list[str]) -> None:
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text, kind = part.get("text"), part.get("type", "text")
                if isinstance(text, str) and isinstance(kind, str) and kind in _TEXT_PARTS:
                    texts.append(text)


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise Rejected("invalid", f"{name} must be an array")
    return value


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejected("invalid", "model is required")
    return model


def _limit(obj: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Rejected("invalid", f"{name} must be a non-negative integer")
        return value
    return None


def _stream(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


def read_chat(body: dict[str, Any]) -> Prompt:
    prompt = Prompt(_model(body), max_tokens=_limit(body, "max_completion_tokens", "max_tokens"))
    for entry in _list(body, "messages"):
        if not isinstance(entry, dict):
            raise Rejected("invalid", "messages must be objects")
        _add_text(entry.get("content"), prompt.texts)
        prompt.messages += 1
    prompt.stream = _stream(body)
    options = body.get("stream_options")
    prompt.include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return prompt


def read_responses(body: dict[str, Any]) -> Prompt:
    prompt = Prompt(_model(body), max_tokens=_limit(body, "max_output_tokens"))
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        prompt.texts.append(instructions)
        prompt.messages += 1
    items = body.get("input")
    if isinstance(items, str):
        prompt.texts.append(items)
        prompt.messages += 1
    elif isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                _add_text(item.get("content"), prompt.texts)
            prompt.messages += 1
    else:
        raise Rejected("invalid", "input must be a string or an array")
    prompt.stream = _stream(body)
    return prompt


def read_messages(body: dict[str, Any]) -> Prompt:
    prompt = Prompt(_model(body), max_tokens=_limit(body, "max_tokens"))
    system = body.get("system")
    if system is not None:
        _add_text(system, prompt.texts)
        prompt.messages += 1
    for entry in _list(body, "messages"):
        if not isinstance(entry, dict):
            raise Rejected("invalid", "messages must be objects")
        _add_text(entry.get("content"), prompt.texts)
        prompt.messages += 1
    prompt.stream = _stream(body)
    return prompt


def _gemini_content(content: object, prompt: Prompt) -> None:
    if not isinstance(content, dict):
        raise Rejected("invalid", "contents must be Content objects")
    parts = content.get("parts") or []
    if isinstance(parts, list):
        prompt.texts.extend(
            p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    prompt.messages += 1


def read_generate(body: dict[str, Any]) -> Prompt:
    """Gemini; the model and streaming come from the path, set by the caller."""
    config = body.get("generationConfig", body.get("generation_config")) or {}
    if not isinstance(config, dict):
        raise Rejected("invalid", "generationConfig must be an object")
    prompt = Prompt("", max_tokens=_limit(config, "maxOutputTokens", "max_output_tokens"))
    system = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(system, str):  # the REST API accepts a bare string here too
        system = {"parts": [{"text": system}]}
    if system is not None:
        _gemini_content(system, prompt)
    contents = body.get("contents")
    for content in [contents] if isinstance(contents, dict) else _list(body, "contents"):
        _gemini_content(content, prompt)
    return prompt


def read_embeddings(body: dict[str, Any]) -> Prompt:
    """One text per vector; token arrays become their JSON text and count their length."""
    prompt = Prompt(_model(body))
    dimensions = _limit(body, "dimensions")
    if dimensions is not None:
        if not 1 <= dimensions <= MAX_DIMENSIONS:
            raise Rejected("invalid", f"dimensions must be between 1 and {MAX_DIMENSIONS}")
        prompt.dimensions = dimensions
    prompt.base64 = body.get("encoding_format") == "base64"
    items = body.get("input")
    if isinstance(items, str) or (isinstance(items, list) and items and isinstance(items[0], int)):
        items = [items]
    if not isinstance(items, list) or not items:
        raise Rejected("invalid", "input must be a string or a non-empty array")
    for item in items:
        if isinstance(item, str):
            prompt.texts.append(item)
            prompt.tokens += len(item.split())
        elif isinstance(item, list) and all(isinstance(t, int) for t in item):
            prompt.texts.append(json.dumps(item))
            prompt.tokens += len(item)
        else:
            raise Rejected("invalid", "input items must be strings or token arrays")
    return prompt


# -- errors ----------------------------------------------------------------------------------

# kind -> (status, OpenAI type, OpenAI code, Anthropic type, Gemini status)
ERRORS: dict[str, tuple[int, str, str | None, str, str]] = {
    "invalid": (400, "invalid_request_error", None, "invalid_request_error", "INVALID_ARGUMENT"),
    "not_found": (404, "invalid_request_error", "model_not_found", "not_found_error", "NOT_FOUND"),
    "no_route": (404, "invalid_request_error", "unknown_url", "not_found_error", "NOT_FOUND"),
    "method": (405, "invalid_request_error", None, "invalid_request_error", "UNIMPLEMENTED"),
    "rate_limited": (
        429,
        "requests",
        "rate_limit_exceeded",
        "rate_limit_error",
        "RESOURCE_EXHAUSTED",
    ),
    "server": (500, "server_error", None, "api_error", "INTERNAL"),
}


def error_body(dialect: str, kind: str, message: str) -> tuple[int, bytes]:
    status, openai_type, openai_code, anthropic_type, gemini_status = ERRORS[kind]
    if dialect == ANTHROPIC:
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": anthropic_type, "message": message},
        }
    elif dialect == GEMINI:
        body = {"error": {"code": status, "message": message, "status": gemini_status}}
    else:
        error = {"message": message, "type": openai_type, "param": None, "code": openai_code}
        body = {"error": error}
    return status, dump(body)


# -- OpenAI chat completions -----------------------------------------------------------------


def _chat_usage(c: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.prompt_tokens + c.output_tokens,
        "prompt_tokens_details": {"cached_tokens": c.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
    }


def chat_completion(c: Completion) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": c.text,
        "refusal": None,
        "annotations": [],
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "length" if c.truncated else "stop",
    }
    return dump(
        {
            "id": "chatcmpl-" + c.response_id,
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [choice],
            "usage": _chat_usage(c),
            "system_fingerprint": None,
        }
    )


def chat_stream(c: Completion, include_usage: bool) -> StreamPlan:
    base = {
        "id": "chatcmpl-" + c.response_id,
        "object": "chat.completion.chunk",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    # The role rides on the first word so that every content chunk carries exactly one word.
    words = [
        chunk({"role": "assistant", "content": p} if i == 0 else {"content": p}, None)
        for i, p in enumerate(c.pieces())
    ]
    final = chunk({} if words else {"role": "assistant"}, "length" if c.truncated else "stop")
    tail = [final]
    if include_usage:
        tail.append(sse({**base, "choices": [], "usage": _chat_usage(c)}))
    tail.append(b"data: [DONE]\n\n")
    return StreamPlan([], words, tail, b'data: {"id": "chatcmpl-malformed\n\n')


# -- OpenAI embeddings -----------------------------------------------------------------------


def embeddings(
    model: str, vectors: list[list[float]], prompt_tokens: int, as_base64: bool
) -> bytes:
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": (
                base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v
            ),
        }
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return dump({"object": "list", "data": data, "model": model, "usage": usage})


# -- OpenAI responses ------------------------------------------------------------------------


def _response_usage(c: Completion) -> dict[str, Any]:
    return {
        "input_tokens": c.prompt_tokens,
        "input_tokens_details": {"cached_tokens": c.cached_tokens},
        "output_tokens": c.output_tokens,
        "output_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
        "total_tokens": c.prompt_tokens + c.output_tokens,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(c: Completion, done: bool) -> dict[str, Any]:
    return {
        "id": "msg_" + c.response_id,
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_output_text(c.text)] if done else [],
    }


def _response(c: Completion, max_output_tokens: int | None, done: bool) -> dict[str, Any]:
    return {
        "id": "resp_" + c.response_id,
        "object": "response",
        "created_at": c.created,
        "status": "completed" if done else "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": max_output_tokens,
        "model": c.model,
        "output": [_message_item(c, True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _response_usage(c) if done else None,
        "metadata": {},
    }


def response(c: Completion, max_output_tokens: int | None) -> bytes:
    return dump(_response(c, max_output_tokens, True))


def response_stream(c: Completion, max_output_tokens: int | None) -> StreamPlan:
    # The SDK's stream helper builds its snapshot from output_item/content_part events, so they
    # are sent as the real API does, around the deltas.
    seq = iter(range(1 << 30))
    item_id = "msg_" + c.response_id

    def event(kind: str, **fields: Any) -> bytes:
        return named_sse(kind, {"type": kind, "sequence_number": next(seq), **fields})

    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    head = [
        event("response.created", response=_response(c, max_output_tokens, False)),
        event("response.in_progress", response=_response(c, max_output_tokens, False)),
        event("response.output_item.added", output_index=0, item=_message_item(c, False)),
        event("response.content_part.added", **where, part=_output_text("")),
    ]
    words = [event("response.output_text.delta", **where, delta=p, logprobs=[]) for p in c.pieces()]
    tail = [
        event("response.output_text.done", **where, text=c.text, logprobs=[]),
        event("response.content_part.done", **where, part=_output_text(c.text)),
        event("response.output_item.done", output_index=0, item=_message_item(c, True)),
        event("response.completed", response=_response(c, max_output_tokens, True)),
    ]
    malformed = b'event: response.output_text.delta\ndata: {"type": "malformed\n\n'
    return StreamPlan(head, words, tail, malformed)


# -- Anthropic messages ----------------------------------------------------------------------


def _anthropic_usage(c: Completion, output_tokens: int) -> dict[str, int]:
    # Anthropic reports input excluding cache reads and cache writes.
    return {
        "input_tokens": c.prompt_tokens - c.cached_tokens - c.cache_write_tokens,
        "cache_creation_input_tokens": c.cache_write_tokens,
        "cache_read_input_tokens": c.cached_tokens,
        "output_tokens": output_tokens,
    }


def _message(c: Completion, done: bool) -> dict[str, Any]:
    return {
        "id": "msg_" + c.response_id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": [{"type": "text", "text": c.text}] if done else [],
        "stop_reason": ("max_tokens" if c.truncated else "end_turn") if done else None,
        "stop_sequence": None,
        "usage": _anthropic_usage(c, c.output_tokens if done else 1),
    }


def anthropic_message(c: Completion) -> bytes:
    return dump(_message(c, True))


def anthropic_stream(c: Completion) -> StreamPlan:
    head = [
        named_sse("message_start", {"type": "message_start", "message": _message(c, False)}),
        named_sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    words = [
        named_sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
        )
        for p in c.pieces()
    ]
    stop = {"stop_reason": "max_tokens" if c.truncated else "end_turn", "stop_sequence": None}
    tail = [
        named_sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        named_sse(
            "message_delta",
            {"type": "message_delta", "delta": stop, "usage": _anthropic_usage(c, c.output_tokens)},
        ),
        named_sse("message_stop", {"type": "message_stop"}),
    ]
    malformed = b'event: content_block_delta\ndata: {"type": "malformed\n\n'
    return StreamPlan(head, words, tail, malformed)


# -- Gemini generateContent ------------------------------------------------------------------


def _usage_metadata(c: Completion, candidates: int) -> dict[str, int]:
    # Gemini's prompt count includes the cached part; thoughts are reported beside candidates.
    meta = {
        "promptTokenCount": c.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": c.prompt_tokens + candidates + c.reasoning_tokens,
    }
    if c.cached_tokens:
        meta["cachedContentTokenCount"] = c.cached_tokens
    if c.reasoning_tokens:
        meta["thoughtsTokenCount"] = c.reasoning_tokens
    return meta


def _generate_response(c: Completion, text: str, candidates: int, finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = "MAX_TOKENS" if c.truncated else "STOP"
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": _usage_metadata(c, candidates),
        "modelVersion": c.model,
        "responseId": c.response_id,
    }


def generate_content(c: Completion) -> bytes:
    return dump(_generate_response(c, c.text, len(c.words), True))


def generate_stream(c: Completion, as_sse: bool, complete: bool) -> StreamPlan:
    """One chunk per word with cumulative usage; the last word's chunk carries finishReason.

    ``complete`` False (a cut stream) leaves finishReason off every chunk. Without ``alt=sse``
    the chunks are the elements of one JSON array, streamed as the real API does.
    """
    pieces = c.pieces()
    last = len(pieces) - 1
    chunks = [
        dump(_generate_response(c, p, i + 1, complete and i == last)) for i, p in enumerate(pieces)
    ]
    tail_chunks = [] if chunks or not complete else [dump(_generate_response(c, "", 0, True))]
    if as_sse:
        return StreamPlan(
            [],
            [b"data: " + d + b"\n\n" for d in chunks],
            [b"data: " + d + b"\n\n" for d in tail_chunks],
            b'data: {"candidates": [malformed\n\n',
        )
    framed = [(b"[" if i == 0 else b",\r\n") + d for i, d in enumerate(chunks + tail_chunks)]
    words, tail = framed[: len(chunks)], framed[len(chunks) :]
    tail.append(b"]")  # a cut stream never sends it, so framed is never empty here
    return StreamPlan([], words, tail, b',\r\n{"candidates": [malformed', b"application/json")
