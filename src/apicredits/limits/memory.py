"""In-process rate limiter: one worker's view only (use Redis to share across workers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from apicredits.errors import RateLimited
from apicredits.limits.base import RateLimiter
from apicredits.limits.rates import WINDOW_SECONDS, Lease, RateLimits, check_tokens

MAX_IDLE_KEYS = 100_000


@dataclass
class _State:
    request_tat: float = 0.0
    token_tat: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry


def _advance(tat: float, now: float, units: int, limit: int) -> tuple[float, float]:
    """(new TAT, seconds to wait) for ``units`` against a per-minute ``limit``."""
    new = max(tat, now) + units * WINDOW_SECONDS / limit
    return new, max(0.0, new - now - WINDOW_SECONDS)


class MemoryRateLimiter(RateLimiter):
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, lease_ttl_seconds: float = 600.0
    ) -> None:
        self.clock = clock
        self.lease_ttl_seconds = lease_ttl_seconds
        self._states: dict[str, _State] = {}

    async def acquire(self, key: str, limits: RateLimits, tokens: int = 0) -> Lease:
        check_tokens(limits, tokens)
        now = self.clock()
        state = self._states.get(key) or self._new_state(key, now)
        rpm, tpm, cap = limits.requests_per_minute, limits.tokens_per_minute, limits.max_concurrent
        request_tat, token_tat = state.request_tat, state.token_tat
        if rpm is not None:
            request_tat, wait = _advance(state.request_tat, now, 1, rpm)
            if wait > 0:
                raise RateLimited("requests_per_minute", wait)
        if tpm is not None and tokens:
            token_tat, wait = _advance(state.token_tat, now, tokens, tpm)
            if wait > 0:
                raise RateLimited("tokens_per_minute", wait)
        if cap is not None:
            state.leases = {k: exp for k, exp in state.leases.items() if exp > now}
            if len(state.leases) >= cap:
                raise RateLimited("max_concurrent", max(0.001, min(state.leases.values()) - now))
        state.request_tat, state.token_tat = request_tat, token_tat
        lease = Lease(key, uuid.uuid4().hex, tokens, cap is not None)
        if cap is not None:
            state.leases[lease.lease_id] = now + self.lease_ttl_seconds
        return lease

    async def release(self, lease: Lease) -> None:
        state = self._states.get(lease.key)
        if state is not None:
            state.leases.pop(lease.lease_id, None)

    async def adjust_tokens(self, key: str, limits: RateLimits, delta: int) -> None:
        tpm = limits.tokens_per_minute
        state = self._states.get(key)
        if tpm is None or state is None or not delta:
            return
        now = self.clock()
        state.token_tat = max(state.token_tat, now) + delta * WINDOW_SECONDS / tpm

    def _new_state(self, key: str, now: float) -> _State:
        if len(self._states) >= MAX_IDLE_KEYS:
            # Forget keys whose allowance is full again and that hold no lease.
            self._states = {
                k: s
                for k, s in self._states.items()
                if s.request_tat > now or s.token_tat > now or s.leases
            }
        state = self._states[key] = _State()
        return state
