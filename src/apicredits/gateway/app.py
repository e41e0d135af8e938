"""The ASGI application: control plane (FastAPI, OpenAPI at ``/docs``) and, on the same
port, the data plane as it lands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp

from apicredits import __version__
from apicredits.gateway.admin import router as admin_router
from apicredits.gateway.body_limit import BodySizeLimit
from apicredits.gateway.errors import install_error_handlers
from apicredits.runtime import Runtime
from apicredits.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> ASGIApp:
    """Build the app; it opens its ``Runtime`` (unless given one) and runs the lock sweeper."""
    settings = settings or (runtime.settings if runtime else Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or await Runtime.open(settings)
        app.state.runtime = rt
        sweeper = asyncio.create_task(rt.ledger.run_sweeper(settings.sweep_interval_seconds))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if runtime is None:
                await rt.close()

    app = FastAPI(
        title="apicredits",
        version=__version__,
        summary="Tokenised API credits: quote, lock, meter and settle every call.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(admin_router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return BodySizeLimit(app, settings.max_body_bytes)
