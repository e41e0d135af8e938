"""Anthropic dialect: the Messages API.

Anthropic reports ``input_tokens`` without the cached part, so its counts map one to one:
``cache_read_input_tokens`` are cached input, ``cache_creation_input_tokens`` cache writes.
Streams open with ``message_start`` (input and cache counts, output so far) and close with
``message_delta``, whose ``usage`` holds the cumulative totals; its fields override the start's.
"""

from __future__ import annotations

from typing import Any

from apicredits.errors import InvalidInput
from apicredits.providers.base import (
    CallPlan,
    MalformedUpstream,
    PromptTally,
    Usage,
    count,
    looks_like_object,
    nonzero,
    optional_bool,
    optional_positive_int,
    parse_json,
    require_list,
    require_model,
    require_object,
    tally_content,
    usage_object,
)
from apicredits.tariffs.units import Unit


def plan_messages(body: dict[str, Any], limit: int) -> CallPlan:
    model = require_model(body)
    max_tokens = optional_positive_int(body, "max_tokens", limit)
    if max_tokens is None:  # required by the real API too
        raise InvalidInput("max_tokens is required", field="max_tokens")
    tally = PromptTally()
    for i, message in enumerate(require_list(body.get("messages"), "messages")):
        field = f"messages[{i}]"
        message = require_object(message, field)
        if "content" not in message:
            raise InvalidInput(f"{field}.content is required", field=f"{field}.content")
        tally.messages += 1
        tally_content(tally, message["content"], f"{field}.content")
    if body.get("system") is not None:
        tally.messages += 1
        tally_content(tally, body["system"], "system")
    if body.get("tools") is not None:
        tally.as_json(body["tools"])
    return CallPlan(model, optional_bool(body, "stream"), tally.estimate(), max_tokens, False)


def messages_usage(usage: dict[str, Any], where: str = "usage") -> Usage:
    return nonzero(
        {
            Unit.INPUT_TOKENS: count(usage, "input_tokens", where, required=True),
            Unit.CACHED_INPUT_TOKENS: count(usage, "cache_read_input_tokens", where),
            Unit.CACHE_WRITE_TOKENS: count(usage, "cache_creation_input_tokens", where),
            Unit.OUTPUT_TOKENS: count(usage, "output_tokens", where, required=True),
        }
    )


class MessagesStream:
    """``message_start``, content block events, ``message_delta`` (final usage), then stop."""

    __slots__ = ("_counts", "deltas", "final", "reported")

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.deltas = 0
        self._counts: dict[str, Any] = {}  # the raw usage fields seen so far, latest wins

    def on_event(self, event: str | None, data: str) -> bool:
        parsed: Any = None
        if event is None:  # tolerate servers that only put the type in the data
            parsed = parse_json(data, "stream event")
            event = parsed.get("type") if isinstance(parsed, dict) else None
            if not isinstance(event, str):
                raise MalformedUpstream("stream event has no type")
        if event == "content_block_delta":
            if not looks_like_object(data):
                raise MalformedUpstream("content_block_delta event is not a JSON object")
            self.deltas += 1
        elif event == "message_start":
            parsed = parse_json(data, event) if parsed is None else parsed
            message = usage_object(parsed, "message", event)
            self._update(usage_object(message, "usage", event), event)
        elif event == "message_delta":
            parsed = parse_json(data, event) if parsed is None else parsed
            if isinstance(parsed, dict) and parsed.get("usage") is not None:
                self._update(usage_object(parsed, "usage", event), event)
                self.final = True
        return False

    def _update(self, usage: dict[str, Any], where: str) -> None:
        self._counts.update((key, n) for key, n in usage.items() if n is not None)
        self.reported = messages_usage(self._counts, f"{where}.usage")
