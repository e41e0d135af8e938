"""In-process rate limiter: one worker's view only (use Redis to share across workers).

Every method runs without awaiting, so on one event loop each call is atomic. State per key
is a few floats and the live leases; idle keys are swept a couple per call (O(1)).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from apicredits.errors import RateLimited
from apicredits.limits.base import RateLimiter
from apicredits.limits.rates import (
    CONCURRENCY_RETRY_SECONDS,
    WINDOW_SECONDS,
    Lease,
    RateLimits,
    check_tokens,
)

# Float sums such as 7 x (60 / 7) can land a hair past an exact boundary; do not refuse those.
_EPSILON = 1e-9
_SWEEP_PER_CALL = 2


@dataclass(slots=True)
class _State:
    request_tat: float = 0.0
    token_tat: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry

    def idle(self, now: float) -> bool:
        """True when forgetting this key changes nothing: allowances full, no live lease."""
        return (
            self.request_tat <= now
            and self.token_tat <= now
            and all(expiry <= now for expiry in self.leases.values())
        )


def _advance(tat: float, now: float, units: int, limit: int) -> tuple[float, float]:
    """GCRA: (new TAT, seconds to wait) for ``units`` against a per-minute ``limit``."""
    new = max(tat, now) + units * WINDOW_SECONDS / limit
    return new, new - now - WINDOW_SECONDS


class MemoryRateLimiter(RateLimiter):
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, lease_ttl_seconds: float = 600.0
    ) -> None:
        self.clock = clock
        self.lease_ttl_seconds = lease_ttl_seconds
        self._states: OrderedDict[str, _State] = OrderedDict()
        # Leases live in this process only, so a counter names them (uuid4 cost ~1% of a
        # gateway request).
        self._lease_ids = itertools.count(1)

    def _lease_id(self) -> str:
        return f"{next(self._lease_ids):x}"

    def __len__(self) -> int:
        """Keys whose state is still held (idle ones are swept lazily)."""
        return len(self._states)

    async def acquire(self, key: str, limits: RateLimits, tokens: int = 0) -> Lease:
        check_tokens(limits, tokens)
        if limits.unlimited:
            return Lease(key, self._lease_id(), tokens, concurrent=False)
        now = self.clock()
        self._sweep(now)
        state = self._touch(key)
        rpm, tpm, cap = limits.requests_per_minute, limits.tokens_per_minute, limits.max_concurrent
        refusals: list[tuple[float, str]] = []
        request_tat, token_tat = state.request_tat, state.token_tat
        if rpm is not None:
            request_tat, wait = _advance(request_tat, now, 1, rpm)
            if wait > _EPSILON:
                refusals.append((wait, "requests_per_minute"))
        if tpm is not None and tokens:
            token_tat, wait = _advance(token_tat, now, tokens, tpm)
            if wait > _EPSILON:
                refusals.append((wait, "tokens_per_minute"))
        if cap is not None:
            state.leases = {k: exp for k, exp in state.leases.items() if exp > now}
            if len(state.leases) >= cap:
                # A slot frees whenever a holder finishes, which no clock predicts: suggest a
                # short retry, never later than the oldest lease's expiry.
                earliest = min(state.leases.values()) - now
                refusals.append((min(CONCURRENCY_RETRY_SECONDS, earliest), "max_concurrent"))
        if refusals:
            # Report the limit that binds longest: retrying sooner would be refused again.
            wait, name = max(refusals)
            raise RateLimited(name, max(wait, 0.001))
        state.request_tat, state.token_tat = request_tat, token_tat
        lease = Lease(key, self._lease_id(), tokens, concurrent=cap is not None)
        if cap is not None:
            state.leases[lease.lease_id] = now + self.lease_ttl_seconds
        return lease

    async def release(self, lease: Lease) -> None:
        state = self._states.get(lease.key)
        if state is not None:
            state.leases.pop(lease.lease_id, None)

    async def adjust_tokens(self, key: str, limits: RateLimits, delta: int) -> None:
        tpm = limits.tokens_per_minute
        if tpm is None or not delta:
            return
        if delta < 0 and key not in self._states:
            return  # a forgotten key already has its full allowance
        now = self.clock()
        state = self._touch(key)
        # A refund may pull the TAT below now; acquire clamps it, so no more than a full
        # minute's allowance is ever available. Debt pushes it beyond the burst: refusals
        # follow until it is paid off.
        state.token_tat = max(state.token_tat, now) + delta * WINDOW_SECONDS / tpm

    def _touch(self, key: str) -> _State:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        else:
            self._states.move_to_end(key)
        return state

    def _sweep(self, now: float) -> None:
        # Inspect the least recently used keys: drop idle ones, requeue busy ones. A couple
        # per call keeps each call O(1) and the table near the number of busy keys.
        for _ in range(_SWEEP_PER_CALL):
            if not self._states:
                return
            key, state = next(iter(self._states.items()))
            if state.idle(now):
                del self._states[key]
            else:
                self._states.move_to_end(key)
