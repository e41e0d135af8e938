"""The gateway's answers in the calling SDK's own format: errors (its own and the
provider's; the seed API's in the gateway's own format), replays of idempotent retries, the
error event that ends a cut stream, and the charge and receipt headers every metered answer
carries."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from apicredits import json_input
from apicredits.errors import ApicreditsError, Conflict
from apicredits.gateway.call import Call
from apicredits.gateway.errors import domain_error_response, log_outage
from apicredits.gateway.idempotency import Replay
from apicredits.oracle.messages import event_id
from apicredits.providers.base import Route
from apicredits.providers.dialects import error_body, upstream_error_code


class UpstreamFailed(ApicreditsError):
    """A provider call that failed: the code and status the client sees, a provider's own
    error ``body`` to pass through (a 4xx about the request) and its ``Retry-After``."""

    status = 502
    code = "upstream_error"

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        body: bytes | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.body = body
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}


def upstream_failure(
    name: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamFailed:
    """What a non-200 answer from provider ``name`` becomes (``headers``: lower-case names)."""
    retry_after = headers.get("retry-after")
    if status == 429:
        return UpstreamFailed(
            "upstream_rate_limited", 429, f"{name} is rate limiting", retry_after=retry_after or "1"
        )
    if 400 <= status < 500 and status not in (401, 403):
        # The provider refused the request itself (bad parameters): its words, its status.
        return UpstreamFailed(
            upstream_error_code(status), status, f"{name} refused the request", body=body or None
        )
    return UpstreamFailed(upstream_error_code(status), 502, f"{name} answered {status}")


class AlreadyCompleted(Conflict):
    """A retried streamed call: its stream is not replayed, nor charged again."""

    code = "already_completed"


def call_error(route: Route | None, exc: ApicreditsError) -> Response:
    """``exc`` as a call's caller parses it: a provider route's in its SDK's shape
    (``route_error``); the seed API's (``route`` None: a call inside a job) in the gateway's
    own, like the rest of the seed API, a provider's refusal of the request riding along
    as ``upstream``."""
    if route is not None:
        return route_error(route, exc)
    if isinstance(exc, UpstreamFailed) and exc.body is not None:
        try:
            exc.details["upstream"] = json_input.loads(exc.body)
        except ValueError:
            exc.details["upstream"] = exc.body.decode("utf-8", "replace")
    return domain_error_response(exc)


def route_error(route: Route, exc: ApicreditsError) -> Response:
    """``exc`` as the route's SDK parses an error; a provider's own 4xx passes through."""
    log_outage(exc)
    if isinstance(exc, UpstreamFailed) and exc.body is not None:
        # A 4xx from the provider is about the request: pass its own error through.
        response = Response(exc.body, exc.status, media_type="application/json")
    else:
        details = {k: v for k, v in exc.details.items() if k not in ("code", "message")}
        body = error_body(route, exc.status, exc.code, exc.message, **details)
        response = Response(body, exc.status, media_type="application/json")
    response.headers.update(exc.headers)
    return response


def replay_response(route: Route | None, replay: Replay) -> Response:
    """The stored answer to a retried call, charged once: a streamed one is not replayed
    (an error, in the shape ``call_error`` gives for ``route``)."""
    headers = {
        "apicredits-request-id": replay.request_id,
        "apicredits-cost-micro": str(replay.cost_micro),
        "apicredits-idempotent-replay": "true",
        **receipt_headers(replay.request_id),
    }
    if replay.body is None:
        response = call_error(
            route,
            AlreadyCompleted(
                "this streamed request already completed; it was not charged again",
                request_id=replay.request_id,
                cost_micro=replay.cost_micro,
            ),
        )
        response.headers.update(headers)
        return response
    return Response(replay.body, replay.status_code, headers=headers, media_type="application/json")


def charge_headers(call: Call, cost: int | None, remaining: int) -> dict[str, str]:
    """What a call locked, charged (when known before the body) and left, and its receipt."""
    headers = {
        "apicredits-request-id": call.request_id,
        "apicredits-locked-micro": str(call.worst_micro),
        "apicredits-remaining-micro": str(remaining),
        "apicredits-tariff-version": str(call.tariff_version),
        **receipt_headers(call.request_id),
    }
    if cost is not None:
        headers["apicredits-cost-micro"] = str(cost)
    return headers


def receipt_headers(request_id: str) -> dict[str, str]:
    """The per-call receipt: the call's usage event id and where its proof will be."""
    eid = "0x" + event_id(request_id).hex()
    return {"apicredits-receipt": eid, "apicredits-receipt-url": f"/v1/usage/{eid}/proof"}


def stream_error(route: Route, code: str, message: str) -> bytes:
    """An error event to end a stream with, in the route's SSE dialect."""
    body = error_body(route, 502, code, message).decode()
    if route.dialect == "anthropic":
        return f"event: error\ndata: {body}\n\n".encode()
    return f"data: {body}\n\n".encode()
