"""One metered call as the proxy carries it from admission to settlement."""

from __future__ import annotations

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
