"""Probes for whatever runs the gateway: ``/healthz`` (the process answers) and ``/readyz``
(it can serve calls: its database answers, and so does the shared limits store when there
is one). A load balancer that routes by ``/readyz`` stops sending calls to a replica that
would refuse them: every call while its database is gone, every rate-limited call while its
Redis is (fail closed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, text

from apicredits.runtime import Runtime

log = logging.getLogger("apicredits.gateway")
router = APIRouter(tags=["ops"])

CHECK_SECONDS = 2.0  # a probe that waits longer than this is itself a failure


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is not answering"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve calls: 200 if the database and the shared limits store answer, else
    503 naming what does not."""
    rt: Runtime = request.app.state.runtime
    checks = {
        "database": lambda: rt.db.read(_select_one),
        "limits": rt.limiter.check,
    }
    failures: dict[str, str] = {}
    for name, check in checks.items():
        problem = await _problem(name, check)
        if problem is not None:
            failures[name] = problem
    results = {name: failures.get(name, "ok") for name in checks}
    if not failures:
        return JSONResponse({"status": "ready", "checks": results})
    message = "; ".join(f"{name}: {problem}" for name, problem in failures.items())
    body = {"error": {"code": "not_ready", "message": message, "checks": results}}
    return JSONResponse(body, status_code=503)


async def _problem(name: str, check: Callable[[], Awaitable[object]]) -> str | None:
    """What is wrong, in words safe for anyone who can reach the port (the details, which
    may name hosts, go to the log)."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await check()
    except TimeoutError:
        log.warning("readiness: %s gave no answer within %g s", name, CHECK_SECONDS)
        return f"no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:  # any failure is the answer: not ready
        log.warning("readiness: %s failed: %s", name, exc)
        return f"failed ({type(exc).__name__}); see the gateway's log"
    return None


def _select_one(conn: Connection) -> object:
    return conn.execute(text("SELECT 1")).scalar_one()
