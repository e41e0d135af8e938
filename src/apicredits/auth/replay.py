"""Replay caches: remember a one-time value (a DPoP ``jti``) until it could no longer be used.

``MemoryReplayCache`` serves one process (tests, ``demo``); ``RedisReplayCache`` is shared by
every worker and replica. Both fail closed: a cache that cannot answer refuses the request
(``LimitsUnavailable``) rather than let a replay through.
"""

from __future__ import annotations

import abc
import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from apicredits.errors import LimitsUnavailable

__all__ = ["MemoryReplayCache", "RedisReplayCache", "ReplayCache"]


class ReplayCache(abc.ABC):
    @abc.abstractmethod
    async def remember(self, key: str, ttl_seconds: int) -> bool:
        """Store ``key`` for ``ttl_seconds``: True if it was new, False if seen before."""

    async def aclose(self) -> None:  # noqa: B027 - optional for implementations
        """Release connections, if any."""


class MemoryReplayCache(ReplayCache):
    """A bounded in-process cache. Keys sit in insertion order; with one TTL for all (the DPoP
    case) that is expiry order, so expired entries are dropped from the front in amortised
    O(1). A key that outlives its TTL behind a longer-lived one is treated as absent."""

    def __init__(
        self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._expiries: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._expiries)

    async def remember(self, key: str, ttl_seconds: int) -> bool:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        now = self._clock()
        expiries = self._expiries
        while expiries and next(iter(expiries.values())) <= now:
            expiries.popitem(last=False)
        expiry = expiries.get(key)
        if expiry is not None and expiry > now:
            return False
        if expiry is None and len(expiries) >= self._max:
            # Evicting a live entry would let its value be replayed: refuse instead.
            raise LimitsUnavailable(
                f"the in-memory replay cache is full ({self._max} live entries); "
                "refusing requests until entries expire"
            )
        expiries.pop(key, None)  # re-inserted at the end: insertion order stays expiry order
        expiries[key] = now + ttl_seconds
        return True


class RedisReplayCache(ReplayCache):
    """``SET key 1 NX PX ttl``: one atomic step, so of any number of workers exactly one
    stores a key. Redis expires the keys itself."""

    def __init__(self, url_or_client: str | aioredis.Redis, prefix: str = "apicredits:") -> None:
        if isinstance(url_or_client, str):
            # No retries: a retried SET whose first reply was lost would answer "seen before".
            self._client = aioredis.Redis.from_url(
                url_or_client,
                socket_connect_timeout=1.0,
                socket_timeout=1.0,
                retry=Retry(NoBackoff(), 0),
            )
            self._owns_client = True
        else:
            self._client = url_or_client
            self._owns_client = False
        kwargs = self._client.connection_pool.connection_kwargs  # no password in messages
        self._where = f"redis at {kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        self._prefix = f"{prefix}replay:"

    async def remember(self, key: str, ttl_seconds: int) -> bool:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        try:
            stored = await self._client.set(
                self._prefix + key, b"1", nx=True, px=ttl_seconds * 1000
            )
        except RedisError as exc:
            raise LimitsUnavailable(
                f"the replay cache is unreachable: {self._where} failed "
                f"({type(exc).__name__}: {exc}); refusing requests until it is back"
            ) from exc
        return bool(stored)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
