"""The official OpenAI SDK, pointed at the gateway and authenticated with capability tokens.

The OpenAI SDK insists on an API key and sends it as ``Authorization: Bearer <key>``; these
clients give it a placeholder, and ``CapabilityAuth`` (which runs after the SDK has built each
request) replaces that header with the capability token. ``openai`` is imported on first use: it
is an optional dependency (``apicredits[sdk]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import httpx

from apicredits.sdk.auth import CapabilityAuth
from apicredits.sdk.keys import ServiceKey

if TYPE_CHECKING:
    import openai

__all__ = ["PLACEHOLDER_API_KEY", "async_openai_client", "openai_client"]

PLACEHOLDER_API_KEY = "apicredits-capability-token"  # never sent: CapabilityAuth replaces it


def openai_client(
    base_url: str,
    client_id: str,
    key: ServiceKey,
    *,
    scopes: Iterable[str] | None = None,
    dpop: bool | ServiceKey = True,
    ttl: int | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    **openai_kwargs: Any,
) -> openai.OpenAI:
    """An ``openai.OpenAI`` for the gateway at ``base_url`` (its root, without ``/v1``).

    ``transport`` replaces httpx's network transport (tests pass an ``httpx.MockTransport``);
    other keyword arguments go to ``openai.OpenAI`` (``max_retries``, ``timeout``, ...).
    """
    import openai

    auth = CapabilityAuth(base_url, client_id, key, scopes=scopes, dpop=dpop, ttl=ttl, clock=clock)
    http_client = httpx.Client(auth=auth, transport=transport)
    return openai.OpenAI(
        base_url=f"{auth.base_url}/v1",
        api_key=PLACEHOLDER_API_KEY,
        # openai 2.x+ is typed for httpx2 but accepts an httpx.Client at runtime
        http_client=cast(Any, http_client),
        **openai_kwargs,
    )


def async_openai_client(
    base_url: str,
    client_id: str,
    key: ServiceKey,
    *,
    scopes: Iterable[str] | None = None,
    dpop: bool | ServiceKey = True,
    ttl: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    **openai_kwargs: Any,
) -> openai.AsyncOpenAI:
    """Like ``openai_client``, an ``openai.AsyncOpenAI`` over an ``httpx.AsyncClient``."""
    import openai

    auth = CapabilityAuth(base_url, client_id, key, scopes=scopes, dpop=dpop, ttl=ttl, clock=clock)
    http_client = httpx.AsyncClient(auth=auth, transport=transport)
    return openai.AsyncOpenAI(
        base_url=f"{auth.base_url}/v1",
        api_key=PLACEHOLDER_API_KEY,
        http_client=cast(Any, http_client),
        **openai_kwargs,
    )
