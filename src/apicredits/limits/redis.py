"""Redis rate limiter: one Lua script per operation, so limits hold across every worker and
replica. The script reads Redis's own clock (``TIME``), so replicas with skewed clocks
agree. Any Redis failure raises ``LimitsUnavailable``: when limits cannot be checked,
requests are refused (fail closed), never waved through."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from apicredits.errors import LimitsUnavailable, RateLimited
from apicredits.limits.base import RateLimiter
from apicredits.limits.rates import CONCURRENCY_RETRY_SECONDS, Lease, RateLimits, check_tokens

# Times are integer microseconds. KEYS: request TAT, token TAT, lease zset. ARGV: rpm, tpm,
# max_concurrent (0 = none), tokens, lease id, lease ttl, concurrency retry hint.
# Returns {1} or {0, limit name, wait}; every check runs before any write, so a refusal
# changes nothing.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = 60000000
local rpm, tpm, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, ttl, hint = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local wait, limit = 0, ''
local function advance(key, units, per_minute, name)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new = tat + units * window / per_minute
  -- 1 us slack: stored TATs are rounded to whole microseconds
  if new - now - window > 1 and new - now - window > wait then
    wait, limit = new - now - window, name
  end
  return new
end
local new_r, new_t
if rpm > 0 then new_r = advance(KEYS[1], 1, rpm, 'requests_per_minute') end
if tpm > 0 and tokens > 0 then new_t = advance(KEYS[2], tokens, tpm, 'tokens_per_minute') end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local slot = math.min(hint, tonumber(first[2]) - now)
    if slot > wait then wait, limit = slot, 'max_concurrent' end
  end
end
if limit ~= '' then return {0, limit, math.max(1000, math.ceil(wait))} end
local function store(key, tat)
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
if new_r then store(KEYS[1], new_r) end
if new_t then store(KEYS[2], new_t) end
if cap > 0 then
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], math.ceil(ttl / 1000) + 1000)
end
return {1}
"""

# KEYS: token TAT. ARGV: tokens per minute, delta tokens (negative refunds, positive is debt).
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + tonumber(ARGV[2]) * 60000000 / tonumber(ARGV[1])
if new <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 1
"""

_US = 1_000_000


class RedisRateLimiter(RateLimiter):
    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        *,
        prefix: str = "apicredits:",
        lease_ttl_seconds: float = 600.0,
    ) -> None:
        if isinstance(client_or_url, str):
            # Short timeouts and no retries: when Redis is gone, refuse within about a second
            # (a retried acquire could also count one request twice).
            self._client = aioredis.Redis.from_url(
                client_or_url, socket_connect_timeout=1.0, socket_timeout=1.0
            )
            self._owns_client = True
            self._where = _redact(client_or_url)
        else:
            self._client = client_or_url
            self._owns_client = False
            kwargs = client_or_url.connection_pool.connection_kwargs
            self._where = f"redis at {kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        self._prefix = prefix
        self._lease_ttl_us = round(lease_ttl_seconds * _US)
        # Registered once: EVALSHA, loading the script again only if Redis lost it.
        self._acquire: AsyncScript = self._client.register_script(_ACQUIRE)
        self._adjust: AsyncScript = self._client.register_script(_ADJUST)

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}rl:{{{key}}}"  # one hash slot per credential in a cluster
        return [f"{base}:req", f"{base}:tok", f"{base}:lease"]

    async def acquire(self, key: str, limits: RateLimits, tokens: int = 0) -> Lease:
        check_tokens(limits, tokens)
        lease = Lease(key, uuid.uuid4().hex, tokens, concurrent=limits.max_concurrent is not None)
        if limits.unlimited:
            return lease
        args = [
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            limits.max_concurrent or 0,
            tokens,
            lease.lease_id,
            self._lease_ttl_us,
            round(CONCURRENCY_RETRY_SECONDS * _US),
        ]
        result = await self._call(self._acquire, self._keys(key), args)
        if int(result[0]) != 1:
            name = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
            raise RateLimited(name, int(result[2]) / _US)
        return lease

    async def release(self, lease: Lease) -> None:
        if not lease.concurrent:
            return
        try:
            await self._client.zrem(self._keys(lease.key)[2], lease.lease_id)  # one atomic step
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    async def adjust_tokens(self, key: str, limits: RateLimits, delta: int) -> None:
        if limits.tokens_per_minute is None or not delta:
            return
        await self._call(self._adjust, self._keys(key)[1:2], [limits.tokens_per_minute, delta])

    async def check(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: RedisError) -> LimitsUnavailable:
        return LimitsUnavailable(
            f"rate limits cannot be checked: {self._where} failed "
            f"({type(exc).__name__}: {exc}); refusing requests until it is back"
        )


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.username else ":***"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
