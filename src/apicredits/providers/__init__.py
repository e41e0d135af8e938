"""What the gateway knows about each provider's wire format: request plans (an upper bound
of what a call may cost), usage extraction from responses and streams, and errors in each
SDK's own shape. Pure code; the simulator (``providers.simulator``) is the one server here."""

from __future__ import annotations

from apicredits.providers.base import CallPlan, MalformedUpstream, Route, Usage
from apicredits.providers.dialects import (
    UPSTREAM_ERROR,
    UPSTREAM_RATE_LIMITED,
    UPSTREAM_TIMEOUT,
    error_body,
    plan_call,
    upstream_body,
    upstream_error_code,
    usage_from_response,
)
from apicredits.providers.stream_meter import StreamMeter

__all__ = [
    "UPSTREAM_ERROR",
    "UPSTREAM_RATE_LIMITED",
    "UPSTREAM_TIMEOUT",
    "CallPlan",
    "MalformedUpstream",
    "Route",
    "StreamMeter",
    "Usage",
    "error_body",
    "plan_call",
    "upstream_body",
    "upstream_error_code",
    "usage_from_response",
]
