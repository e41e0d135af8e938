"""The data plane (Starlette, kept lean): provider-compatible routes and the seed job API.

POST /v1/chat/completions, /v1/embeddings, /v1/responses         OpenAI
POST /v1/messages                                                Anthropic
POST /v1beta/models/{model}:generateContent | :streamGenerateContent   Gemini
POST /v1/responses/input_tokens, /v1/messages/count_tokens, /v1beta/models/{model}:countTokens
     token counts, free (``gateway.token_counts``)
POST /v1/capabilities (token endpoint); GET /.well-known/jwks.json
POST /v1/jobs/quote, /v1/jobs/lock, /v1/execute, /v1/jobs/{id}/settle; GET /v1/jobs/{id}
GET  /v1/usage/{request_id}, /metrics (the models: ``gateway.models``)
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from apicredits import json_input
from apicredits.auth.capabilities import require_scope
from apicredits.auth.usage_tokens import HEADER as USAGE_AUTH
from apicredits.auth.usage_tokens import check_usage_token, issue_usage_token
from apicredits.errors import ApicreditsError, InvalidInput, NotFound
from apicredits.gateway.errors import domain_error_response
from apicredits.gateway.headers import media_type, request_headers
from apicredits.gateway.jobs import Job
from apicredits.gateway.proxy import Proxy
from apicredits.gateway.sdk_responses import route_error
from apicredits.gateway.token_counts import count_tokens
from apicredits.metering import UsageStore
from apicredits.money import require_micro
from apicredits.providers.base import Route
from apicredits.runtime import Runtime
from apicredits.tariffs import PlannedCall, build_quote, verify_quote
from apicredits.tariffs.units import parse_unit
from apicredits.tenants import Principal

Handler = Callable[[Request], Awaitable[Response]]


def path_segment(regex: str) -> StringConvertor:
    """Starlette's ``str`` path parameter (any one segment), narrowed to ``regex``."""
    narrowed: StringConvertor = type("PathSegment", (StringConvertor,), {"regex": regex})()
    return narrowed


# Not "emit": GET /v1/usage/emit is POST-only's 405, not a lookup of a record named so.
register_url_convertor("usage_id", path_segment(r"(?!emit$)[^/]+"))
# Likewise GET /v1/jobs/lock and /v1/jobs/quote (no job is called so: ``lock`` refuses it).
JOB_PATHS = ("lock", "quote")
register_url_convertor("job_id", path_segment(r"(?!(?:lock|quote)$)[^/]+"))
# A Gemini action is "model:method": POST /v1/models/m is the model route's 405.
register_url_convertor("model_action", path_segment(r"[^/:]+:[^/]+"))


def proxy_of(request: Request) -> Proxy:
    proxy: Proxy = request.app.state.proxy
    return proxy


def counted(name: str, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        response = await handler(request)
        proxy_of(request).metrics.request(name, response.status_code)
        return response

    return endpoint


def provider_route(route: Route) -> Handler:
    async def endpoint(request: Request) -> Response:
        return await proxy_of(request).handle(request, route)

    return counted(str(route), endpoint)


async def gemini(request: Request) -> Response:
    model, _, action = request.path_params["model_action"].partition(":")
    route = {
        "generateContent": Route.GEMINI_GENERATE,
        "streamGenerateContent": Route.GEMINI_STREAM,
    }.get(action)
    proxy = proxy_of(request)
    if action == "countTokens" and model:
        response = await count_tokens(proxy, request, "gemini", model)
        proxy.metrics.request("gemini.count_tokens", response.status_code)
        return response
    if route is None or not model:
        error = NotFound(f"unknown Gemini method {action!r}")
        return route_error(Route.GEMINI_GENERATE, error)
    response = await proxy.handle(request, route, model=model)
    proxy.metrics.request(str(route), response.status_code)
    return response


def token_count_route(dialect: str) -> Handler:
    async def endpoint(request: Request) -> Response:
        return await count_tokens(proxy_of(request), request, dialect)

    return counted(f"{dialect}.count_tokens", endpoint)


# -- the seed API: quote, lock, execute, settle ----------------------------------------------


def json_api(name: str) -> Callable[[Callable[[Request, Principal], Awaitable[Any]]], Handler]:
    """Authenticated JSON endpoint; errors in the gateway's own ``{"error": ...}`` shape."""

    def wrap(handler: Callable[[Request, Principal], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                principal = await proxy_of(request).authenticate(request)
                if principal.scopes:
                    require_scope(principal.scopes, request.url.path)
                result = await handler(request, principal)
                response: Response = (
                    result if isinstance(result, Response) else JSONResponse(result)
                )
            except ApicreditsError as exc:
                response = domain_error_response(exc)
            proxy_of(request).metrics.request(name, response.status_code)
            return response

        return endpoint

    return wrap


async def json_object(request: Request) -> dict[str, Any]:
    if media_type(request) not in ("application/json", ""):
        raise InvalidInput("expected application/json")
    body = json_input.request_body(await request.body())
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


def _planned_calls(body: dict[str, Any]) -> list[PlannedCall]:
    calls = body.get("calls")
    if not isinstance(calls, list) or not calls:
        raise InvalidInput("calls must be a non-empty array", field="calls")
    planned = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            raise InvalidInput(f"calls[{i}] must be an object", field=f"calls[{i}]")
        units = call.get("units", {})
        if not isinstance(units, dict):
            raise InvalidInput(f"calls[{i}].units must be an object")
        model: Any = call.get("model")
        input_tokens: Any = call.get("input_tokens")
        max_output: Any = call.get("max_output_tokens")
        priced = {parse_unit(u, where=f"calls[{i}].units"): n for u, n in units.items()}
        planned.append(PlannedCall(model, input_tokens, max_output, priced))
    return planned


@json_api("jobs.quote")
async def quote(request: Request, principal: Principal) -> Any:
    rt = proxy_of(request).rt
    body = await json_object(request)
    book = await rt.tariffs.book()
    q = build_quote(
        book,
        _planned_calls(body),
        now=int(time.time()),
        ttl_seconds=rt.settings.quote_ttl_seconds,
        tenant_id=principal.tenant_id,
    )
    return rt.quote_signer.sign(q).to_document()


@json_api("jobs.lock")
async def lock(request: Request, principal: Principal) -> Any:
    proxy = proxy_of(request)
    rt = proxy.rt
    body = await json_object(request)
    quote_id = None
    if ("quote" in body) == ("amount_micro" in body):
        raise InvalidInput("give either a signed quote or amount_micro")
    if "quote" in body:
        signer = rt.quote_signer
        q = verify_quote(body["quote"], {signer.key_id: signer.public_key}, now=int(time.time()))
        if q.tenant_id not in (None, principal.tenant_id):
            raise InvalidInput("this quote was issued to another tenant", field="quote")
        amount, quote_id = q.total_micro, q.quote_id
    else:
        amount = require_micro(body["amount_micro"])
    ttl = body.get("ttl_seconds", rt.settings.lock_timeout_seconds)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 7 * 86400:
        raise InvalidInput("ttl_seconds must be an integer from 1 to 604800", field="ttl_seconds")
    job_id = body.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not 0 < len(job_id) <= 64):
        raise InvalidInput("job_id must be a string of 1 to 64 characters", field="job_id")
    if job_id in JOB_PATHS or (isinstance(job_id, str) and "/" in job_id):
        raise InvalidInput(
            f"job_id cannot be {job_id!r}: its URLs would not reach it", field="job_id"
        )
    job = await proxy.jobs.create(principal, job_id, amount, ttl, quote_id)
    return JSONResponse(with_usage_token(rt, principal, job), status_code=201)


def with_usage_token(rt: Runtime, principal: Principal, job: Job) -> dict[str, Any]:
    document = job.document()
    now = int(time.time())
    if job.state == "open" and job.expires_at_us // 1_000_000 > now:
        document["usage_token"] = issue_usage_token(
            rt.authority, principal, job_id=job.id, locked_micro=job.locked_micro,
            expires_at=job.expires_at_us // 1_000_000, now=now,
        )  # fmt: skip
    return document


@json_api("execute")
async def execute(request: Request, principal: Principal) -> Any:
    proxy = proxy_of(request)
    body = await json_object(request)
    job_id = body.get("job_id")
    if not isinstance(job_id, str):
        raise InvalidInput("job_id is required", field="job_id")
    try:
        route = Route(body.get("route", "openai.chat"))
    except ValueError:
        raise InvalidInput(f"unknown route {body.get('route')!r}", field="route") from None
    call_body = body.get("request")
    if not isinstance(call_body, dict):
        raise InvalidInput("request must be the provider request object", field="request")
    model = body.get("model") if route.dialect == "gemini" else None
    check_usage_token(
        proxy.rt.authority, request_headers(request).get(USAGE_AUTH), principal, job_id=job_id,
        now=int(time.time()),
    )  # fmt: skip
    job = await proxy.jobs.get(job_id, principal.tenant_id)
    raw = json.dumps(call_body, sort_keys=True).encode()
    key = request_headers(request).get("idempotency-key")
    admitted = await proxy.admit(
        route, call_body, raw, principal, model, key, job=job, path=request.url.path
    )
    if isinstance(admitted, Response):
        return admitted
    return await proxy.run(request, admitted, call_body)


@json_api("jobs.settle")
async def settle(request: Request, principal: Principal) -> Any:
    job = await proxy_of(request).jobs.settle(request.path_params["job_id"], principal.tenant_id)
    return {**job.document(), "refunded_micro": job.locked_micro - job.used_micro}


@json_api("jobs.get")
async def get_job(request: Request, principal: Principal) -> Any:
    proxy = proxy_of(request)
    job = await proxy.jobs.get(request.path_params["job_id"], principal.tenant_id)
    records = await UsageStore(proxy.rt.db).for_job(job.id)
    usage = [r.document() for r in records]
    if job.credential_id != principal.credential_id:  # only the locker gets a usage token
        return {**job.document(), "usage": usage}
    return {**with_usage_token(proxy.rt, principal, job), "usage": usage}


@json_api("usage.get")
async def get_usage(request: Request, principal: Principal) -> Any:
    store = UsageStore(proxy_of(request).rt.db)
    record = await store.get(request.path_params["request_id"], tenant_id=principal.tenant_id)
    return record.document()


# -- capabilities ---------------------------------------------------------------------------


async def capabilities(request: Request) -> Response:
    """The token endpoint (see ``auth.issuer``): form in, capability token out."""
    proxy = proxy_of(request)
    try:
        if media_type(request) != "application/x-www-form-urlencoded":
            raise InvalidInput(
                "expected application/x-www-form-urlencoded (an OAuth token request)"
            )
        form = _form(await request.body())
        body, headers = await proxy.rt.token_issuer.issue(
            form, dpop=request_headers(request).get("dpop"), url=proxy.public_url(request)
        )
        response: Response = JSONResponse(body, headers=headers)
    except ApicreditsError as exc:
        proxy.metrics.child(
            proxy.metrics.auth_failures, str(exc.details.get("reason", exc.code))
        ).inc()
        response = domain_error_response(exc)
    proxy.metrics.request("capabilities", response.status_code)
    return response


def _form(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the request body is not a URL-encoded form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 section 3.2: parameters must not repeat
            raise InvalidInput(f"parameter {name[:40]!r} is repeated", field=name[:40])
        form[name] = value
    return form


async def jwks(request: Request) -> Response:
    """The public keys that verify capability tokens: current and, for the overlap, retired."""
    document = proxy_of(request).rt.authority.jwks(int(time.time()))
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})


async def metrics(request: Request) -> Response:
    body = proxy_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def hot_routes() -> dict[str, Route]:
    """The provider routes with a fixed path (served by ``app.HotPath``)."""
    return {
        "/v1/chat/completions": Route.OPENAI_CHAT,
        "/v1/embeddings": Route.OPENAI_EMBEDDINGS,
        "/v1/responses": Route.OPENAI_RESPONSES,
        "/v1/messages": Route.ANTHROPIC_MESSAGES,
    }


def routes() -> list[HttpRoute]:
    return [
        HttpRoute("/v1/chat/completions", provider_route(Route.OPENAI_CHAT), methods=["POST"]),
        HttpRoute("/v1/embeddings", provider_route(Route.OPENAI_EMBEDDINGS), methods=["POST"]),
        HttpRoute("/v1/responses", provider_route(Route.OPENAI_RESPONSES), methods=["POST"]),
        HttpRoute("/v1/messages", provider_route(Route.ANTHROPIC_MESSAGES), methods=["POST"]),
        HttpRoute("/v1/responses/input_tokens", token_count_route("openai"), methods=["POST"]),
        HttpRoute("/v1/messages/count_tokens", token_count_route("anthropic"), methods=["POST"]),
        HttpRoute("/v1beta/models/{model_action:model_action}", gemini, methods=["POST"]),
        HttpRoute("/v1/models/{model_action:model_action}", gemini, methods=["POST"]),  # genai
        HttpRoute("/v1/capabilities", capabilities, methods=["POST"]),
        HttpRoute("/.well-known/jwks.json", jwks, methods=["GET"]),
        HttpRoute("/v1/jobs/quote", quote, methods=["POST"]),
        HttpRoute("/v1/jobs/lock", lock, methods=["POST"]),
        HttpRoute("/v1/execute", execute, methods=["POST"]),
        HttpRoute("/v1/jobs/{job_id:job_id}/settle", settle, methods=["POST"]),
        HttpRoute("/v1/jobs/{job_id:job_id}", get_job, methods=["GET"]),
        HttpRoute("/v1/usage/{request_id:usage_id}", get_usage, methods=["GET"]),
        HttpRoute("/metrics", metrics, methods=["GET"]),
    ]
