"""Errors at the edge: the one place where exceptions become JSON responses.

Every error body is ``{"error": {"code": <stable code>, "message": <text>, ...}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from apicredits.errors import ApicreditsError, DatabaseUnavailable

log = logging.getLogger("apicredits.gateway")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=status)


def log_outage(exc: ApicreditsError) -> None:
    """An outage's cause goes to the operator's log; the client gets its code and a retry."""
    if isinstance(exc, DatabaseUnavailable):
        log.warning("database unavailable: %s", exc.cause)


def domain_error_response(exc: ApicreditsError) -> JSONResponse:
    log_outage(exc)
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApicreditsError)
    return domain_error_response(exc)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(e) for e in exc.errors()]
    first = problems[0] if problems else {"field": "", "problem": "invalid request"}
    message = f"{first['field'] or 'body'}: {first['problem']}"
    return error_response(400, "invalid_request", message, problems=problems)


def _problem(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":  # its loc is ("body", character offset)
        return {"field": "", "problem": f"malformed JSON: {error.get('ctx', {}).get('error')}"}
    field = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    return {"field": field, "problem": error["msg"].removeprefix("Value error, ")}


async def http_exception_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
        # the router's own words: say which route
        message = f"{message}: {request.method} {request.url.path}"
    response = error_response(exc.status_code, code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        # The router names the methods of the first route on the path; RFC 9110 asks for all.
        allowed = _allowed_methods(request)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's app would take on the request's path (asked
    of each route as the router asks it, so routers included whole are asked too)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


async def unexpected_error_response(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback; the client gets a 500 in the gateway's shape."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApicreditsError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, http_exception_response)
    app.add_exception_handler(Exception, unexpected_error_response)
