"""The per-provider request and response knowledge the gateway needs, behind one dispatch.

``plan_call`` validates a request and bounds what it may cost; ``upstream_body`` rewrites it for
the provider; ``usage_from_response`` reads what a non-streaming call used (streams:
``apicredits.providers.stream_meter``); ``error_body`` renders the gateway's own errors so each
SDK can parse them.

Usage mapping (units absent from the response count 0; zero units are omitted):

=================  ==============================================  ==========================
route              provider field                                  unit
=================  ==============================================  ==========================
openai.chat        prompt_tokens - prompt_tokens_details           input_tokens
                   .cached_tokens
                   prompt_tokens_details.cached_tokens             cached_input_tokens
                   completion_tokens - completion_tokens_details   output_tokens
                   .reasoning_tokens
                   completion_tokens_details.reasoning_tokens      reasoning_tokens
openai.embeddings  prompt_tokens                                   input_tokens
openai.responses   input_tokens - input_tokens_details             input_tokens
                   .cached_tokens
                   input_tokens_details.cached_tokens              cached_input_tokens
                   output_tokens - output_tokens_details           output_tokens
                   .reasoning_tokens
                   output_tokens_details.reasoning_tokens          reasoning_tokens
anthropic          input_tokens (excludes the cache)               input_tokens
                   cache_read_input_tokens                         cached_input_tokens
                   cache_creation_input_tokens                     cache_write_tokens
                   output_tokens (includes thinking)               output_tokens
gemini             promptTokenCount + toolUsePromptTokenCount      input_tokens
                   - cachedContentTokenCount
                   cachedContentTokenCount                         cached_input_tokens
                   candidatesTokenCount                            output_tokens
                   thoughtsTokenCount                              reasoning_tokens
=================  ==============================================  ==========================

``requests`` is never reported: pricing refuses units a rate does not price.
"""

from __future__ import annotations

import json
from typing import Any

from apicredits.providers import anthropic, gemini, openai
from apicredits.providers.base import (
    CallPlan,
    MalformedUpstream,
    Route,
    Usage,
    parse_json,
    require_object,
    usage_object,
)

__all__ = [
    "UPSTREAM_ERROR",
    "UPSTREAM_RATE_LIMITED",
    "UPSTREAM_TIMEOUT",
    "CallPlan",
    "MalformedUpstream",
    "Route",
    "Usage",
    "error_body",
    "plan_call",
    "upstream_body",
    "upstream_error_code",
    "upstream_path",
    "usage_from_response",
]

UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
UPSTREAM_ERROR = "upstream_error"
UPSTREAM_TIMEOUT = "upstream_timeout"  # no status: the gateway raises it on its own deadline

_DIALECTS = frozenset(route.dialect for route in Route)
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def plan_call(
    route: Route,
    body: object,
    *,
    model_from_path: str | None = None,
    default_max_output_tokens: int = 4096,
    max_output_tokens_limit: int = 1_000_000,
) -> CallPlan:
    """Validate a parsed request body and plan its cost; InvalidInput (with ``field``) if bad.

    ``max_output_tokens`` is the body's explicit limit or ``default_max_output_tokens``, times
    the number of choices asked for (``n``, ``candidateCount``); output limits above
    ``max_output_tokens_limit`` are refused. Embeddings produce no output tokens.
    """
    obj = require_object(body, "body")
    default, limit = default_max_output_tokens, max_output_tokens_limit
    match route:
        case Route.OPENAI_CHAT:
            return openai.plan_chat(obj, default, limit)
        case Route.OPENAI_EMBEDDINGS:
            return openai.plan_embeddings(obj)
        case Route.OPENAI_RESPONSES:
            return openai.plan_responses(obj, default, limit)
        case Route.ANTHROPIC_MESSAGES:
            return anthropic.plan_messages(obj, limit)
        case Route.GEMINI_GENERATE | Route.GEMINI_STREAM:
            return gemini.plan_generate(
                obj,
                model_from_path,
                stream=route is Route.GEMINI_STREAM,
                default_max=default,
                limit=limit,
            )


def upstream_body(
    route: Route, body: dict[str, Any], plan: CallPlan, *, upstream_model: str
) -> bytes:
    """The JSON to send upstream: the provider's model name, and usage always in streams.

    OpenAI chat streams report usage only when ``stream_options.include_usage`` is true, so it
    is forced on; if the client did not ask, the gateway strips that chunk from the stream.
    Gemini names the model in the URL, so its body is sent as is.
    """
    out = dict(body)  # shallow: the client's nested objects are never mutated
    if route.dialect != "gemini":
        out["model"] = upstream_model
    if route is Route.OPENAI_CHAT and plan.stream:
        options = body.get("stream_options")
        out["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


def usage_from_response(route: Route, payload: bytes) -> Usage:
    """What a non-streaming call used (see the table above); MalformedUpstream if unusable."""
    response = parse_json(payload, "response")
    match route:
        case Route.OPENAI_CHAT:
            return openai.chat_usage(usage_object(response, "usage", "response"))
        case Route.OPENAI_EMBEDDINGS:
            return openai.embeddings_usage(usage_object(response, "usage", "response"))
        case Route.OPENAI_RESPONSES:
            return openai.responses_usage(usage_object(response, "usage", "response"))
        case Route.ANTHROPIC_MESSAGES:
            return anthropic.messages_usage(usage_object(response, "usage", "response"))
        case Route.GEMINI_GENERATE | Route.GEMINI_STREAM:
            if isinstance(response, list):  # streamGenerateContent without alt=sse: an array
                metered = [c for c in response if isinstance(c, dict) and "usageMetadata" in c]
                if not metered:
                    raise MalformedUpstream("response has no usageMetadata")
                response = metered[-1]
            return gemini.generate_usage(usage_object(response, "usageMetadata", "response"))


def error_body(
    route_or_dialect: Route | str, status: int, code: str, message: str, **details: Any
) -> bytes:
    """The gateway's own error in the shape the route's SDK parses (details must be JSON)."""
    dialect = _dialect(route_or_dialect)
    body: dict[str, Any]
    if dialect == "openai":
        body = {"error": {"message": message, "type": code, "code": code, "param": None, **details}}
    elif dialect == "anthropic":
        body = {
            "type": "error",
            "error": {"type": code, "code": code, "message": message, **details},
        }
    else:
        body = {
            "error": {
                "code": status,
                "message": message,
                "status": _google_status(status),
                "details": [{"reason": code, **details}],
            }
        }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def upstream_path(route: Route, model: str) -> str:
    """Where the provider serves ``route`` (``model``: the provider's name for it), below its
    base URL."""
    match route:
        case Route.OPENAI_CHAT:
            return "/v1/chat/completions"
        case Route.OPENAI_EMBEDDINGS:
            return "/v1/embeddings"
        case Route.OPENAI_RESPONSES:
            return "/v1/responses"
        case Route.ANTHROPIC_MESSAGES:
            return "/v1/messages"
        case Route.GEMINI_GENERATE:
            return f"/v1beta/models/{model}:generateContent"
        case Route.GEMINI_STREAM:
            return f"/v1beta/models/{model}:streamGenerateContent?alt=sse"


def upstream_error_code(status: int) -> str:
    """The gateway's code for a failed upstream call with this HTTP status."""
    return UPSTREAM_RATE_LIMITED if status == 429 else UPSTREAM_ERROR


def _dialect(route_or_dialect: Route | str) -> str:
    if isinstance(route_or_dialect, Route):
        return route_or_dialect.dialect
    if route_or_dialect in _DIALECTS:
        return route_or_dialect
    try:
        return Route(route_or_dialect).dialect
    except ValueError:
        raise ValueError(f"unknown route or dialect {route_or_dialect!r}") from None


def _google_status(status: int) -> str:
    if status in _GOOGLE_STATUS:
        return _GOOGLE_STATUS[status]
    if 500 <= status < 600:
        return "INTERNAL"
    return "FAILED_PRECONDITION" if 400 <= status < 500 else "UNKNOWN"
