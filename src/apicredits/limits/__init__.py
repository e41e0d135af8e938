"""Per-credential rate limits: requests/minute, tokens/minute and concurrent requests.

``create_rate_limiter(None)`` keeps them in process (one worker's view);
``create_rate_limiter("redis://...")`` shares them across every worker and replica, and
fails closed (``LimitsUnavailable``) when Redis cannot be reached. Spend caps are not
here: they are checked inside the ledger's lock transaction (``apicredits.ledger``).
"""

from __future__ import annotations

from apicredits.limits.base import RateLimiter
from apicredits.limits.memory import MemoryRateLimiter
from apicredits.limits.rates import Lease, RateLimits
from apicredits.limits.redis import RedisRateLimiter

__all__ = [
    "Lease",
    "MemoryRateLimiter",
    "RateLimiter",
    "RateLimits",
    "RedisRateLimiter",
    "create_rate_limiter",
]


def create_rate_limiter(redis_url: str | None, *, prefix: str = "apicredits:") -> RateLimiter:
    """A Redis-backed limiter for ``redis_url``, or an in-process one when it is ``None``."""
    if redis_url is None:
        return MemoryRateLimiter()
    return RedisRateLimiter(redis_url, prefix=prefix)
