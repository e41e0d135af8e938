"""OpenAI dialect: chat completions, embeddings and responses.

Stream chunks are the hot path, so the chat tracker parses JSON only for the chunk that carries
a usage object and recognises content deltas without parsing, by one regex search each: in raw
JSON a ``"content"`` followed by ``:`` can only be a key, since quotes inside strings are
escaped. A garbled delta cannot change what is billed, which comes only from the
parsed usage; a chunk that is not even ``{...}`` still marks the meter broken.
"""

from __future__ import annotations

import re
from typing import Any

from apicredits.errors import InvalidInput
from apicredits.providers.base import (
    CallPlan,
    MalformedUpstream,
    PromptTally,
    Usage,
    count,
    looks_like_object,
    nested_count,
    optional_bool,
    optional_positive_int,
    output_budget,
    parse_json,
    reject_stored_context,
    require_list,
    require_model,
    require_object,
    split_usage,
    tally_content,
    usage_object,
)
from apicredits.tariffs.units import Unit

MAX_CHOICES = 128  # OpenAI's limit on ``n``
# One C-level scan per chunk each. Keys whose non-empty string value is generated output:
_DELTA_TEXT = re.compile(r'"(?:content|arguments|refusal|reasoning_content)"\s*:\s*"[^"]')
_USAGE_OBJECT = re.compile(r'"usage"\s*:\s*\{')
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def plan_chat(body: dict[str, Any], default_max: int, limit: int) -> CallPlan:
    model = require_model(body)
    tally = PromptTally()
    for i, message in enumerate(require_list(body.get("messages"), "messages")):
        field = f"messages[{i}]"
        message = require_object(message, field)
        tally.messages += 1
        tally_content(tally, message.get("content"), f"{field}.content")
        if isinstance(message.get("name"), str):
            tally.text(message["name"])
        for key in ("tool_calls", "function_call"):
            if message.get(key) is not None:
                tally.as_json(message[key])
    for key in ("tools", "functions", "response_format"):
        if body.get(key) is not None:
            tally.as_json(body[key])
    stream = optional_bool(body, "stream")
    wants_usage = False
    if body.get("stream_options") is not None:
        options = require_object(body["stream_options"], "stream_options")
        wants_usage = optional_bool(options, "include_usage", "stream_options.include_usage")
    per_choice = optional_positive_int(body, "max_completion_tokens", limit)
    legacy = optional_positive_int(body, "max_tokens", limit)
    choices = optional_positive_int(body, "n", MAX_CHOICES) or 1
    return CallPlan(
        model=model,
        stream=stream,
        input_tokens_estimate=tally.estimate(),
        max_output_tokens=output_budget(per_choice or legacy or default_max, choices, limit, "n"),
        client_wants_usage_chunk=stream and wants_usage,
    )


def plan_embeddings(body: dict[str, Any]) -> CallPlan:
    model = require_model(body)
    tally = PromptTally()
    inputs = body.get("input")
    for i, item in enumerate([inputs] if isinstance(inputs, str) else _input_list(inputs)):
        tally.messages += 1
        if isinstance(item, str):
            tally.text(item)
        elif _is_token(item):
            tally.tokens += 1
        elif isinstance(item, list) and item and all(map(_is_token, item)):
            tally.tokens += len(item)
        else:
            raise InvalidInput(
                f"input[{i}] must be a string, a token id or an array of token ids",
                field=f"input[{i}]",
            )
    return CallPlan(model, False, tally.estimate(), 0, False)


def plan_responses(body: dict[str, Any], default_max: int, limit: int) -> CallPlan:
    model = require_model(body)
    reject_stored_context(body, ("previous_response_id", "conversation", "prompt"))
    tally = PromptTally()
    inputs = body.get("input")
    if isinstance(inputs, str):
        tally.messages += 1
        tally.text(inputs)
    else:
        for i, item in enumerate(require_list(inputs, "input")):
            field = f"input[{i}]"
            item = require_object(item, field)
            tally.messages += 1
            if "content" in item:  # a message; other items are tool calls, outputs, reasoning
                tally_content(tally, item["content"], f"{field}.content")
            else:
                tally.as_json(item)
    if body.get("instructions") is not None:
        if not isinstance(body["instructions"], str):
            raise InvalidInput("instructions must be a string", field="instructions")
        tally.messages += 1
        tally.text(body["instructions"])
    for key in ("tools", "text"):
        if body.get(key) is not None:
            tally.as_json(body[key])
    max_output = optional_positive_int(body, "max_output_tokens", limit) or default_max
    return CallPlan(model, optional_bool(body, "stream"), tally.estimate(), max_output, False)


def chat_usage(usage: dict[str, Any], where: str = "usage") -> Usage:
    return split_usage(
        count(usage, "prompt_tokens", where, required=True),
        nested_count(usage, "prompt_tokens_details", "cached_tokens", where),
        count(usage, "completion_tokens", where, required=True),
        nested_count(usage, "completion_tokens_details", "reasoning_tokens", where),
        where,
    )


def embeddings_usage(usage: dict[str, Any]) -> Usage:
    tokens = count(usage, "prompt_tokens", "usage", required=True)
    return {Unit.INPUT_TOKENS: tokens} if tokens else {}


def responses_usage(usage: dict[str, Any], where: str = "usage") -> Usage:
    return split_usage(
        count(usage, "input_tokens", where, required=True),
        nested_count(usage, "input_tokens_details", "cached_tokens", where),
        count(usage, "output_tokens", where, required=True),
        nested_count(usage, "output_tokens_details", "reasoning_tokens", where),
        where,
    )


class ChatStream:
    """``data: {chunk}`` lines, then ``data: [DONE]``; usage in a chunk with ``choices: []``."""

    __slots__ = ("deltas", "final", "reported")

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.deltas = 0

    def on_event(self, event: str | None, data: str) -> bool:
        if data == "[DONE]":
            self.final = self.reported is not None
            return False
        if _USAGE_OBJECT.search(data):
            chunk = parse_json(data, "stream chunk")
            self.reported = chat_usage(usage_object(chunk, "usage", "stream chunk"))
            if not chunk.get("choices"):  # usage-only: the provider's final count
                self.final = True
                return True
        elif not looks_like_object(data):
            if not data or data.isspace():
                return False
            raise MalformedUpstream("stream chunk is not a JSON object")
        if _DELTA_TEXT.search(data):
            self.deltas += 1
        return False


class ResponsesStream:
    """Named events; ``response.completed`` (or incomplete/failed) carries ``response.usage``."""

    __slots__ = ("deltas", "final", "reported")

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.deltas = 0

    def on_event(self, event: str | None, data: str) -> bool:
        parsed: Any = None
        if event is None:  # some compatible servers omit ``event:``; the type is in the data
            parsed = parse_json(data, "stream event")
            event = parsed.get("type") if isinstance(parsed, dict) else None
            if not isinstance(event, str):
                raise MalformedUpstream("stream event has no type")
        if event.endswith(".delta"):
            if not looks_like_object(data):
                raise MalformedUpstream(f"{event} event is not a JSON object")
            self.deltas += 1
        elif event in _TERMINAL_EVENTS:
            parsed = parse_json(data, event) if parsed is None else parsed
            response = usage_object(parsed, "response", event)
            if response.get("usage") is not None:  # a failed response may report none
                self.reported = responses_usage(usage_object(response, "usage", event), event)
                self.final = True
        return False


def _input_list(inputs: object) -> list[Any]:
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            "input must be a string or a non-empty array of strings or token ids", field="input"
        )
    if all(map(_is_token, inputs)):
        return [inputs]  # one prompt given as token ids
    return inputs


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
