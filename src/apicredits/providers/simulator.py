"""A local provider simulator: OpenAI-, Anthropic- and Gemini-compatible endpoints with
deterministic output and exact usage; the upstream of the gateway's demo, tests and benchmarks.

It is a plain ASGI app (no framework on the hot path) and checks no credentials.

Endpoints: ``GET /v1/models``; ``POST /v1/chat/completions``, ``/v1/embeddings``,
``/v1/responses`` (OpenAI); ``POST /v1/messages`` (Anthropic); ``POST
/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (Gemini; ``?alt=sse``
streams SSE, otherwise one JSON array; the ``/v1/models/...`` prefix works too). Token
counts, free as at the providers: ``POST /v1/responses/input_tokens`` (OpenAI),
``/v1/messages/count_tokens`` (Anthropic), ``/v1beta/models/{model}:countTokens`` (Gemini;
``contents`` or a whole ``generateContentRequest``): the prompt tokens the same call reports.

Deterministic rules (other code relies on them):

- Prompt tokens = whitespace-separated words in all text content + 3 per message
  (``prompt_tokens_of``). Messages: OpenAI chat ``messages`` (system included); Anthropic
  ``system`` (one message when present) + ``messages``; Gemini ``systemInstruction`` (one when
  present) + ``contents``; OpenAI responses ``instructions`` (one when present) + ``input``
  (a string is one message, a list one per item). Content is a string or a list of parts; only
  ``text`` / ``input_text`` / ``output_text`` parts (Gemini: parts with ``text``) count.
  Embeddings: words of ``input`` (a string or list of strings; token arrays count their
  length), no per-message overhead.
- The prompt text is the texts above joined by ``"\\n"``. With ``d = sha256(prompt_text)``, the
  answer has N = min(max_tokens, 16 + d[0] % 32) words (``completion_words``), taken from
  ``WORDS`` cyclically from index ``d[1] % len(WORDS)`` and joined by single spaces. max_tokens:
  ``max_completion_tokens`` or ``max_tokens`` (OpenAI chat), ``max_output_tokens`` (responses),
  ``max_tokens`` (Anthropic), ``generationConfig.maxOutputTokens`` (Gemini); default 64. One
  word is one output token; when max_tokens cut the answer, the finish reason says so
  (``length`` / ``max_tokens`` / ``MAX_TOKENS``; responses still report ``completed``).
- Streams send exactly one content event per word (the text deltas are ``"w1"``, ``" w2"``,...),
  so a stream cut after k of them has produced k output tokens.
- Embeddings: one vector per input, ``dimensions`` long (default 8), from the input's sha256;
  ``encoding_format: "base64"`` (the OpenAI SDK's default) packs little-endian float32.

Usage modifiers (request headers):

- ``x-sim-cached-tokens: N`` -- cached prompt tokens, capped at the prompt tokens. OpenAI chat
  ``prompt_tokens_details.cached_tokens``, responses ``input_tokens_details.cached_tokens``
  (both included in the prompt count); Anthropic ``cache_read_input_tokens`` (excluded from
  ``input_tokens``); Gemini ``cachedContentTokenCount`` (included in ``promptTokenCount``).
- ``x-sim-cache-write-tokens: N`` -- Anthropic ``cache_creation_input_tokens`` (excluded from
  ``input_tokens``; capped at what the cache read left). Ignored elsewhere.
- ``x-sim-reasoning-tokens: N`` -- extra tokens beyond the N visible words: OpenAI
  ``completion_tokens_details.reasoning_tokens`` / ``output_tokens_details.reasoning_tokens``
  (included in completion/output tokens); Anthropic adds them to ``output_tokens`` (as it bills
  thinking); Gemini ``thoughtsTokenCount`` (beside ``candidatesTokenCount``, in the total).

Failure modes (request headers):

- ``x-sim-latency-ms: N`` -- sleep before answering (before the first byte of a stream).
- ``x-sim-fail: 429`` (with ``retry-after: 1``) or ``500`` -- the provider's error JSON.
- ``x-sim-fail: malformed`` -- 200 with a body that is not JSON; a stream gets a non-JSON event
  after its first word and then continues normally.
- ``x-sim-fail: cut`` -- a stream stops after ``x-sim-cut-after: K`` words (default 3), without
  its closing events (no finish, no final usage, no ``[DONE]``), and the response ends; a
  non-stream answer sends the first half of its JSON body.

Signed usage (``create_sim_app(usage_signer)``, ``provider-sim --signing-key FILE --emit-url
URL``): a whole (non-stream, not failed) answer to a request carrying the gateway's
``apicredits-usage-context`` header is metered with the gateway's own usage parser, priced,
signed and posted to the gateway (``apicredits.metering.signer``), like a provider that
adopted the protocol. Streams keep the gateway-signed event.

Errors use the provider's own shape: unknown model (not ``sim-...``) 404, malformed JSON or
invalid fields 400, wrong method 405, unknown path 404. The order: path and method, the
``x-sim-*`` headers, latency, a 429/500 failure (so even an invalid body gets it), then the body
and model are checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from apicredits import json_input
from apicredits.metering.signer import CONTEXT_HEADER, ProviderUsageSigner
from apicredits.providers import sim_formats as fmt
from apicredits.providers.sim_formats import (
    Prompt,
    Rejected,
    read_chat,
    read_embeddings,
    read_generate,
    read_messages,
    read_responses,
)

__all__ = [
    "SIM_MODELS",
    "WORDS",
    "completion_words",
    "create_sim_app",
    "prompt_tokens_of",
    "run_simulator",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SIM_MODELS = ("sim-gpt", "sim-claude", "sim-gemini", "sim-embed")
PER_MESSAGE_TOKENS = 3
DEFAULT_CUT_AFTER = 3
WORDS = (
    "the", "credit", "meter", "settles", "every", "call", "and", "signs", "what", "it",
    "served", "while", "tokens", "flow", "through", "a", "ledger", "of", "locks", "that",
    "burn", "refund", "or", "pay", "providers", "on", "chain", "with", "receipts", "for",
    "each", "epoch", "quotes", "expire", "budgets", "hold", "streams", "end", "cleanly", "in",
    "time", "oracles", "agree", "roots", "verify", "invoices", "trace", "usage", "to", "proofs",
    "models", "answer", "prompts", "deterministic", "words", "count", "exactly", "one", "per",
    "token", "so", "tests", "know", "why",
)  # fmt: skip
_MODELS_BODY = fmt.dump(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "apicredits-sim"}
            for m in SIM_MODELS
        ],
    }
)


def prompt_tokens_of(texts: list[str], messages: int) -> int:
    return sum(len(text.split()) for text in texts) + PER_MESSAGE_TOKENS * messages


def _words_for(prompt_text: str, max_tokens: int | None) -> tuple[list[str], bool]:
    digest = hashlib.sha256(prompt_text.encode()).digest()
    natural = 16 + digest[0] % 32
    count = natural if max_tokens is None else min(max_tokens, natural)
    start = digest[1] % len(WORDS)
    return [WORDS[(start + i) % len(WORDS)] for i in range(count)], count < natural


def completion_words(prompt_text: str, max_tokens: int | None) -> list[str]:
    return _words_for(prompt_text, max_tokens)[0]


def _embedding(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 127.5) / 127.5, 6) for i in range(dimensions)]


@dataclass(slots=True)
class _Modifiers:
    latency_ms: int = 0
    fail: str = ""
    cut_after: int = DEFAULT_CUT_AFTER
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


_HEADER_FIELDS = {
    b"x-sim-latency-ms": "latency_ms",
    b"x-sim-fail": "fail",
    b"x-sim-cut-after": "cut_after",
    b"x-sim-cached-tokens": "cached",
    b"x-sim-cache-write-tokens": "cache_write",
    b"x-sim-reasoning-tokens": "reasoning",
}


def _modifiers(headers: list[tuple[bytes, bytes]]) -> _Modifiers:
    mods = _Modifiers()
    for name, value in headers:
        if not name.startswith(b"x-sim-"):
            continue
        field = _HEADER_FIELDS.get(name)
        if field is None:
            continue
        text = value.decode("latin-1").strip()
        if field == "fail":
            if text not in ("429", "500", "malformed", "cut"):
                raise Rejected("invalid", f"x-sim-fail must be 429, 500, malformed or cut: {text}")
            mods.fail = text
            continue
        if not text.isdigit():
            raise Rejected("invalid", f"{name.decode()} must be a non-negative integer")
        setattr(mods, field, int(text))
    return mods


# path -> (dialect, reader)
_ROUTES: dict[str, tuple[str, Callable[[dict[str, Any]], Prompt]]] = {
    "/v1/chat/completions": (fmt.OPENAI, read_chat),
    "/v1/responses": (fmt.OPENAI, read_responses),
    "/v1/messages": (fmt.ANTHROPIC, read_messages),
    "/v1/embeddings": (fmt.OPENAI, read_embeddings),
}
# path -> (dialect, reader): the token counts
_COUNT_ROUTES: dict[str, tuple[str, Callable[[dict[str, Any]], Prompt]]] = {
    "/v1/responses/input_tokens": (fmt.OPENAI, read_responses),
    "/v1/messages/count_tokens": (fmt.ANTHROPIC, read_messages),
}
_GEMINI_ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")
_JSON = b"application/json"


class _SimApp:
    def __init__(self, usage_signer: ProviderUsageSigner | None = None) -> None:
        # Unique ids without uuid4's cost: a per-process random prefix and a counter.
        self._prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)
        self.usage_signer = usage_signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        route = _ROUTES.get(path) or _COUNT_ROUTES.get(path)
        dialect = fmt.OPENAI
        gemini_model = gemini_action = ""
        if route is not None:
            dialect = route[0]
        elif path.startswith(_GEMINI_PREFIXES) and ":" in path:
            dialect = fmt.GEMINI
            gemini_model, _, gemini_action = unquote(path.split("/models/", 1)[1]).partition(":")
        elif path.startswith("/v1beta/"):
            dialect = fmt.GEMINI
        elif path.startswith("/v1/messages"):
            dialect = fmt.ANTHROPIC
        try:
            if path == "/v1/models":
                if scope["method"] != "GET":
                    raise Rejected("method", "use GET")
                await _send(send, 200, _MODELS_BODY)
                return
            if route is None and gemini_action not in _GEMINI_ACTIONS:
                raise Rejected("no_route", f"no such endpoint: {path}")
            if scope["method"] != "POST":
                raise Rejected("method", "use POST")
            mods = _modifiers(scope["headers"])
            body = await _read_body(receive)
            if mods.latency_ms:
                await asyncio.sleep(mods.latency_ms / 1000)
            if mods.fail in ("429", "500"):
                kind = "rate_limited" if mods.fail == "429" else "server"
                status, error = fmt.error_body(dialect, kind, f"simulated {mods.fail}")
                extra = [(b"retry-after", b"1")] if mods.fail == "429" else []
                await _send(send, status, error, extra)
                return
            try:
                request = json_input.loads(body)
            except ValueError as exc:
                raise Rejected("invalid", f"request body is not valid JSON: {exc}") from None
            if not isinstance(request, dict):
                raise Rejected("invalid", "request body must be a JSON object")
            if route is not None:
                prompt = route[1](request)
            elif gemini_action == "countTokens":
                prompt = read_generate(_count_request(request))
                prompt.model = gemini_model
            else:
                prompt = read_generate(request)
                prompt.model = gemini_model
                prompt.stream = gemini_action == "streamGenerateContent"
                prompt.sse = b"alt=sse" in scope["query_string"]
            if not prompt.model.startswith("sim-"):
                raise Rejected("not_found", f"The model `{prompt.model}` does not exist")
            reply = await self._answer(send, path, prompt, mods)
            if reply is not None and self.usage_signer is not None and not mods.fail:
                context = _header(scope["headers"], _CONTEXT)
                if context is not None:
                    self.usage_signer.served(context, reply)
        except Rejected as rejected:
            status, error = fmt.error_body(dialect, rejected.kind, rejected.message)
            await _send(send, status, error)

    async def _answer(
        self, send: Send, path: str, prompt: Prompt, mods: _Modifiers
    ) -> bytes | None:
        """Send the answer; returns a whole (non-stream) JSON reply, None for a stream."""
        if path in _COUNT_ROUTES or path.endswith(":countTokens"):
            await _send_reply(send, _token_count(path, prompt), mods.fail)
            return None  # nothing served, nothing to sign
        if path == "/v1/embeddings":
            vectors = [_embedding(text, prompt.dimensions) for text in prompt.texts]
            reply = fmt.embeddings(prompt.model, vectors, prompt.tokens, prompt.base64)
            await _send_reply(send, reply, mods.fail)
            return reply
        words, truncated = _words_for("\n".join(prompt.texts), prompt.max_tokens)
        tokens = prompt_tokens_of(prompt.texts, prompt.messages)
        cached = min(mods.cached, tokens)
        # Only Anthropic reports cache writes; they come out of what the cache read left.
        cache_write = min(mods.cache_write, tokens - cached) if path == "/v1/messages" else 0
        c = fmt.Completion(
            model=prompt.model,
            words=words,
            truncated=truncated,
            prompt_tokens=tokens,
            cached_tokens=cached,
            cache_write_tokens=cache_write,
            reasoning_tokens=mods.reasoning,
            response_id=f"sim{self._prefix}{next(self._ids):010d}",
            created=int(time.time()),
        )
        if not prompt.stream:
            if path == "/v1/chat/completions":
                reply = fmt.chat_completion(c)
            elif path == "/v1/responses":
                reply = fmt.response(c, prompt.max_tokens)
            elif path == "/v1/messages":
                reply = fmt.anthropic_message(c)
            else:
                reply = fmt.generate_content(c)
            await _send_reply(send, reply, mods.fail)
            return reply
        if path == "/v1/chat/completions":
            plan = fmt.chat_stream(c, prompt.include_usage)
        elif path == "/v1/responses":
            plan = fmt.response_stream(c, prompt.max_tokens)
        elif path == "/v1/messages":
            plan = fmt.anthropic_stream(c)
        else:
            plan = fmt.generate_stream(c, prompt.sse, complete=mods.fail != "cut")
        await _send_stream(send, plan, mods)
        return None  # streamed calls keep the gateway-signed event


_CONTEXT = CONTEXT_HEADER.encode()


def _count_request(body: dict[str, Any]) -> dict[str, Any]:
    """Gemini's countTokens body: ``contents``, or the call itself as
    ``generateContentRequest``."""
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is None:
        return body
    if not isinstance(inner, dict):
        raise Rejected("invalid", "generateContentRequest must be an object")
    return inner


def _token_count(path: str, prompt: Prompt) -> bytes:
    tokens = prompt_tokens_of(prompt.texts, prompt.messages)
    if path == "/v1/responses/input_tokens":
        return fmt.dump({"object": "response.input_tokens", "input_tokens": tokens})
    if path == "/v1/messages/count_tokens":
        return fmt.dump({"input_tokens": tokens})
    details = [{"modality": "TEXT", "tokenCount": tokens}]
    return fmt.dump({"totalTokens": tokens, "promptTokensDetails": details})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    media_type: bytes = _JSON,
) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_reply(send: Send, reply: bytes, fail: str) -> None:
    if fail == "malformed":
        reply = b"<html>simulated malformed body {" + reply[:16]
    elif fail == "cut":
        reply = reply[: len(reply) // 2]
    await _send(send, 200, reply)


async def _send_stream(send: Send, plan: fmt.StreamPlan, mods: _Modifiers) -> None:
    headers = [(b"content-type", plan.media_type), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    words = plan.words
    if mods.fail == "cut":
        words = words[: mods.cut_after]
    elif mods.fail == "malformed":
        words = [*words[:1], plan.malformed, *words[1:]]
    events = plan.head + words
    if mods.fail != "cut":
        events += plan.tail
    for event in events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def create_sim_app(
    usage_signer: ProviderUsageSigner | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The simulator as an ASGI app; with ``usage_signer`` it signs and emits the usage of
    every whole (non-stream) answer to a call that carries the gateway's usage context."""
    return _SimApp(usage_signer)


SIGNING_KEY_ENV = "APICREDITS_SIM_SIGNING_KEY_FILE"
EMIT_URL_ENV = "APICREDITS_SIM_EMIT_URL"


def create_sim_app_from_env() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The simulator of ``run_simulator``'s workers: signing usage when given a key."""
    key_file = os.environ.get(SIGNING_KEY_ENV)
    if not key_file:
        return create_sim_app()
    signer = ProviderUsageSigner.from_key_file(Path(key_file), os.environ.get(EMIT_URL_ENV))
    return create_sim_app(signer)


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 9100,
    workers: int = 1,
    *,
    signing_key: Path | None = None,
    emit_url: str | None = None,
) -> None:
    """Serve the simulator with uvicorn until interrupted; with ``signing_key`` (a file
    holding a 0x-hex secp256k1 key) it signs usage and posts it to ``emit_url``."""
    import uvicorn

    if signing_key is not None:
        os.environ[SIGNING_KEY_ENV] = str(signing_key)
        if emit_url is not None:
            os.environ[EMIT_URL_ENV] = emit_url
    uvicorn.run(
        "apicredits.providers.simulator:create_sim_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
    )
