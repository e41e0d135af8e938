"""In-process rate limits with a fake clock: GCRA boundaries, refill, concurrency leases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.errors import InvalidInput, RateLimited
from apicredits.limits import MemoryRateLimiter, RateLimits
from apicredits.limits import memory as memory_module

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_requests_per_minute_burst_then_refill() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=60)
    for _ in range(60):
        await limiter.acquire("k", limits)
    with pytest.raises(RateLimited) as err:
        await limiter.acquire("k", limits)
    assert err.value.details["limit"] == "requests_per_minute"
    assert err.value.retry_after_seconds == pytest.approx(1.0)
    clock.now += 0.99
    with pytest.raises(RateLimited):
        await limiter.acquire("k", limits)
    clock.now += 0.02
    await limiter.acquire("k", limits)  # one request's worth refilled after 1 s


async def test_tokens_per_minute_and_oversize_requests() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(tokens_per_minute=1000)
    await limiter.acquire("k", limits, tokens=700)
    with pytest.raises(RateLimited) as err:
        await limiter.acquire("k", limits, tokens=400)
    assert err.value.details["limit"] == "tokens_per_minute"
    assert err.value.retry_after_seconds == pytest.approx(6.0)  # 100 tokens at 1000/60 s
    await limiter.acquire("k", limits, tokens=300)
    with pytest.raises(InvalidInput):
        await limiter.acquire("k", limits, tokens=1001)  # could never fit: not a 429
    with pytest.raises(InvalidInput):
        await limiter.acquire("k", limits, tokens=-1)


async def test_a_refused_acquire_consumes_nothing() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=2, tokens_per_minute=100)
    await limiter.acquire("k", limits, tokens=90)
    with pytest.raises(RateLimited):
        await limiter.acquire("k", limits, tokens=50)  # tokens refuse; the request is not counted
    await limiter.acquire("k", limits, tokens=10)


async def test_adjust_tokens_corrects_the_estimate() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(tokens_per_minute=100)
    await limiter.acquire("k", limits, tokens=100)
    await limiter.adjust_tokens("k", limits, -60)  # only 40 were really used
    await limiter.acquire("k", limits, tokens=60)
    await limiter.adjust_tokens("k", limits, 50)  # debt: used more than estimated
    with pytest.raises(RateLimited):
        await limiter.acquire("k", limits, tokens=1)


async def test_concurrency_leases() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock, lease_ttl_seconds=30)
    limits = RateLimits(max_concurrent=2)
    a = await limiter.acquire("k", limits)
    await limiter.acquire("k", limits)
    with pytest.raises(RateLimited) as err:
        await limiter.acquire("k", limits)
    assert err.value.details["limit"] == "max_concurrent"
    await limiter.release(a)
    await limiter.release(a)  # twice is harmless
    c = await limiter.acquire("k", limits)
    with pytest.raises(RateLimited):
        await limiter.acquire("k", limits)
    clock.now += 31  # a crashed holder's slots come back after the lease TTL
    await limiter.acquire("k", limits)
    await limiter.acquire("k", limits)
    assert c.concurrent


async def test_keys_are_independent_and_unlimited_is_free() -> None:
    limiter = MemoryRateLimiter(Clock())
    one = RateLimits(requests_per_minute=1)
    await limiter.acquire("a", one)
    await limiter.acquire("b", one)
    for _ in range(1000):
        await limiter.acquire("c", RateLimits())


async def test_idle_keys_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_module, "MAX_IDLE_KEYS", 10)
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    for i in range(10):
        await limiter.acquire(f"k{i}", RateLimits(requests_per_minute=60))
    clock.now += 120
    await limiter.acquire("new", RateLimits(requests_per_minute=60))
    assert len(limiter._states) == 1


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_limits_must_be_positive_integers(bad: object) -> None:
    with pytest.raises(InvalidInput):
        RateLimits(requests_per_minute=bad)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(rpm=st.integers(1, 50), gaps=st.lists(st.floats(0, 0.5), max_size=120))
def test_never_more_than_rpm_in_any_minute(rpm: int, gaps: list[float]) -> None:
    import asyncio

    async def run() -> list[float]:
        clock = Clock()
        limiter = MemoryRateLimiter(clock)
        admitted = []
        for gap in gaps:
            clock.now += gap
            try:
                await limiter.acquire("k", RateLimits(requests_per_minute=rpm))
                admitted.append(clock.now)
            except RateLimited:
                pass
        return admitted

    admitted = asyncio.run(run())
    for i, start in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t < start + 60]
        assert len(in_window) <= rpm
