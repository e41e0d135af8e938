"""The ASGI application: the data plane (Starlette) and, on the same port, the control
plane (FastAPI under ``/admin/v1``, OpenAPI docs at ``/docs``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from apicredits import __version__
from apicredits.errors import ApicreditsError
from apicredits.gateway import dataplane, oracle_receipts
from apicredits.gateway.admin import router as admin_router
from apicredits.gateway.admin_auth import router as admin_auth_router
from apicredits.gateway.admin_chain import router as admin_chain_router
from apicredits.gateway.body_limit import BodySizeLimit
from apicredits.gateway.errors import (
    domain_error_response,
    error_response,
    http_exception_response,
    install_error_handlers,
    unexpected_error_response,
)
from apicredits.gateway.health import router as health_router
from apicredits.gateway.metrics import Metrics
from apicredits.gateway.models import routes as model_routes
from apicredits.gateway.openapi import document_gateway
from apicredits.gateway.proxy import Proxy
from apicredits.gateway.routing import Router
from apicredits.gateway.sdk_responses import route_error
from apicredits.gateway.signin import router as signin_router
from apicredits.gateway.usage import UsageEvents
from apicredits.gateway.usage import routes as usage_routes
from apicredits.runtime import Runtime
from apicredits.settings import Settings

log = logging.getLogger("apicredits.gateway")


def control_plane() -> FastAPI:
    app = FastAPI(
        title="apicredits",
        version=__version__,
        summary="Tokenised API credits: quote, lock, meter and settle every call.",
        description="The control plane (`/admin/v1`) and the data plane: the seed job API, "
        "the provider-compatible routes (each in its provider's own format, errors in the "
        "calling SDK's shape) and the usage receipts.",
    )
    install_error_handlers(app)
    document_gateway(app)
    app.include_router(admin_router)
    app.include_router(admin_auth_router)
    app.include_router(admin_chain_router)
    app.include_router(signin_router)
    app.include_router(health_router)
    return app


async def _every(interval: float, step: Callable[[], Awaitable[int]], what: str) -> None:
    while True:
        try:
            while await step() > 0:
                pass
        except Exception:
            log.exception("%s pass failed; will retry", what)
        await asyncio.sleep(interval)


def _freeze_startup_heap() -> bool:
    """Move what start-up left on the heap (libraries, models, the app: ~170,000 objects that
    live as long as the process) out of the garbage collector's sight, so that a full
    collection scans only what came later. Under load a full collection then pauses a
    worker ~3 ms instead of ~100 ms. Returns whether it froze: not if another app in this
    process already has (tests run several), whose shutdown then unfreezes."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> ASGIApp:
    """Build the app; it opens its ``Runtime`` (unless given one) and runs the sweepers
    and, when a chain deployment is configured, the vault indexer."""
    settings = settings or (runtime.settings if runtime else Settings())
    admin = control_plane()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or await Runtime.open(settings)
        proxy = Proxy(rt, Router(settings), Metrics())
        rt.authenticator.on_legacy_use = lambda _: proxy.metrics.legacy_key_uses.inc()
        await proxy.start()
        usage = await UsageEvents.open(rt)
        if usage.signing:
            proxy.upstream_headers = usage.upstream_headers
        for state in (app.state, admin.state):
            state.runtime = rt
            state.proxy = proxy
            state.usage = usage
        interval = settings.sweep_interval_seconds
        sweepers = [
            asyncio.create_task(_every(interval, rt.ledger.expire_due, "lock sweeper")),
            asyncio.create_task(_every(interval, proxy.jobs.settle_due, "job sweeper")),
            asyncio.create_task(rt.authority.run_refresher()),
        ]
        if settings.usage_events:  # sign every usage record, off the request path
            every = settings.usage_producer_interval_seconds
            sweepers.append(asyncio.create_task(usage.producer.run(every)))
        if rt.chain is not None:
            sweepers.append(asyncio.create_task(rt.chain.run()))
        else:
            log.info("on-chain deposits are not indexed: no chain deployment; "
                     "`apicredits chain deploy` (then restart) enables them")  # fmt: skip
        frozen = _freeze_startup_heap()
        try:
            yield
        finally:
            if frozen:
                gc.unfreeze()
            for task in sweepers:
                task.cancel()
            await asyncio.gather(*sweepers, return_exceptions=True)
            await proxy.stop()
            proxy.metrics.close()
            if runtime is None:
                await rt.close()

    async def domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApicreditsError)
        return domain_error_response(exc)

    data_plane = [*usage_routes(), *model_routes(), *dataplane.routes(), *oracle_receipts.routes()]
    app = Starlette(
        routes=[*data_plane, ControlPlane(admin, data_plane)],
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_exception_response,
            ApicreditsError: domain,
            Exception: unexpected_error_response,  # e.g. on the Gemini route, past HotPath
        },
    )
    return BodySizeLimit(HotPath(app), settings.max_body_bytes)


class ControlPlane(Mount):
    """The control plane, mounted at "/" behind the data plane's routes. It leaves alone
    the paths the data plane serves, so that one of them asked with another method gets
    the router's 405 (with ``Allow``) instead of the control plane's 404."""

    def __init__(self, app: FastAPI, data_plane: Sequence[BaseRoute]) -> None:
        super().__init__("/", app=app)
        self.data_plane = data_plane

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and any(
            route.matches(scope)[0] != Match.NONE for route in self.data_plane
        ):
            return Match.NONE, {}
        return super().matches(scope)


class HotPath:
    """Sends the provider-compatible POST routes straight to the proxy, past Starlette's
    middleware and router (a quarter of a request's cost there); everything else goes
    through the full app. The proxy turns every error into a response itself."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.routes = dataplane.hot_routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            if "\0" in scope.get("path", ""):  # no id holds one; PostgreSQL would refuse it
                error = error_response(400, "invalid_request", "the path holds a NUL character")
                await error(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await dataplane.proxy_of(request).handle(request, route)
        except HTTPException as exc:  # the body-size limit, raised while reading the body
            response = await http_exception_response(request, exc)
        except ApicreditsError as exc:  # e.g. the database went away while settling
            response = route_error(route, exc)
        except Exception:
            log.exception("unhandled error on %s", scope["path"])
            response = error_response(500, "internal_error", "internal error; see the server log")
        dataplane.proxy_of(request).metrics.request(str(route), response.status_code)
        await response(scope, receive, send)
