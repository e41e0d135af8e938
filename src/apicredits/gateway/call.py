"""One metered call as the proxy carries it from admission to settlement."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from apicredits.gateway.jobs import Job
from apicredits.gateway.routing import Target
from apicredits.limits import Lease
from apicredits.providers.base import CallPlan, Route
from apicredits.tariffs import Rate
from apicredits.tenants import Principal


@dataclass
class Call:
    """Everything one call carries from admission to settlement."""

    route: Route
    principal: Principal
    plan: CallPlan
    target: Target
    rate: Rate
    tariff_version: int
    worst_micro: int
    request_id: str
    request_hash: str
    lock_id: str
    lease: Lease
    started_us: int
    idempotency_key: str | None
    job: Job | None = None
    ttft_us: int | None = None


def now_us() -> int:
    return time.time_ns() // 1000


def new_request_id() -> str:
    # Time first, then randomness: ids (and the lock, consume and usage record ids made
    # from them) land at the right edge of their indexes, so a batch of calls writes a few
    # index pages instead of one random page per call.
    return f"req_{time.time_ns():016x}{os.urandom(8).hex()}"
