"""The data plane in the OpenAPI document, beside the control plane that FastAPI describes.

The data plane is plain Starlette (kept lean), so its operations are written out here: the
seed job API in full, since it is ours; the provider-compatible routes by what we add to
the provider's own format (credentials, the charge headers, error codes); the rest by what
they do. ``tests/unit/gateway/test_openapi.py`` checks that every data-plane route is here
and that the seed API answers as documented.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_ERROR = {"$ref": "#/components/schemas/Error"}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"x-api-key": []}, {"x-goog-api-key": []}]
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key, a capability token (with DPoP when bound), or the admin "
        "token on /admin/v1",
    },
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "x-goog-api-key": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
}


def _int(description: str, minimum: int | None = 0) -> Schema:
    schema: Schema = {"type": "integer", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    return schema


def _str(description: str) -> Schema:
    return {"type": "string", "description": description}


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _more(schema: Schema, **properties: Schema) -> Schema:
    return {**schema, "properties": {**schema["properties"], **properties}}


def _list(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _header(name: str, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "header", "required": required,
            "schema": {"type": "string"}, "description": description}  # fmt: skip


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


QUOTE_LINE = _object(
    {
        "model": _str("the model as callers name it"),
        "provider": _str("who serves it"),
        "tariff_version": _int("the tariff version that priced it", 1),
        "max_cost_micro": _int("the most this call may cost"),
    },
    ["model", "provider", "tariff_version", "max_cost_micro"],
)
SIGNED_QUOTE = _object(
    {
        "quote": _object(
            {
                "quote_id": _str("unique"),
                "tariff_version": _int("the tariff version that priced it", 1),
                "lines": {"type": "array", "items": QUOTE_LINE},
                "total_micro": _int("the most the job may cost: the lock it allows"),
                "issued_at": _int("Unix seconds"),
                "expires_at": _int("Unix seconds; lock before then"),
                "tenant_id": {"type": ["string", "null"], "description": "who may lock it"},
            },
            ["quote_id", "tariff_version", "lines", "total_micro", "issued_at", "expires_at"],
        ),
        "key_id": _str("the gateway's quote-signing key"),
        "signature": _str("unpadded base64url Ed25519 over the quote's canonical JSON"),
    },
    ["quote", "key_id", "signature"],
)
JOB = _object(
    {
        "job_id": _str("unique"),
        "state": {"type": "string", "enum": ["open", "settled"]},
        "locked_micro": _int("what the job locked"),
        "used_micro": _int("charged so far"),
        "reserved_micro": _int("held by calls in flight"),
        "remaining_micro": _int("what further calls may use"),
        "calls": _int("calls charged so far"),
        "quote_id": {"type": ["string", "null"]},
        "created_at_us": _int("Unix microseconds"),
        "expires_at_us": _int("Unix microseconds; an open job's lock is refunded then"),
        "usage_token": _str(
            "an open job's usage token, for /v1/execute's usage-auth header (the locker only)"
        ),
    },
    ["job_id", "state", "locked_micro", "used_micro", "remaining_micro", "calls"],
)
USAGE_RECORD = _object(
    {
        "id": _str("the call's request id (apicredits-request-id)"),
        "tenant_id": _str(""),
        "project_id": {"type": ["string", "null"]},
        "credential_id": _str("the key or token that called"),
        "job_id": {"type": ["string", "null"]},
        "lock_id": _str("the ledger lock the call was charged against"),
        "provider": _str(""),
        "model": _str(""),
        "route": _str("e.g. openai.chat, anthropic.messages, gemini.generate"),
        "units": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "what the provider reported: input_tokens, output_tokens, ...",
        },
        "tariff_version": _int("", 1),
        "cost_micro": _int("charged"),
        "uncollected_micro": _int("priced above the lock, not charged"),
        "status": {
            "type": "string",
            "enum": ["ok", "partial", "failed"],
            "description": "partial: the client left, or the stream was cut",
        },
        "request_hash": _str("sha256 of the route, model and body"),
        "started_at_us": _int("Unix microseconds"),
        "ttft_us": {"type": ["integer", "null"], "description": "time to the first byte"},
        "duration_us": _int(""),
        "seq": {"type": ["integer", "null"]},
    },
    ["id", "tenant_id", "route", "units", "cost_micro", "status"],
)
_CHARGE_HEADERS = {
    "apicredits-request-id": {"schema": {"type": "string"}, "description": "the call's id"},
    "apicredits-locked-micro": {"schema": {"type": "integer"}, "description": "its lock"},
    "apicredits-cost-micro": {
        "schema": {"type": "integer"},
        "description": "its charge (on a stream: in GET /v1/usage/{request_id} once it ends)",
    },
    "apicredits-remaining-micro": {
        "schema": {"type": "integer"},
        "description": "what remains to the caller",
    },
    "apicredits-receipt": {
        "schema": {"type": "string"},
        "description": "the usage event id; its proof at apicredits-receipt-url",
    },
}


_OUR_ERROR = _json(_ERROR, "An error, with a stable code")
# The provider's own error object, carrying the gateway's code (OpenAI's error.code,
# Anthropic's error.type, Gemini's error.details[0].reason)
_PROVIDER_ERROR = {
    "description": "An error in the provider's own shape, with the gateway's stable code",
    "content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}},
}
_PROVIDER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object", "required": ["model"]}}},
}
_GEMINI_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def _operation(summary: str, description: str, responses: dict[str, Schema], **more: Any) -> Schema:
    tags = more.pop("tags", ["data plane: jobs"])
    error = more.pop("error", _OUR_ERROR)
    return {
        "tags": tags,
        "summary": summary,
        "description": description,
        "responses": {**responses, "default": error},
        **more,
    }


def _body(schema: Schema, example: Any = None) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"required": True, "content": {"application/json": content}}


def _path_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}  # fmt: skip


HELLO = [{"role": "user", "content": "hi"}]
QUOTE_EXAMPLE = {"calls": [{"model": "sim-gpt", "input_tokens": 120, "max_output_tokens": 64}]}
LOCK_EXAMPLE = {"amount_micro": 50_000, "ttl_seconds": 600}
EXECUTE_EXAMPLE = {
    "job_id": "job_...",
    "route": "openai.chat",
    "request": {"model": "sim-gpt", "max_tokens": 16, "messages": HELLO},
}
ROUTES = ["openai.chat", "openai.embeddings", "openai.responses", "anthropic.messages",
          "gemini.generate", "gemini.stream"]  # fmt: skip


def _seed_api() -> dict[str, Schema]:
    job_id = [_path_param("job_id", "the job's id")]
    return {
        "/v1/jobs/quote": {
            "post": _operation(
                "Price a planned job",
                "The most a job of these calls may cost, priced from the current tariff "
                "and signed by the gateway, valid until `expires_at`. Lock it with "
                "/v1/jobs/lock.",
                {"200": _json(SIGNED_QUOTE, "A signed quote")},
                requestBody=_body(
                    _object(
                        {
                            "calls": {
                                "type": "array",
                                "minItems": 1,
                                "items": _object(
                                    {
                                        "model": {
                                            "type": "string",
                                            "minLength": 1,
                                            "description": "a model this gateway routes",
                                        },
                                        "input_tokens": _int("at most this many in"),
                                        "max_output_tokens": _int("at most this many out"),
                                        "units": {
                                            "type": "object",
                                            "additionalProperties": {"type": "integer"},
                                            "description": "other priced units, e.g. requests",
                                        },
                                    },
                                    ["model", "input_tokens", "max_output_tokens"],
                                ),
                            }
                        },
                        ["calls"],
                    ),
                    QUOTE_EXAMPLE,
                ),
            )
        },
        "/v1/jobs/lock": {
            "post": _operation(
                "Lock credits for a job",
                "Locks a signed quote's total, or `amount_micro`, for `ttl_seconds`; returns "
                "the job with a usage token for /v1/execute. A `job_id` of the caller's "
                "makes the lock idempotent.",
                {"201": _json(JOB, "The open job")},
                requestBody=_body(
                    {
                        **_object(
                            {
                                "quote": SIGNED_QUOTE,
                                "amount_micro": _int("what to lock, without a quote", 1),
                                "ttl_seconds": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": 604_800,
                                },
                                "job_id": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 64,
                                    "pattern": "^(?!(lock|quote)$)[^/]+$",
                                },
                            }
                        ),
                        "oneOf": [{"required": ["quote"]}, {"required": ["amount_micro"]}],
                    },
                    LOCK_EXAMPLE,
                ),
            )
        },
        "/v1/execute": {
            "post": _operation(
                "One provider call inside a job",
                "Calls `request` (in the provider's own format for `route`) and charges it "
                "to the job; refused (402) once the job's lock cannot cover the call's worst "
                "case. Needs the job's usage token in the `usage-auth` header; an "
                "`Idempotency-Key` header makes a retry free. Errors come in the gateway's "
                "own shape, a provider's refusal as `error.upstream`.",
                {
                    "200": {
                        "description": "The provider's answer, as it came",
                        "headers": _CHARGE_HEADERS,
                        "content": {"application/json": {}, "text/event-stream": {}},
                    }
                },
                requestBody=_body(
                    _object(
                        {
                            "job_id": _str("the job to charge"),
                            "route": {"type": "string", "enum": ROUTES},
                            "request": {"type": "object", "description": "the provider body"},
                            "model": _str("Gemini routes: the model (it is in their path)"),
                        },
                        ["job_id", "request"],
                    ),
                    EXECUTE_EXAMPLE,
                ),
                parameters=[
                    _header("usage-auth", "the job's usage token", required=True),
                    _header("Idempotency-Key", "a retry with the same key is not charged again"),
                ],
            )
        },
        "/v1/jobs/{job_id}/settle": {
            "post": _operation(
                "Settle a job",
                "Ends the job: what it used stays charged, the rest of its lock is refunded.",
                {"200": _json(_more(JOB, refunded_micro=_int("returned")), "The settled job")},
                parameters=job_id,
            )
        },
        "/v1/jobs/{job_id}": {
            "get": _operation(
                "A job and its calls",
                "The job (locked, used, calls) and the usage record of each call.",
                {"200": _json(_more(JOB, usage=_list(USAGE_RECORD)), "The job")},
                parameters=job_id,
            )
        },
        "/v1/usage/{request_id}": {
            "get": _operation(
                "A call's usage record",
                "What one call (by its `apicredits-request-id`) used and was charged; a "
                "stream's charge is here once the stream ends.",
                {"200": _json(USAGE_RECORD, "The usage record")},
                parameters=[_path_param("request_id", "the call's apicredits-request-id")],
                tags=["data plane: usage"],
            )
        },
    }


_PROVIDER_ROUTES = {
    "/v1/chat/completions": "OpenAI chat completions (stream: true too)",
    "/v1/embeddings": "OpenAI embeddings",
    "/v1/responses": "OpenAI responses (stream: true too)",
    "/v1/messages": "Anthropic messages (stream: true too)",
    "/v1beta/models/{model}:generateContent": "Gemini generateContent (also under /v1)",
    "/v1beta/models/{model}:streamGenerateContent": "Gemini streamGenerateContent (also "
    "under /v1; ?alt=sse for SSE)",
}
_COUNT_ROUTES = {
    "/v1/responses/input_tokens": "OpenAI: count a response's input tokens",
    "/v1/messages/count_tokens": "Anthropic: count a message's input tokens",
    "/v1beta/models/{model}:countTokens": "Gemini: count tokens",
}
_OTHER_ROUTES: dict[str, tuple[str, str, str]] = {
    # path: (method, summary, description)
    "/v1/models": ("get", "Models", "The models this gateway routes, in the asking SDK's "
                   "format (OpenAI's; Anthropic's with anthropic-version; Gemini's)."),
    "/v1/models/{model}": ("get", "One model", "As /v1/models, one model."),
    "/v1beta/models": ("get", "Models (Gemini)", "Gemini's model list."),
    "/v1beta/models/{model}": ("get", "One model (Gemini)", "Gemini's model object."),
    "/v1/capabilities": ("post", "Capability tokens", "OAuth 2.0 token endpoint (form "
                         "encoded; client assertions, DPoP): a short-lived capability token."),
    "/.well-known/jwks.json": ("get", "Capability token keys", "The keys that verify "
                               "capability tokens."),
    "/metrics": ("get", "Prometheus metrics", "Requests, auth time, upstream latency, "
                 "credits locked, consumed and refunded, open locks, rate-limit refusals."),
    "/v1/usage/signers": ("get", "Usage signers", "The gateway's metering address and each "
                          "provider's usage signer."),
    "/.well-known/apicredits.json": ("get", "Usage signers", "As /v1/usage/signers."),
    "/v1/usage/emit": ("post", "Provider-signed usage", "Providers that sign their own usage "
                       "post it here (see apicredits.metering.emit)."),
    "/v1/usage/{event_id}/proof": ("get", "A call's receipt", "The signed usage event and, "
                                   "once sealed, its epoch, Merkle proof and on-chain receipt."),
    "/v1/oracle/receipt": ("post", "Settlement receipt", "Operator only (admin token): the "
                           "settler reports an epoch's on-chain receipt and executed lines; "
                           "the gateway records them and cross-checks them with its ledger."),
}  # fmt: skip


_CALL_NOTE = (
    "The provider's own API: its request and response formats, with the credential where "
    "its SDK puts it. Each call is priced at its worst case, locked, proxied, metered and "
    "charged what the provider reports; errors come in the provider's shape with the "
    "gateway's codes (402 insufficient_credits or budget_exceeded, 429 rate_limited, 404 "
    "unknown_model, 502/504 upstream)."
)
_COUNT_NOTE = (
    "Relayed to the model's provider; free (apicredits-cost-micro: 0), but counted against "
    "the credential's requests per minute."
)


def _provider_operations() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    calls = {"200": {"description": "The provider's answer", "headers": _CHARGE_HEADERS}}
    counts = {"200": {"description": "The provider's count"}}
    for routes, note, answers in ((_PROVIDER_ROUTES, _CALL_NOTE, calls),
                                  (_COUNT_ROUTES, _COUNT_NOTE, counts)):  # fmt: skip
        for path, summary in routes.items():
            paths[path] = {
                "post": _operation(
                    summary,
                    note,
                    answers,
                    tags=["data plane: provider-compatible"],
                    security=_SECURITY,
                    error=_PROVIDER_ERROR,
                    requestBody=_GEMINI_BODY if "{model}" in path else _PROVIDER_BODY,
                )
            }
    for path, (method, summary, description) in _OTHER_ROUTES.items():
        tag = "data plane: usage" if "usage" in path or "oracle" in path else "data plane"
        paths.setdefault(path, {})[method] = _operation(
            summary, description, {"200": {"description": "OK"}}, tags=[tag]
        )
    return paths


def data_plane_paths() -> dict[str, Schema]:
    """The data plane's OpenAPI path items."""
    seed = _seed_api()
    for item in seed.values():
        for operation in item.values():
            operation["security"] = _SECURITY
    return {**seed, **_provider_operations()}
