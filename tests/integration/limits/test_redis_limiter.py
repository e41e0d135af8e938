"""Rate limits in the real Redis: atomic across processes, and fail closed when it is gone."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from apicredits.errors import (
    BudgetExceeded,
    InsufficientCredits,
    InvalidInput,
    LimitsUnavailable,
    RateLimited,
)
from apicredits.limits import Lease, RateLimits, RedisRateLimiter

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def refused(limiter: RedisRateLimiter, limits: RateLimits, tokens: int = 0) -> RateLimited:
    with pytest.raises(RateLimited) as err:
        await limiter.acquire("k", limits, tokens)
    return err.value


async def test_rpm_boundary_and_retry_after(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limits = RateLimits(requests_per_minute=30)
    try:
        for _ in range(30):
            await limiter.acquire("k", limits)
        err = await refused(limiter, limits)
        assert err.details["limit"] == "requests_per_minute"
        assert 1.0 < err.retry_after_seconds <= 2.0  # one request per 2 s refills
        await limiter.acquire("other", limits)  # keys are independent
    finally:
        await limiter.aclose()


async def test_tokens_refund_debt_and_oversize(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limits = RateLimits(tokens_per_minute=1000)
    try:
        await limiter.acquire("k", limits, tokens=900)
        err = await refused(limiter, limits, tokens=200)
        assert err.details["limit"] == "tokens_per_minute"
        assert 5.0 < err.retry_after_seconds <= 6.0  # 100 tokens short at 1000 per 60 s
        await limiter.adjust_tokens("k", limits, -500)  # only 400 were really used
        await limiter.acquire("k", limits, tokens=200)
        await limiter.adjust_tokens("k", limits, 2000)  # debt: never refused, paid off later
        err = await refused(limiter, limits, tokens=1)
        assert err.retry_after_seconds > 60
        with pytest.raises(InvalidInput):
            await limiter.acquire("k", limits, tokens=1001)  # could never fit: not a 429
    finally:
        await limiter.aclose()


async def test_a_refusal_consumes_nothing(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limits = RateLimits(requests_per_minute=3, tokens_per_minute=100, max_concurrent=2)
    try:
        await limiter.acquire("k", limits, tokens=90)
        await refused(limiter, limits, tokens=50)  # tokens refuse: the request is not counted
        lease = await limiter.acquire("k", limits, tokens=10)
        assert (await refused(limiter, limits)).details["limit"] == "max_concurrent"
        await limiter.release(lease)
        await limiter.acquire("k", limits)  # the third request: nothing leaked before it
        err = await refused(limiter, limits)
        assert err.details["limit"] == "requests_per_minute"
        assert err.retry_after_seconds > 1.0  # the longest binding limit, not the 1 s hint
    finally:
        await limiter.aclose()


async def test_concurrency_release_and_lease_expiry(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix, lease_ttl_seconds=1)
    slots = RateLimits(max_concurrent=2)
    try:
        a = await limiter.acquire("k", slots)
        await limiter.acquire("k", slots)
        err = await refused(limiter, slots)
        assert 0 < err.retry_after_seconds <= 1.0
        await limiter.release(a)
        await limiter.release(a)  # twice is harmless: it frees no other slot
        await limiter.acquire("k", slots)
        await refused(limiter, slots)
        await asyncio.sleep(1.1)  # the leases of a crashed holder expire
        await limiter.acquire("k", slots)
        await limiter.acquire("k", slots)
        await limiter.release(Lease("k", "never-issued", 0, concurrent=True))
    finally:
        await limiter.aclose()


async def test_idle_keys_expire(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix, lease_ttl_seconds=5)
    client = aioredis.Redis.from_url(redis_url)
    try:
        limits = RateLimits(requests_per_minute=60, tokens_per_minute=600, max_concurrent=1)
        await limiter.acquire("k", limits, tokens=60)
        ttls = {
            kind: await client.pttl(f"{redis_prefix}rl:{{k}}:{kind}")
            for kind in ("req", "tok", "lease")
        }
        # Each key lives until its allowance is full again (1 s, 6 s, the lease TTL) + 1 s.
        assert 1000 < ttls["req"] <= 2000
        assert 6000 < ttls["tok"] <= 7000
        assert 5000 < ttls["lease"] <= 6000
        await limiter.adjust_tokens("k", limits, -60)  # refunded to full: the key goes
        assert not await client.exists(f"{redis_prefix}rl:{{k}}:tok")
    finally:
        await limiter.aclose()
        await client.aclose()


async def test_check_passes_while_redis_answers(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    try:
        await limiter.check()  # raises LimitsUnavailable otherwise (below)
    finally:
        await limiter.aclose()


async def test_a_given_client_is_used_and_left_open(redis_url: str, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, prefix=redis_prefix)
    try:
        await limiter.acquire("k", RateLimits(requests_per_minute=1))
        await refused(limiter, RateLimits(requests_per_minute=1))
        await limiter.aclose()
        assert await client.ping()
    finally:
        await client.aclose()


async def test_unreachable_redis_fails_closed() -> None:
    limiter = RedisRateLimiter("redis://user:secret@127.0.0.1:1/0")
    limits = RateLimits(requests_per_minute=10, tokens_per_minute=10, max_concurrent=1)
    calls: list[Callable[[], Awaitable[Any]]] = [
        limiter.check,
        lambda: limiter.acquire("k", limits),
        lambda: limiter.adjust_tokens("k", limits, 5),
        lambda: limiter.release(Lease("k", "id", 0, concurrent=True)),
    ]
    try:
        for call in calls:
            started = time.monotonic()
            with pytest.raises(LimitsUnavailable) as err:
                await call()
            assert time.monotonic() - started < 2
            assert "secret" not in err.value.message
            assert "redis://user:***@127.0.0.1:1/0" in err.value.message
    finally:
        await limiter.aclose()


# --- four OS processes, each with its own limiter and event loop, on one key -------------

_barrier: Any = None


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


async def _hammer(url: str, prefix: str, limits: RateLimits) -> dict[str, Any]:
    """40 attempts in rounds of 10 concurrent ones; each admitted request holds its slot
    for 10 ms. Returns admitted count, refusals, holding intervals and the attempt span."""
    limiter = RedisRateLimiter(url, prefix=prefix)
    held: list[tuple[float, float]] = []
    refusals = 0

    async def one() -> None:
        nonlocal refusals
        try:
            lease = await limiter.acquire("shared", limits)
        except RateLimited:
            refusals += 1
            return
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on a host
        await asyncio.sleep(0.01)
        held.append((start, time.monotonic()))
        await limiter.release(lease)

    try:
        await limiter.acquire("warm-up", RateLimits(requests_per_minute=10**6))  # connect
        await asyncio.to_thread(_barrier.wait, 60)  # start together: refill stays negligible
        first = time.monotonic()
        for _ in range(4):
            await asyncio.gather(*(one() for _ in range(10)))
        last = time.monotonic()
    finally:
        await limiter.aclose()
    return {"admitted": len(held), "refusals": refusals, "held": held, "span": (first, last)}


def _hammer_process(url: str, prefix: str, rpm: int | None, cap: int | None) -> dict[str, Any]:
    limits = RateLimits(requests_per_minute=rpm, max_concurrent=cap)
    return asyncio.run(_hammer(url, prefix, limits))


def _in_four_processes(target: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4, initializer=_init_worker, initargs=(ctx.Barrier(4),)) as pool:
        return pool.starmap(target, args)


def test_rpm_is_shared_by_four_processes(redis_url: str, redis_prefix: str) -> None:
    results = _in_four_processes(_hammer_process, [(redis_url, redis_prefix, 50, None)] * 4)
    span = max(r["span"][1] for r in results) - min(r["span"][0] for r in results)
    assert span < 60 / 50, "attempts took longer than one refill interval: not exact"
    assert sum(r["admitted"] for r in results) == 50
    assert sum(r["refusals"] for r in results) == 4 * 40 - 50


def test_concurrency_is_shared_by_four_processes(redis_url: str, redis_prefix: str) -> None:
    results = _in_four_processes(_hammer_process, [(redis_url, redis_prefix, None, 3)] * 4)
    # Ends sort before starts at equal times: a slot is released before it is re-acquired.
    events = sorted(
        (when, delta)
        for r in results
        for start, end in r["held"]
        for when, delta in ((start, 1), (end, -1))
    )
    holding = peak = 0
    for _, delta in events:
        holding += delta
        peak = max(peak, holding)
    assert 1 <= peak <= 3
    assert sum(r["refusals"] for r in results) > 0  # the processes really contended
    assert sum(r["admitted"] for r in results) >= 3  # and slots were handed out again


# --- with the ledger: rate limit, then lock within the tenant's spend cap -------------------


async def _spend(db_url: str, redis_url: str, prefix: str, worker: int) -> dict[str, Any]:
    from apicredits.db import Database
    from apicredits.ledger import Ledger, tenant_account

    db = Database(db_url, pool_size=2)
    ledger = Ledger(db)
    limiter = RedisRateLimiter(redis_url, prefix=prefix)
    limits = RateLimits(requests_per_minute=60)
    admitted = locked = 0
    try:
        await asyncio.to_thread(_barrier.wait, 60)
        first = time.monotonic()
        for i in range(40):
            try:
                lease = await limiter.acquire("key-1", limits)
            except RateLimited:
                continue
            admitted += 1
            try:
                await ledger.lock(
                    f"w{worker}.{i}",
                    tenant_account("acme"),
                    1_000,
                    timeout_seconds=60,
                    budget_scopes=(("tenant", "acme"),),
                )
                locked += 1
            except (BudgetExceeded, InsufficientCredits):
                pass
            finally:
                await limiter.release(lease)
        last = time.monotonic()
    finally:
        await limiter.aclose()
        await db.aclose()
    return {"admitted": admitted, "locked": locked, "span": (first, last)}


def _spend_process(db_url: str, redis_url: str, prefix: str, worker: int) -> dict[str, Any]:
    return asyncio.run(_spend(db_url, redis_url, prefix, worker))


def test_rate_limit_and_spend_cap_shared_by_four_processes(
    postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    from apicredits.db import Database, upgrade
    from apicredits.db.schema import tenants
    from apicredits.ledger import AccountType, Ledger, tenant_account
    from apicredits.tenants import Directory

    async def setup() -> None:
        db = Database(postgres_url)
        try:
            await upgrade(db)
            ledger = Ledger(db)
            await ledger.open_system_accounts()
            await db.write(
                lambda c: c.execute(
                    tenants.insert(), {"id": "acme", "name": "a", "created_at_us": 0}
                )
            )
            await ledger.open_account(tenant_account("acme"), AccountType.TENANT)
            await ledger.deposit("fund", tenant_account("acme"), 10**9)
            await Directory(db, ledger).set_budget("acme", "tenant", None, "day", 30_000)
        finally:
            await db.aclose()

    asyncio.run(setup())
    args = [(postgres_url, redis_url, redis_prefix, w) for w in range(4)]
    results = _in_four_processes(_spend_process, args)
    span = max(r["span"][1] for r in results) - min(r["span"][0] for r in results)
    admitted = sum(r["admitted"] for r in results)
    # A burst of 60, then one more per second the run lasted (ledger locks take real time).
    assert 60 <= admitted <= 60 + int(span)
    assert sum(r["locked"] for r in results) == 30  # the 30_000 cap: exactly 30 locks of 1_000
