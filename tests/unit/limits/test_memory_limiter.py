"""In-process rate limits with a fake clock: GCRA boundaries, refill, concurrency leases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.errors import InvalidInput, RateLimited
from apicredits.limits import (
    MemoryRateLimiter,
    RateLimits,
    RedisRateLimiter,
    create_rate_limiter,
)

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refused(limiter: MemoryRateLimiter, limits: RateLimits, tokens: int = 0) -> RateLimited:
    with pytest.raises(RateLimited) as err:
        await limiter.acquire("k", limits, tokens)
    return err.value


async def test_requests_per_minute_burst_then_refill() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=60)
    for _ in range(60):
        await limiter.acquire("k", limits)
    err = await refused(limiter, limits)
    assert err.details["limit"] == "requests_per_minute"
    assert err.retry_after_seconds == pytest.approx(1.0)
    clock.now += 0.99
    await refused(limiter, limits)
    clock.now += 0.01
    await limiter.acquire("k", limits)  # exactly one request's worth refilled after 1 s
    await refused(limiter, limits)
    clock.now += 60
    for _ in range(60):  # a full minute idle refills the whole burst, no more
        await limiter.acquire("k", limits)
    await refused(limiter, limits)


async def test_exact_boundary_with_an_inexact_interval() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=7)  # 60 / 7 s is no exact float
    for _ in range(7):
        await limiter.acquire("k", limits)
    err = await refused(limiter, limits)
    assert err.retry_after_seconds == pytest.approx(60 / 7)
    clock.now += 60 / 7
    await limiter.acquire("k", limits)


async def test_tokens_per_minute_and_oversize_requests() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(tokens_per_minute=1000)
    await limiter.acquire("k", limits, tokens=700)
    err = await refused(limiter, limits, tokens=400)
    assert err.details["limit"] == "tokens_per_minute"
    assert err.retry_after_seconds == pytest.approx(6.0)  # 100 tokens at 1000 per 60 s
    await limiter.acquire("k", limits, tokens=300)
    await limiter.acquire("k", limits, tokens=0)  # no tokens, nothing to check
    clock.now += 60
    await limiter.acquire("k", limits, tokens=1000)  # the whole minute fits at once
    for bad in (1001, -1, True):
        with pytest.raises(InvalidInput):  # 1001 could never fit: not a 429
            await limiter.acquire("k", limits, tokens=bad)


async def test_a_refused_acquire_consumes_nothing() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=3, tokens_per_minute=100, max_concurrent=2)
    await limiter.acquire("k", limits, tokens=90)
    await refused(limiter, limits, tokens=50)  # tokens refuse: the request is not counted
    lease = await limiter.acquire("k", limits, tokens=10)
    assert (await refused(limiter, limits)).details["limit"] == "max_concurrent"
    await limiter.release(lease)  # neither request nor tokens were spent by that refusal
    await limiter.acquire("k", limits)
    err = await refused(limiter, limits, tokens=1)
    assert err.details["limit"] == "requests_per_minute"


async def test_retry_after_names_the_limit_that_binds_longest() -> None:
    limiter = MemoryRateLimiter(Clock())
    limits = RateLimits(requests_per_minute=60, tokens_per_minute=60)
    await limiter.acquire("k", limits, tokens=60)
    err = await refused(limiter, limits, tokens=30)  # rpm would admit; tokens need 30 s
    assert err.details["limit"] == "tokens_per_minute"
    assert err.retry_after_seconds == pytest.approx(30.0)


async def test_adjust_tokens_refunds_and_debt() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(tokens_per_minute=100)
    await limiter.acquire("k", limits, tokens=100)
    await limiter.adjust_tokens("k", limits, -60)  # only 40 were really used
    await limiter.acquire("k", limits, tokens=60)
    await refused(limiter, limits, tokens=1)
    await limiter.adjust_tokens("k", limits, 50)  # debt: used more than estimated
    err = await refused(limiter, limits, tokens=1)
    assert err.retry_after_seconds == pytest.approx(30.6)  # 50 owed + 1 wanted at 100/min
    await limiter.adjust_tokens("other", limits, 10_000)  # never raises, even far in debt
    await limiter.adjust_tokens("k", RateLimits(), 10**9)  # no token limit: nothing to do
    clock.now += 600
    await limiter.adjust_tokens("k", limits, -10_000)  # a refund never exceeds the burst
    await limiter.acquire("k", limits, tokens=100)
    await refused(limiter, limits, tokens=1)


async def test_concurrency_leases_release_and_expiry() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock, lease_ttl_seconds=30)
    limits = RateLimits(max_concurrent=2)
    a = await limiter.acquire("k", limits)
    await limiter.acquire("k", limits)
    err = await refused(limiter, limits)
    assert err.details["limit"] == "max_concurrent"
    assert 0 < err.retry_after_seconds <= 1.0  # a short hint, not the 30 s lease TTL
    await limiter.release(a)
    await limiter.release(a)  # twice is harmless: it does not free another slot
    await limiter.acquire("k", limits)
    await refused(limiter, limits)
    clock.now += 29.9995
    err = await refused(limiter, limits)
    assert err.retry_after_seconds == pytest.approx(0.001)  # the oldest lease's expiry
    clock.now += 0.001  # a crashed holder's slots come back after the lease TTL
    await limiter.acquire("k", limits)
    assert (await limiter.acquire("k", limits)).concurrent


async def test_keys_are_independent_and_unlimited_keeps_no_state() -> None:
    limiter = MemoryRateLimiter(Clock())
    one = RateLimits(requests_per_minute=1)
    await limiter.acquire("a", one)
    await limiter.acquire("b", one)
    assert len(limiter) == 2
    for _ in range(1000):
        lease = await limiter.acquire("c", RateLimits(), tokens=10**9)
        await limiter.release(lease)
        assert not lease.concurrent
    assert len(limiter) == 2
    await limiter.aclose()


async def test_idle_keys_are_forgotten_so_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=10)  # a key is idle 6 s after its one request
    for i in range(20_000):  # 100 new keys a second
        clock.now += 0.01
        await limiter.acquire(f"key-{i}", limits)
        assert len(limiter) <= 2 * 600 + 2
    clock.now += 60
    for _ in range(len(limiter)):
        await limiter.acquire("busy", RateLimits(requests_per_minute=10**6))
    assert len(limiter) == 1


async def test_create_rate_limiter() -> None:
    assert isinstance(create_rate_limiter(None), MemoryRateLimiter)
    redis_limiter = create_rate_limiter("redis://127.0.0.1:6379/0", prefix="x:")
    assert isinstance(redis_limiter, RedisRateLimiter)  # connects lazily, on first use
    await redis_limiter.aclose()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_limits_must_be_positive_integers(bad: object) -> None:
    for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
        with pytest.raises(InvalidInput):
            RateLimits(**{name: bad})  # type: ignore[arg-type]


def test_unlimited() -> None:
    assert RateLimits().unlimited
    assert not RateLimits(max_concurrent=1).unlimited


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.integers(1, 50),
    tpm=st.integers(1, 5000),
    calls=st.lists(st.tuples(st.floats(0, 3), st.integers(0, 5000)), max_size=150),
)
async def test_gcra_never_admits_more_than_the_rate(
    rpm: int, tpm: int, calls: list[tuple[float, int]]
) -> None:
    """Within any span of T seconds: at most rpm * (1 + T/60) requests and likewise tokens;
    all at one instant that is at most rpm. A caller pacing at the rate is never refused."""
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    limits = RateLimits(requests_per_minute=rpm, tokens_per_minute=tpm)
    admitted: list[tuple[float, int]] = []
    for gap, tokens in calls:
        clock.now += gap
        tokens = min(tokens, tpm)
        try:
            await limiter.acquire("k", limits, tokens)
            admitted.append((clock.now, tokens))
        except RateLimited:
            assert gap < 60 / rpm or tokens * 60 / tpm > gap
    for i, (start, _) in enumerate(admitted):
        requests = tokens_sum = 0
        for end, tokens in admitted[i:]:  # the span [start, end], admissions in time order
            requests, tokens_sum = requests + 1, tokens_sum + tokens
            assert requests <= rpm * (1 + (end - start) / 60) + 1e-6
            assert tokens_sum <= tpm * (1 + (end - start) / 60) + 1e-6
    instants = {when for when, _ in admitted}
    assert all(sum(1 for w, _ in admitted if w == t) <= rpm for t in instants)
