"""A bare Starlette proxy with no auth, no metering and no ledger: the floor a Python gateway
stands on, measured beside ours by ``bench/gateway.py``. Its upstream client is aiohttp's
(the usual choice) or the gateway's own ``UpstreamClient``, to show what each costs.

    python bench/bare_proxy.py PORT UPSTREAM_URL [aiohttp|own]
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apicredits.gateway.upstream_client import UpstreamClient

Send = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]
HEADERS = {"content-type": "application/json"}


def create_app(upstream: str, client: str = "aiohttp") -> Starlette:
    send: dict[str, Send] = {}

    async def chat(request: Request) -> Response:
        status, payload = await send["post"](
            f"{upstream}/v1/chat/completions", await request.body()
        )
        return Response(payload, status, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if client == "aiohttp":
            async with aiohttp.ClientSession() as http:

                async def post(url: str, body: bytes) -> tuple[int, bytes]:
                    async with http.post(url, data=body, headers=HEADERS) as r:
                        return r.status, await r.read()

                send["post"] = post
                yield
            return
        own = UpstreamClient()

        async def post_own(url: str, body: bytes) -> tuple[int, bytes]:
            r = await own.post(url, HEADERS, body, time_limit=60)
            try:
                return r.status, await r.read()
            finally:
                r.release()

        send["post"] = post_own
        try:
            yield
        finally:
            await own.aclose()

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan
    )


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "aiohttp"),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
