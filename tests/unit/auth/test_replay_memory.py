"""The in-process replay cache: once only, expiry, and bounded memory."""

from __future__ import annotations

import pytest

from apicredits.auth.replay import MemoryReplayCache
from apicredits.errors import LimitsUnavailable

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_remembers_once_until_expiry() -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    assert await cache.remember("a", 10)
    assert not await cache.remember("a", 10)
    assert await cache.remember("b", 10)
    clock.now += 9.9
    assert not await cache.remember("a", 10)
    clock.now += 0.1
    assert await cache.remember("a", 10)  # expired: a new use
    assert len(cache) == 1  # "b" was evicted on the way
    await cache.aclose()


async def test_expired_entries_are_evicted_and_size_is_bounded() -> None:
    clock = Clock()
    cache = MemoryReplayCache(max_entries=100, clock=clock)
    for i in range(100):
        assert await cache.remember(f"k{i}", 5)
    with pytest.raises(LimitsUnavailable):
        await cache.remember("one-too-many", 5)  # full of live entries: fail closed
    assert not await cache.remember("k0", 5)  # a known key is still answered
    clock.now += 5
    for i in range(100, 1100):
        assert await cache.remember(f"k{i}", 5)
        clock.now += 0.06  # about 84 live at a time
    assert len(cache) <= 100


async def test_entry_behind_a_longer_ttl_counts_as_expired() -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    assert await cache.remember("long", 100)
    assert await cache.remember("short", 1)
    clock.now += 1
    assert await cache.remember("short", 1)
    assert not await cache.remember("long", 100)


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryReplayCache(max_entries=0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        await MemoryReplayCache().remember("k", 0)
