"""The rate limiter interface (GCRA for per-minute limits, leases for concurrency).

GCRA keeps one "theoretical arrival time" (TAT) per limit: each unit pushes it forward
by ``60 s / limit``; a request is admitted if the TAT it would set is at most 60 s ahead
of now, so a full minute's allowance can be spent in a burst and refills smoothly.
``acquire`` checks every limit first and changes state only if all admit.
"""

from __future__ import annotations

import abc

from apicredits.limits.rates import Lease, RateLimits


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    async def acquire(self, key: str, limits: RateLimits, tokens: int = 0) -> Lease:
        """Admit one request using ``tokens`` tokens, or raise ``RateLimited``."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Free the lease's concurrency slot; releasing twice is harmless."""

    @abc.abstractmethod
    async def adjust_tokens(self, key: str, limits: RateLimits, delta: int) -> None:
        """Correct the token count once real usage is known (never refuses)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
