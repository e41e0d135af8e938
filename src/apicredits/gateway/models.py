"""The models this gateway can route now, in the format of the SDK that asks.

GET /v1/models, /v1/models/{model}    OpenAI's list and model objects; Anthropic's (only the
                                      models its Messages API reaches) when the request
                                      carries ``anthropic-version``, as the Anthropic SDK's
                                      ``models.list`` / ``models.retrieve`` do
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.routing import Route as HttpRoute

from apicredits.errors import UnknownModel
from apicredits.gateway.dataplane import json_api, proxy_of


async def routable(request: Request) -> dict[str, dict[str, Any]]:
    """Name → model object, in the asking SDK's format."""
    proxy = proxy_of(request)
    tariff = (await proxy.rt.tariffs.book()).current(int(time.time()))
    if "anthropic-version" in request.headers:
        created = datetime.fromtimestamp(tariff.effective_from, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            name: {"type": "model", "id": name, "display_name": name, "created_at": created}
            for name in tariff.rates
            if proxy.router.routable(name, tariff, dialect="anthropic")
        }
    since = tariff.effective_from
    return {
        name: {"id": name, "object": "model", "created": since, "owned_by": rate.provider}
        for name, rate in tariff.rates.items()
        if proxy.router.routable(name, tariff)
    }


@json_api("models")
async def list_models(request: Request, _: object) -> Any:
    found = list((await routable(request)).values())
    if "anthropic-version" in request.headers:
        first, last = (found[0]["id"], found[-1]["id"]) if found else (None, None)
        return {"data": found, "has_more": False, "first_id": first, "last_id": last}
    return {"object": "list", "data": found}


@json_api("models")
async def get_model(request: Request, _: object) -> Any:
    name = request.path_params["model"]
    found = (await routable(request)).get(name)
    if found is None:
        raise UnknownModel(f"model {name!r} is not available on this gateway", model=name)
    return found


def routes() -> list[HttpRoute]:
    return [
        HttpRoute("/v1/models", list_models, methods=["GET"]),
        HttpRoute("/v1/models/{model}", get_model, methods=["GET"]),
    ]
