"""The models this gateway can route now, in the format of the SDK that asks.

GET /v1/models, /v1/models/{model}     OpenAI's list and model objects; Anthropic's (only
                                       the models its Messages API reaches) when the request
                                       carries ``anthropic-version``, as the Anthropic SDK's
                                       ``models.list`` / ``models.retrieve`` do
GET /v1beta/models, /v1beta/models/{model}   Gemini's (google-genai's ``models.list`` /
                                       ``models.get``, which may ask /v1/models too, known
                                       then by ``x-goog-api-client``): the models its
                                       routes reach

A model name here never holds ``:``, so ``GET /v1beta/models/m:generateContent`` is still
the Gemini call route's 405, not an unknown model.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.convertors import register_url_convertor
from starlette.requests import Request
from starlette.routing import Route as HttpRoute

from apicredits.errors import UnknownModel
from apicredits.gateway.dataplane import json_api, path_segment, proxy_of
from apicredits.tariffs import TariffVersion

register_url_convertor("model_name", path_segment("[^/:]+"))


def _openai(tariff: TariffVersion, names: list[str]) -> dict[str, dict[str, Any]]:
    since = tariff.effective_from
    return {
        n: {"id": n, "object": "model", "created": since, "owned_by": tariff.rates[n].provider}
        for n in names
    }


def _anthropic(tariff: TariffVersion, names: list[str]) -> dict[str, dict[str, Any]]:
    since = datetime.fromtimestamp(tariff.effective_from, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {n: {"type": "model", "id": n, "display_name": n, "created_at": since} for n in names}


def _gemini(tariff: TariffVersion, names: list[str]) -> dict[str, dict[str, Any]]:
    methods = ["generateContent", "streamGenerateContent"]
    return {
        n: {
            "name": f"models/{n}",
            "baseModelId": n,
            "version": str(tariff.version),
            "displayName": n,
            "supportedGenerationMethods": methods,
        }
        for n in names
    }


_FORMATS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}


async def routable(request: Request, sdk: str) -> dict[str, dict[str, Any]]:
    """Name → model object in ``sdk``'s format; all routable models for OpenAI's list (as
    before), only those its own routes reach for Anthropic's and Gemini's."""
    proxy = proxy_of(request)
    tariff = (await proxy.rt.tariffs.book()).current(int(time.time()))
    dialect = None if sdk == "openai" else sdk
    names = [n for n in tariff.rates if proxy.router.routable(n, tariff, dialect=dialect)]
    return _FORMATS[sdk](tariff, names)


def _sdk(request: Request) -> str:
    headers = request.headers
    # google-genai given a base URL asks /v1/models, with its own headers
    if request.url.path.startswith("/v1beta/") or "x-goog-api-client" in headers:
        return "gemini"
    return "anthropic" if "anthropic-version" in request.headers else "openai"


@json_api("models")
async def list_models(request: Request, _: object) -> Any:
    sdk = _sdk(request)
    found = list((await routable(request, sdk)).values())
    if sdk == "gemini":
        return {"models": found}
    if sdk == "anthropic":
        first, last = (found[0]["id"], found[-1]["id"]) if found else (None, None)
        return {"data": found, "has_more": False, "first_id": first, "last_id": last}
    return {"object": "list", "data": found}


@json_api("models")
async def get_model(request: Request, _: object) -> Any:
    name = request.path_params["model"]
    found = (await routable(request, _sdk(request))).get(name)
    if found is None:
        raise UnknownModel(f"model {name!r} is not available on this gateway", model=name)
    return found


def routes() -> list[HttpRoute]:
    return [
        HttpRoute("/v1/models", list_models, methods=["GET"]),
        HttpRoute("/v1/models/{model:model_name}", get_model, methods=["GET"]),
        HttpRoute("/v1beta/models", list_models, methods=["GET"]),
        HttpRoute("/v1beta/models/{model:model_name}", get_model, methods=["GET"]),
    ]
