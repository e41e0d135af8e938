"""Token counts: the SDKs' "how many input tokens is this?" calls, answered by the model's
provider, as free here as they are there.

POST /v1/responses/input_tokens             OpenAI (``responses.input_tokens.count``)
POST /v1/messages/count_tokens              Anthropic (``messages.count_tokens``)
POST /v1beta/models/{model}:countTokens     Gemini (``models.count_tokens``; also under /v1)

A count is authenticated, scope-checked and routed like a call to the same model, and
counts against the credential's requests per minute and concurrency (each reaches the
provider, whose own limits it spends), but locks and charges nothing and writes no usage
record. The provider's answer is relayed as it came, once it is a count; the answer carries
``apicredits-cost-micro: 0`` and what remains.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from apicredits import json_input
from apicredits.auth.capabilities import require_scope
from apicredits.errors import ApicreditsError, InvalidInput, RateLimited
from apicredits.gateway.call import new_request_id
from apicredits.gateway.proxy import Proxy, json_body
from apicredits.gateway.routing import Target
from apicredits.gateway.sdk_responses import UpstreamFailed, route_error
from apicredits.limits import RateLimits
from apicredits.providers.base import Route
from apicredits.tenants import Principal

# dialect -> the route whose SDK shape its errors take, and the field the count is in
_DIALECTS = {
    "openai": (Route.OPENAI_RESPONSES, "input_tokens"),
    "anthropic": (Route.ANTHROPIC_MESSAGES, "input_tokens"),
    "gemini": (Route.GEMINI_GENERATE, "totalTokens"),
}
PATHS = {"openai": "/v1/responses/input_tokens", "anthropic": "/v1/messages/count_tokens"}


async def count_tokens(
    proxy: Proxy, request: Request, dialect: str, model: str | None = None
) -> Response:
    """Relay one count to the provider of the model (from the body, or Gemini's path)."""
    route, _ = _DIALECTS[dialect]
    try:
        body = json_body(request, await request.body())
        if not isinstance(body, dict):
            raise InvalidInput("request body must be a JSON object")
        principal = await proxy.authenticate(request)
        if model is None:
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise InvalidInput("model is required", field="model")
        if principal.scopes:
            require_scope(principal.scopes, request.url.path, model)
        tariff = (await proxy.rt.tariffs.book()).current(int(time.time()))
        target = proxy.router.resolve(model, dialect, tariff)
        limits = RateLimits(
            principal.requests_per_minute, principal.tokens_per_minute, principal.max_concurrent
        )
        lease = await proxy.rt.limiter.acquire(principal.credential_id, limits, 0)
        try:
            answer = await _relay(proxy, request, dialect, target, body)
        finally:
            await proxy.rt.limiter.release(lease)
        headers = await _headers(proxy, principal)
    except ApicreditsError as exc:
        if isinstance(exc, RateLimited):
            proxy.metrics.child(proxy.metrics.rate_limited, exc.details["limit"]).inc()
        return route_error(route, exc)
    return Response(answer, 200, headers=headers, media_type="application/json")


async def _relay(
    proxy: Proxy, request: Request, dialect: str, target: Target, body: dict[str, Any]
) -> bytes:
    route, field = _DIALECTS[dialect]
    upstream_model = target.upstream_model
    if dialect == "gemini":
        path = f"/v1beta/models/{upstream_model}:countTokens"
        inner = body.get("generateContentRequest")
        if isinstance(inner, dict) and "model" in inner:  # it names the model too
            inner = {**inner, "model": f"models/{upstream_model}"}
            body = {**body, "generateContentRequest": inner}
    else:
        path = PATHS[dialect]
        body = {**body, "model": upstream_model}
    payload = json.dumps(body, ensure_ascii=False).encode()
    response = await proxy.exchange(request, target.upstream, route, path, payload)
    answer = await proxy.read_answer(target.upstream, response)
    try:
        parsed = json_input.loads(answer, text=False)
    except ValueError:
        parsed = None
    count = parsed.get(field) if isinstance(parsed, dict) else None
    if type(count) is not int:
        raise UpstreamFailed(
            "upstream_error", 502, f"{target.upstream.name} answered a malformed token count"
        )
    return answer


async def _headers(proxy: Proxy, principal: Principal) -> dict[str, str]:
    account = await proxy.rt.ledger.account(principal.account_id)
    return {
        "apicredits-request-id": new_request_id(),
        "apicredits-cost-micro": "0",
        "apicredits-remaining-micro": str(account.available),
    }
