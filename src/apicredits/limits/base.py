"""The rate limiter interface (GCRA for per-minute limits, leases for concurrency).

GCRA keeps one "theoretical arrival time" (TAT) per limit: each unit pushes it forward
by ``60 s / limit``; a request is admitted if the TAT it would set is at most 60 s ahead
of now, so a full minute's allowance can be spent in a burst and refills smoothly. Hence
over any span of T seconds at most ``limit * (1 + T / 60)`` units pass: a burst of a full
minute's worth, then the steady rate (not a fixed "per calendar minute" window).
``acquire`` checks every limit first and changes state only if all admit; a refusal names
the limit that binds longest, so retrying after ``retry_after_seconds`` is worthwhile.
Concurrency slots are leases that expire (``lease_ttl_seconds``), so a crashed worker's
slots come back on their own.
"""

from __future__ import annotations

import abc

from apicredits.limits.rates import Lease, RateLimits


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    async def acquire(self, key: str, limits: RateLimits, tokens: int = 0) -> Lease:
        """Admit one request using ``tokens`` tokens, or raise ``RateLimited``.

        Raises ``InvalidInput`` when ``tokens`` exceeds ``tokens_per_minute`` (it never fits)
        and ``LimitsUnavailable`` when the shared store cannot be reached.
        """

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Free the lease's concurrency slot; releasing twice is harmless."""

    @abc.abstractmethod
    async def adjust_tokens(self, key: str, limits: RateLimits, delta: int) -> None:
        """Add ``delta`` tokens (negative refunds an overestimate; positive may leave debt).

        Never raises ``RateLimited``: the usage already happened.
        """

    async def check(self) -> None:  # noqa: B027 - in-process limits have nothing to reach
        """Raise ``LimitsUnavailable`` if the shared store cannot be reached now."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
