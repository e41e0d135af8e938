"""The Redis replay cache: once only across processes, expiry, and fail closed."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading

import pytest
import redis.asyncio as aioredis

from apicredits.auth.replay import RedisReplayCache
from apicredits.errors import LimitsUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

_barrier: threading.Barrier | None = None


def _init_worker(barrier: threading.Barrier) -> None:
    global _barrier
    _barrier = barrier


async def _remember_all(url: str, prefix: str) -> int:
    cache = RedisReplayCache(url, prefix)
    try:
        await cache.remember("warm-up", 60)  # connect before the race starts
        assert _barrier is not None
        await asyncio.to_thread(_barrier.wait, 60)
        stored = await asyncio.gather(*(cache.remember(f"jti-{i}", 60) for i in range(100)))
    finally:
        await cache.aclose()
    return sum(stored)


def _process(url: str, prefix: str) -> int:
    return asyncio.run(_remember_all(url, prefix))


def test_each_jti_is_stored_once_across_four_processes(redis_url: str, redis_prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4, initializer=_init_worker, initargs=(ctx.Barrier(4),)) as pool:
        successes = pool.starmap(_process, [(redis_url, redis_prefix)] * 4)
    assert sum(successes) == 100


async def test_remember_and_expire(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    cache = RedisReplayCache(client, redis_prefix)
    try:
        assert await cache.remember("a", 1)
        assert not await cache.remember("a", 1)
        assert 0 < await client.pttl(f"{redis_prefix}replay:a") <= 1000
        await asyncio.sleep(1.1)
        assert await cache.remember("a", 1)
    finally:
        await cache.aclose()  # does not close a client it was given
        await client.aclose()


async def test_fails_closed_when_redis_is_gone() -> None:
    cache = RedisReplayCache("redis://:secret@127.0.0.1:1/0", "x:")
    try:
        with pytest.raises(LimitsUnavailable) as err:
            await cache.remember("a", 60)
    finally:
        await cache.aclose()
    assert "replay cache is unreachable" in err.value.message
    assert "secret" not in err.value.message
