"""Gemini dialect: ``generateContent`` and ``streamGenerateContent`` (SSE with ``alt=sse``).

The model comes from the URL path. Gemini's REST API accepts both lowerCamel and snake_case
field names, so both are read (giving both is ambiguous and refused). ``promptTokenCount``
includes ``cachedContentTokenCount``; ``toolUsePromptTokenCount`` (prompts Gemini builds for
its own tools) is billed as input too; ``thoughtsTokenCount`` is separate from
``candidatesTokenCount``. Fields that are zero are often omitted, so only the prompt count is
required.
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
    optional_positive_int,
    output_budget,
    parse_json,
    reject_stored_context,
    require_list,
    require_object,
    split_usage,
    tally_part,
    usage_object,
)

MAX_CANDIDATES = 8  # Gemini's limit on candidateCount
_MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")


def plan_generate(
    body: dict[str, Any], model: str | None, *, stream: bool, default_max: int, limit: int
) -> CallPlan:
    if not isinstance(model, str) or not model:
        raise InvalidInput("the model must be named in the URL path", field="model")
    reject_stored_context(body, ("cachedContent", "cached_content"))
    tally = PromptTally()
    for i, content in enumerate(require_list(body.get("contents"), "contents")):
        _tally_content(tally, content, f"contents[{i}]")
    system = _get(body, "systemInstruction", "system_instruction")
    if system is not None:
        _tally_content(tally, system, "systemInstruction")
    for camel, snake in (("tools", "tools"), ("toolConfig", "tool_config")):
        if _get(body, camel, snake) is not None:
            tally.as_json(_get(body, camel, snake))
    config = _get(body, "generationConfig", "generation_config")
    per_candidate = default_max
    candidates = 1
    if config is not None:
        config = require_object(config, "generationConfig")
        for camel, snake in (
            ("responseSchema", "response_schema"),
            ("responseJsonSchema", "response_json_schema"),
        ):
            if _get(config, camel, snake) is not None:
                tally.as_json(_get(config, camel, snake))
        per_candidate = (
            _positive(config, "maxOutputTokens", "max_output_tokens", limit) or default_max
        )
        candidates = _positive(config, "candidateCount", "candidate_count", MAX_CANDIDATES) or 1
    max_output = output_budget(per_candidate, candidates, limit, "generationConfig.candidateCount")
    return CallPlan(model, stream, tally.estimate(), max_output, False)


def generate_usage(meta: dict[str, Any], where: str = "usageMetadata") -> Usage:
    thoughts = count(meta, "thoughtsTokenCount", where)
    return split_usage(
        count(meta, "promptTokenCount", where, required=True)
        + count(meta, "toolUsePromptTokenCount", where),
        count(meta, "cachedContentTokenCount", where),
        count(meta, "candidatesTokenCount", where) + thoughts,
        thoughts,
        where,
    )


class GenerateStream:
    """Each ``data:`` is a GenerateContentResponse; the one with a finishReason is the last."""

    __slots__ = ("_finished", "deltas", "final", "reported")

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.final = False
        self.deltas = 0
        self._finished = False

    def on_event(self, event: str | None, data: str) -> bool:
        chunk = parse_json(data, "stream chunk")
        if not isinstance(chunk, dict):
            raise MalformedUpstream("stream chunk is not a JSON object")
        if chunk.get("usageMetadata") is not None:
            self.reported = generate_usage(usage_object(chunk, "usageMetadata", "stream chunk"))
        candidates = chunk.get("candidates") or []
        if not isinstance(candidates, list):
            raise MalformedUpstream("stream chunk candidates is not an array")
        has_output = False
        for candidate in candidates:
            if not isinstance(candidate, dict):
                raise MalformedUpstream("stream chunk candidate is not an object")
            has_output = has_output or _has_output(candidate.get("content"))
            self._finished = self._finished or bool(candidate.get("finishReason"))
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self._finished = True  # a blocked prompt ends the stream without candidates
        self.deltas += has_output
        self.final = self._finished and self.reported is not None
        return False


def _tally_content(tally: PromptTally, content: object, field: str) -> None:
    content = require_object(content, field)
    tally.messages += 1
    for j, part in enumerate(require_list(content.get("parts"), f"{field}.parts")):
        part = require_object(part, f"{field}.parts[{j}]")
        if any(key in part for key in _MEDIA_KEYS):
            tally.non_text += 1
        else:
            tally_part(tally, part, f"{field}.parts[{j}]")


def _has_output(content: object) -> bool:
    if not isinstance(content, dict):
        return False
    parts = content.get("parts")
    return isinstance(parts, list) and any(
        isinstance(part, dict) and (part.get("text") or part.get("functionCall")) for part in parts
    )


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    if snake and snake != camel and camel in obj and snake in obj:
        raise InvalidInput(f"give {camel} or {snake}, not both", field=camel)
    return obj[camel] if camel in obj else obj.get(snake) if snake else None


def _positive(config: dict[str, Any], camel: str, snake: str, limit: int) -> int | None:
    value = {camel: _get(config, camel, snake)}
    return optional_positive_int(value, camel, limit, f"generationConfig.{camel}")
