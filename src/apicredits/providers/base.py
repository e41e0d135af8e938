"""What every provider dialect shares: routes, call plans, usage counts and their validation.

The input-token estimate is ``ceil((text_bytes + text_segments) / 2) + 8 * messages +
1000 * non_text_parts + 16``, where text is every string a model reads: message and system text,
instructions, and tool / schema definitions serialized as compact JSON. Why it is an upper bound:

- our simulator counts whitespace-separated words + 3 per message; a word is >= 1 byte and
  words within one string need a separator byte, so a string of ``b`` bytes holds at most
  ``ceil(b / 2)`` words, and counting one extra byte per string makes the sum of those bounds
  ``<= ceil((bytes + segments) / 2)``;
- real BPE tokenizers average ~4 bytes per token and rarely fall below 2 (only for adversarial
  text such as random rare code points), and add a few tokens of framing per message (< 8).

Images, audio, files and other non-text parts count a fixed ``NON_TEXT_PART_TOKENS`` each: an
estimate (a large image or PDF can cost more), not a bound; settlement charges what the
provider reports, and the gateway enforces the lock on the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from apicredits import json_input
from apicredits.errors import ApicreditsError, InvalidInput
from apicredits.money import MAX_MICRO
from apicredits.tariffs.units import Unit

Usage = dict[Unit, int]

NON_TEXT_PART_TOKENS = 1_000
TOKENS_PER_MESSAGE = 8
TOKENS_PER_CALL = 16


class Route(StrEnum):
    """One gateway route; its value is ``<dialect>.<operation>``."""

    OPENAI_CHAT = "openai.chat"  # POST /v1/chat/completions
    OPENAI_EMBEDDINGS = "openai.embeddings"  # POST /v1/embeddings
    OPENAI_RESPONSES = "openai.responses"  # POST /v1/responses
    ANTHROPIC_MESSAGES = "anthropic.messages"  # POST /v1/messages
    GEMINI_GENERATE = "gemini.generate"  # POST /v1beta/models/{model}:generateContent
    GEMINI_STREAM = "gemini.stream"  # POST /v1beta/models/{model}:streamGenerateContent

    @property
    def dialect(self) -> str:
        """``"openai"``, ``"anthropic"`` or ``"gemini"``: the SDK family the route speaks."""
        return self.value.partition(".")[0]


class MalformedUpstream(ApicreditsError):
    """The provider's response or stream did not carry usable usage counts."""

    code: ClassVar[str] = "upstream_malformed"
    status: ClassVar[int] = 502


@dataclass(frozen=True)
class CallPlan:
    """What a request asks of the provider, as far as pricing and metering need to know."""

    model: str  # from the body (Gemini: from the URL path)
    stream: bool
    input_tokens_estimate: int  # an upper bound of the prompt tokens the provider will report
    max_output_tokens: int  # output + reasoning tokens the call may produce, all choices
    client_wants_usage_chunk: bool  # OpenAI chat stream: stream_options.include_usage was true


class StreamTracker(Protocol):
    """Per-dialect stream state: fed each event that has data, in order."""

    reported: Usage | None  # the latest usage the provider reported, running or final
    final: bool  # ``reported`` is the provider's final usage
    deltas: int  # content-delta events seen (one ~ one output token)

    def on_event(self, event: str | None, data: str) -> bool:
        """Update from one event; True when it is a usage-only chunk the gateway may strip."""
        ...


# -- request validation ----------------------------------------------------------------------


def require_object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    return value


def require_list(value: object, field: str, *, allow_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{field} must be an array", field=field)
    if not value and not allow_empty:
        raise InvalidInput(f"{field} must not be empty", field=field)
    return value


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model must be a non-empty string", field="model")
    return model


def optional_bool(body: dict[str, Any], key: str, field: str | None = None) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{field or key} must be true or false", field=field or key)
    return value


def optional_positive_int(
    body: dict[str, Any], key: str, limit: int, field: str | None = None
) -> int | None:
    """``body[key]`` as a positive int <= ``limit`` (never bool or float), or None if absent."""
    value = body.get(key)
    if value is None:
        return None
    field = field or key
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a positive integer, got {value!r}", field=field)
    if not 0 < value <= limit:
        raise InvalidInput(f"{field} must be between 1 and {limit}, got {value}", field=field)
    return value


def output_budget(per_choice: int, choices: int, limit: int, choices_field: str) -> int:
    """Output tokens for ``choices`` completions of up to ``per_choice`` tokens each."""
    total = per_choice * choices
    if total > limit:
        raise InvalidInput(
            f"{choices_field} x max output tokens must not exceed {limit}, got {total}",
            field=choices_field,
        )
    return total


def reject_stored_context(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Refuse parameters that pull server-side context into the prompt: it cannot be bounded."""
    for key in keys:
        if body.get(key) is not None:
            raise InvalidInput(
                f"{key} is not supported: the gateway must see the whole prompt to bound its cost",
                field=key,
            )


class PromptTally:
    """Accumulates what the input-token estimate counts (see the module docstring)."""

    __slots__ = ("messages", "non_text", "segments", "text_bytes", "tokens")

    def __init__(self) -> None:
        self.text_bytes = 0
        self.segments = 0
        self.messages = 0
        self.non_text = 0
        self.tokens = 0  # prompts given as token ids (OpenAI embeddings) count exactly

    def text(self, value: str) -> None:
        self.text_bytes += len(value.encode())
        self.segments += 1

    def as_json(self, value: object) -> None:
        self.text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))

    def estimate(self) -> int:
        return (
            -(-(self.text_bytes + self.segments) // 2)
            + TOKENS_PER_MESSAGE * self.messages
            + NON_TEXT_PART_TOKENS * self.non_text
            + self.tokens
            + TOKENS_PER_CALL
        )


# Part types that carry media rather than text, across the three dialects.
MEDIA_PART_TYPES = frozenset(
    {"image", "image_url", "input_image", "input_audio", "audio", "file", "input_file", "video"}
)


def tally_content(tally: PromptTally, content: object, field: str) -> None:
    """A message's content: a string, an array of parts, or null (e.g. tool-call turns)."""
    if content is None:
        return
    if isinstance(content, str):
        tally.text(content)
        return
    if not isinstance(content, list):
        raise InvalidInput(f"{field} must be a string or an array of parts", field=field)
    for i, part in enumerate(content):
        tally_part(tally, require_object(part, f"{field}[{i}]"), f"{field}[{i}]")


def tally_part(tally: PromptTally, part: dict[str, Any], field: str) -> None:
    text = part.get("text")
    if isinstance(text, str):
        tally.text(text)
        return
    kind = part.get("type")
    if not isinstance(kind, str):  # a list or object here is no type we know (nor hashable)
        kind = None
    if kind == "document":  # Anthropic: plain-text documents are text, PDFs are media
        source = part.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            tally.as_json(source.get("data"))
        else:
            tally.non_text += 1
    elif kind in MEDIA_PART_TYPES:
        tally.non_text += 1
    elif kind == "tool_result":  # Anthropic: nested blocks may hold images
        tally.as_json(part.get("tool_use_id"))
        tally_content(tally, part.get("content"), f"{field}.content")
    else:  # tool calls, refusals, thinking blocks...: whatever they hold is read as text
        tally.as_json(part)


# -- usage validation ------------------------------------------------------------------------


def parse_json(payload: bytes | str, where: str) -> Any:
    try:
        return json_input.loads(payload, text=False)
    except json_input.Refused as exc:
        raise MalformedUpstream(f"{where} is {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise MalformedUpstream(f"{where} is not valid JSON") from exc


def usage_object(container: object, key: str, where: str) -> dict[str, Any]:
    if not isinstance(container, dict):
        raise MalformedUpstream(f"{where} is not a JSON object")
    value = container.get(key)
    if not isinstance(value, dict):
        raise MalformedUpstream(f"{where} has no {key} object")
    return value


def count(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> int:
    """A token count from the provider: a non-negative int; absent/null is 0 unless required."""
    value = obj.get(key)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MICRO:
        raise MalformedUpstream(f"{where}.{key} must be a non-negative integer, got {value!r}")
    return value


def nested_count(obj: dict[str, Any], key: str, inner: str, where: str) -> int:
    details = obj.get(key)
    if details is None:
        return 0
    if not isinstance(details, dict):
        raise MalformedUpstream(f"{where}.{key} must be an object")
    return count(details, inner, f"{where}.{key}")


def split_usage(total_in: int, cached: int, total_out: int, reasoning: int, where: str) -> Usage:
    """Usage where cached tokens are part of ``total_in`` and reasoning part of ``total_out``."""
    if cached > total_in:
        raise MalformedUpstream(f"{where}: cached tokens {cached} exceed prompt tokens {total_in}")
    if reasoning > total_out:
        raise MalformedUpstream(
            f"{where}: reasoning tokens {reasoning} exceed output tokens {total_out}"
        )
    return nonzero(
        {
            Unit.INPUT_TOKENS: total_in - cached,
            Unit.CACHED_INPUT_TOKENS: cached,
            Unit.OUTPUT_TOKENS: total_out - reasoning,
            Unit.REASONING_TOKENS: reasoning,
        }
    )


def nonzero(usage: Usage) -> Usage:
    return {unit: n for unit, n in usage.items() if n}


def looks_like_object(data: str) -> bool:
    """A cheap sanity check for stream chunks we do not parse: garbage marks the meter broken."""
    if data[:1] == "{" and data[-1:] == "}":
        return True
    data = data.strip()
    return data[:1] == "{" and data[-1:] == "}"
