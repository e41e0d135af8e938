"""Prometheus metrics of the gateway (served at ``/metrics``), labelled with nothing that
grows without bound (no tenant or request ids).

One worker keeps its values in memory. Under ``apicredits serve --workers N`` (N > 1) every
worker writes them to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode; ``serve`` makes a fresh directory per run) and ``/metrics``, whichever
worker answers, adds up all of them: a scrape sees the whole server, not one worker. The
``open_locks`` gauge sums live workers only; a worker that exits cleanly removes its share,
one that is killed leaves its last value until the next ``serve`` (its locks expire).
Multiprocess mode costs a locked file write per update, so a single worker does without.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """Whether this process shares its metrics with sibling workers (read at import time by
    prometheus-client, so ``serve`` sets the variable before it starts any worker)."""
    return bool(os.environ.get(MULTIPROCESS_ENV))


LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
AUTH_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "apicredits_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.auth_verify = Histogram(
            "apicredits_auth_verify_seconds",
            "time to authenticate a request",
            buckets=AUTH_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "apicredits_upstream_latency_seconds",
            "upstream response time (full body or stream)",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "apicredits_time_to_first_token_seconds",
            "time to the first streamed byte from upstream",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.locked = Counter("apicredits_credits_locked_micro", "micro-credits locked", registry=r)
        self.consumed = Counter(
            "apicredits_credits_consumed_micro", "micro-credits consumed", registry=r
        )
        self.refunded = Counter(
            "apicredits_credits_refunded_micro",
            "micro-credits released back (refunds and consume remainders)",
            registry=r,
        )
        self.uncollected = Counter(
            "apicredits_credits_uncollected_micro",
            "usage above its lock that could not be charged",
            registry=r,
        )
        self.open_locks = Gauge(
            "apicredits_open_locks",
            "locks held by in-flight calls",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rate_limited = Counter(
            "apicredits_rate_limit_rejections",
            "requests refused by a rate limit",
            ["limit"],
            registry=r,
        )
        self.auth_method = Counter(
            "apicredits_auth_requests",
            "authenticated requests by how the caller proved itself (dpop, bearer, api_key)",
            ["method"],
            registry=r,
        )
        self.auth_failures = Counter(
            "apicredits_auth_failures",
            "requests refused at authentication, by reason",
            ["reason"],
            registry=r,
        )
        self.legacy_key_uses = Counter(
            "apicredits_static_key_uses", "requests authenticated by a static API key", registry=r
        )

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: the hot path's label values come from
        small fixed sets (routes, statuses, upstreams), and ``labels`` validates and locks
        on every call."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def request(self, route: str, status: int) -> None:
        """Count one answered request."""
        self.child(self.requests, route, str(status)).inc()

    def render(self) -> bytes:
        if multiprocess():
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)

    def close(self) -> None:
        """This worker is leaving: drop its share of the live gauges."""
        if multiprocess():
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
