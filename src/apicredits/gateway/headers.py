"""What a request's headers say, read once per request."""

from __future__ import annotations

from starlette.requests import Request

_KEY = "apicredits.headers"


def request_headers(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict with lower-case names, built once per request
    (Starlette's ``Headers`` scans the raw list on every lookup; a call makes ~15). A name
    sent more than once maps to its values joined by ", " (RFC 9110 5.3), so a doubled
    ``Authorization`` or ``DPoP`` fails to parse instead of one copy being picked."""
    scope = request.scope
    headers: dict[str, str] | None = scope.get(_KEY)
    if headers is None:
        headers = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        scope[_KEY] = headers
    return headers


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, in lower case; "" if not sent."""
    return request_headers(request).get("content-type", "").split(";")[0].strip().lower()


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; empty if there is none."""
    header = request_headers(request).get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""
