"""Rate limits in the real Redis: atomic across processes, and fail closed when it is gone."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from apicredits.errors import BudgetExceeded, InsufficientCredits, LimitsUnavailable, RateLimited
from apicredits.limits import RateLimits, RedisRateLimiter

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_rpm_boundary_and_retry_after(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limits = RateLimits(requests_per_minute=30)
    try:
        for _ in range(30):
            await limiter.acquire("k", limits)
        with pytest.raises(RateLimited) as err:
            await limiter.acquire("k", limits)
        assert err.value.details["limit"] == "requests_per_minute"
        assert 1.0 < err.value.retry_after_seconds <= 2.0  # one request per 2 s refills
    finally:
        await limiter.aclose()


async def test_tokens_adjust_and_concurrency(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix, lease_ttl_seconds=1)
    try:
        tokens = RateLimits(tokens_per_minute=1000)
        await limiter.acquire("t", tokens, tokens=900)
        with pytest.raises(RateLimited):
            await limiter.acquire("t", tokens, tokens=200)
        await limiter.adjust_tokens("t", tokens, -500)
        await limiter.acquire("t", tokens, tokens=200)

        slots = RateLimits(max_concurrent=2)
        a = await limiter.acquire("c", slots)
        await limiter.acquire("c", slots)
        with pytest.raises(RateLimited):
            await limiter.acquire("c", slots)
        await limiter.release(a)
        await limiter.release(a)
        await limiter.acquire("c", slots)
        await asyncio.sleep(1.1)  # leases of a crashed holder expire
        await limiter.acquire("c", slots)
        await limiter.acquire("c", slots)
    finally:
        await limiter.aclose()


async def test_unreachable_redis_fails_closed() -> None:
    limiter = RedisRateLimiter("redis://:secret@127.0.0.1:1/0")
    started = time.monotonic()
    try:
        with pytest.raises(LimitsUnavailable) as err:
            await limiter.acquire("k", RateLimits(requests_per_minute=10))
        assert "secret" not in err.value.message
        assert time.monotonic() - started < 3
    finally:
        await limiter.aclose()


async def _hammer(url: str, prefix: str, attempts: int, limits: RateLimits) -> tuple[int, int]:
    """Admit what the limiter allows; hold each slot briefly. Returns (admitted, peak held)."""
    limiter = RedisRateLimiter(url, prefix=prefix)
    import redis.asyncio as aioredis

    gauge = aioredis.Redis.from_url(url)
    admitted = peak = 0

    async def one() -> None:
        nonlocal admitted, peak
        try:
            lease = await limiter.acquire("shared", limits)
        except RateLimited:
            return
        admitted += 1
        held = await gauge.incr(prefix + "held")
        peak = max(peak, held)
        await asyncio.sleep(0.01)
        await gauge.decr(prefix + "held")
        await limiter.release(lease)

    try:
        for _ in range(attempts // 10):
            await asyncio.gather(*(one() for _ in range(10)))
    finally:
        await limiter.aclose()
        await gauge.aclose()
    return admitted, peak


def _hammer_process(
    url: str, prefix: str, attempts: int, rpm: int | None, cap: int | None
) -> tuple[int, int]:
    limits = RateLimits(requests_per_minute=rpm, max_concurrent=cap)
    return asyncio.run(_hammer(url, prefix, attempts, limits))


def _in_processes(url: str, prefix: str, rpm: int | None, cap: int | None) -> list[tuple[int, int]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        return pool.starmap(_hammer_process, [(url, prefix, 40, rpm, cap)] * 4)


def test_rpm_is_shared_by_four_processes(redis_url: str, redis_prefix: str) -> None:
    results = _in_processes(redis_url, redis_prefix, 50, None)
    assert sum(a for a, _ in results) == 50


def test_concurrency_is_shared_by_four_processes(redis_url: str, redis_prefix: str) -> None:
    results = _in_processes(redis_url, redis_prefix, None, 3)
    assert max(p for _, p in results) <= 3
    assert sum(a for a, _ in results) >= 3  # slots were really handed out and returned


async def _spend(db_url: str, redis_url: str, prefix: str, worker: int) -> tuple[int, int, int]:
    """A gateway worker's admission path: rate limit, then lock within the budget."""
    from apicredits.db import Database
    from apicredits.ledger import Ledger, tenant_account

    db = Database(db_url, pool_size=2)
    ledger = Ledger(db)
    limiter = RedisRateLimiter(redis_url, prefix=prefix)
    limits = RateLimits(requests_per_minute=60)
    admitted = locked = 0
    try:
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
    finally:
        await limiter.aclose()
        await db.aclose()
    return worker, admitted, locked


def _spend_process(db_url: str, redis_url: str, prefix: str, worker: int) -> tuple[int, int, int]:
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
        await upgrade(db)
        ledger = Ledger(db)
        await ledger.open_system_accounts()
        await db.write(
            lambda c: c.execute(tenants.insert(), {"id": "acme", "name": "a", "created_at_us": 0})
        )
        await ledger.open_account(tenant_account("acme"), AccountType.TENANT)
        await ledger.deposit("fund", tenant_account("acme"), 10**9)
        await Directory(db, ledger).set_budget("acme", "tenant", None, "day", 30_000)
        await db.aclose()

    asyncio.run(setup())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(
            _spend_process, [(postgres_url, redis_url, redis_prefix, w) for w in range(4)]
        )
    assert sum(r[1] for r in results) == 60  # requests/minute held across processes
    assert sum(r[2] for r in results) == 30  # the 30_000 cap: exactly 30 locks of 1_000
