"""A bare Starlette + aiohttp proxy with no auth, no metering and no ledger: the floor a
Python gateway stands on, measured beside ours by ``bench/gateway.py``.

    python bench/bare_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(upstream: str) -> Starlette:
    session: dict[str, aiohttp.ClientSession] = {}

    async def chat(request: Request) -> Response:
        body = await request.body()
        async with session["http"].post(
            f"{upstream}/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json"},
        ) as r:
            payload = await r.read()
        return Response(payload, r.status, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as http:
            session["http"] = http
            yield

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan
    )


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
