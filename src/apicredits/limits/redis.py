"""Redis rate limiter: one Lua script per operation, so limits hold across every worker and
replica. The script reads Redis's own clock (``TIME``), so replicas with skewed clocks
agree. Any Redis failure raises ``LimitsUnavailable``: when limits cannot be checked,
requests are refused (fail closed), never waved through."""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from apicredits.errors import LimitsUnavailable, RateLimited
from apicredits.limits.base import RateLimiter
from apicredits.limits.rates import Lease, RateLimits, check_tokens

# KEYS: request TAT, token TAT, lease zset. ARGV: rpm, tpm, max_concurrent (0 = none),
# tokens, lease id, lease ttl (us). Returns {1} or {0, limit name, wait in us}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = 60000000
local rpm, tpm, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, ttl = tonumber(ARGV[4]), tonumber(ARGV[6])
local function advance(key, units, limit)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new = tat + units * window / limit
  return new, new - now - window
end
local new_r, new_t
if rpm > 0 then
  local wait
  new_r, wait = advance(KEYS[1], 1, rpm)
  if wait > 0 then return {0, 'requests_per_minute', math.ceil(wait)} end
end
if tpm > 0 and tokens > 0 then
  local wait
  new_t, wait = advance(KEYS[2], tokens, tpm)
  if wait > 0 then return {0, 'tokens_per_minute', math.ceil(wait)} end
end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {0, 'max_concurrent', math.max(1000, math.ceil(tonumber(first[2]) - now))}
  end
end
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

# KEYS: token TAT. ARGV: tpm, delta tokens.
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


class RedisRateLimiter(RateLimiter):
    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        *,
        prefix: str = "apicredits:",
        lease_ttl_seconds: float = 600.0,
    ) -> None:
        if isinstance(client_or_url, str):
            self._client = aioredis.Redis.from_url(
                client_or_url, socket_connect_timeout=1.0, socket_timeout=1.0
            )
            self._where = _redact(client_or_url)
        else:
            self._client = client_or_url
            self._where = "redis"
        self._prefix = prefix
        self._lease_ttl_us = int(lease_ttl_seconds * 1_000_000)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._adjust = self._client.register_script(_ADJUST)

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}rl:{{{key}}}"  # one hash slot per key in a cluster
        return [f"{base}:req", f"{base}:tok", f"{base}:lease"]

    async def acquire(self, key: str, limits: RateLimits, tokens: int = 0) -> Lease:
        check_tokens(limits, tokens)
        lease = Lease(key, uuid.uuid4().hex, tokens, limits.max_concurrent is not None)
        if limits.unlimited:
            return lease
        args = [
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            limits.max_concurrent or 0,
            tokens,
            lease.lease_id,
            self._lease_ttl_us,
        ]
        result = await self._call(self._acquire, self._keys(key), args)
        if int(result[0]) != 1:
            name = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
            raise RateLimited(name, int(result[2]) / 1_000_000)
        return lease

    async def release(self, lease: Lease) -> None:
        if lease.concurrent:
            try:
                await self._client.zrem(self._keys(lease.key)[2], lease.lease_id)
            except RedisError as exc:
                raise self._unavailable(exc) from None

    async def adjust_tokens(self, key: str, limits: RateLimits, delta: int) -> None:
        if limits.tokens_per_minute is None or not delta:
            return
        await self._call(self._adjust, self._keys(key)[1:2], [limits.tokens_per_minute, delta])

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> LimitsUnavailable:
        return LimitsUnavailable(
            f"rate limits cannot be checked: {self._where} unreachable ({type(exc).__name__})"
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
