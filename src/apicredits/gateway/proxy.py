"""One metered provider call: authenticate, price the worst case, lock, proxy, meter,
consume what was used (the rest refunded), record the usage — all in the provider's own
wire format, streams included.

Failure rules: an upstream error, timeout or malformed response refunds the lock and the
client gets the error in its SDK's shape; a client that leaves mid-stream is charged for
what the provider produced until then (``partial``); usage priced above the lock (only if
a provider reports more prompt tokens than our upper-bound estimate) is capped at the lock
and counted as ``uncollected``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from apicredits import json_input
from apicredits.auth.capabilities import require_scope
from apicredits.errors import ApicreditsError, DatabaseUnavailable, InvalidInput, RateLimited
from apicredits.gateway.call import Call, new_request_id, now_us
from apicredits.gateway.headers import media_type, request_headers
from apicredits.gateway.idempotency import Attempt, IdempotencyStore, Replay
from apicredits.gateway.jobs import Job, JobStore
from apicredits.gateway.metrics import Metrics
from apicredits.gateway.routing import Router, Upstream
from apicredits.gateway.sdk_responses import (
    UpstreamFailed,
    call_error,
    charge_headers,
    replay_response,
    route_error,
    stream_error,
    upstream_failure,
)
from apicredits.gateway.upstream_client import UpstreamClient, UpstreamResponse, UpstreamUnavailable
from apicredits.ledger import AccountType, Consume, Lock, provider_account
from apicredits.limits import RateLimits
from apicredits.metering import UsageRecord
from apicredits.providers.base import MalformedUpstream, Route, Usage
from apicredits.providers.dialects import (
    plan_call,
    upstream_body,
    upstream_path,
    usage_from_response,
)
from apicredits.providers.stream_meter import StreamMeter
from apicredits.runtime import Runtime
from apicredits.tariffs import Unit, cost_micro, worst_case_micro
from apicredits.tenants import Principal

log = logging.getLogger("apicredits.gateway")

TOKEN_UNITS = (
    Unit.INPUT_TOKENS,
    Unit.CACHED_INPUT_TOKENS,
    Unit.CACHE_WRITE_TOKENS,
    Unit.OUTPUT_TOKENS,
    Unit.REASONING_TOKENS,
)
_FORWARDED = ("anthropic-version", "anthropic-beta", "openai-beta")


class Proxy:
    def __init__(self, runtime: Runtime, router: Router, metrics: Metrics) -> None:
        self.rt = runtime
        self.router = router
        self.metrics = metrics
        self.idempotency = IdempotencyStore(
            runtime.db, stale_after_us=runtime.settings.lock_timeout_seconds * 1_000_000
        )
        self.jobs = JobStore(runtime.db, runtime.ledger)
        self.http: UpstreamClient | None = None
        self._settling: set[asyncio.Task[None]] = set()
        # extra headers for a call's upstream (the usage context of providers that sign)
        self.upstream_headers: Callable[[Call], Awaitable[dict[str, str]]] | None = None

    async def start(self) -> None:
        self.http = UpstreamClient()
        for name in self.router.provider_names():
            await self.rt.ledger.open_account(provider_account(name), AccountType.PROVIDER)

    async def stop(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    # -- admission -----------------------------------------------------------------------
    async def authenticate(self, request: Request) -> Principal:
        started = time.perf_counter()
        try:
            principal = await self.rt.authenticator.authenticate(
                request_headers(request), method=request.method, url=self.public_url(request)
            )
        except ApicreditsError as exc:
            self.metrics.child(
                self.metrics.auth_failures, str(exc.details.get("reason", exc.code))
            ).inc()
            raise
        finally:
            self.metrics.auth_verify.observe(time.perf_counter() - started)
        self.metrics.child(self.metrics.auth_method, principal.method).inc()
        return principal

    def public_url(self, request: Request) -> str:
        """The URL the client addressed (DPoP ``htu``): ``public_url`` when configured (the
        gateway behind a proxy), else what the request says."""
        scope = request.scope
        path: str = scope["path"]
        base = self.rt.settings.public_url
        if base:
            return base.rstrip("/") + path
        host = request_headers(request).get("host")
        if host is None:  # HTTP/1.0 without Host: what the socket says
            server = scope.get("server") or ("localhost", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}{path}"

    async def handle(self, request: Request, route: Route, model: str | None = None) -> Response:
        """A provider-compatible route: an implicit one-call job."""
        try:
            raw = await request.body()
            body = json_body(request, raw)
            principal = await self.authenticate(request)
            sent = request_headers(request)
            key = sent.get("idempotency-key") or sent.get("apicredits-request-id")
            admitted = await self.admit(
                route, body, raw, principal, model, key, job=None, path=request.scope["path"]
            )
            if isinstance(admitted, Response):
                return admitted
            call = admitted
        except ApicreditsError as exc:
            return route_error(route, exc)
        return await self.run(request, call, body)

    async def admit(
        self,
        route: Route,
        body: object,
        raw: bytes,
        principal: Principal,
        model: str | None,
        idempotency_key: str | None,
        *,
        job: Job | None,
        path: str,
    ) -> Call | Response:
        """Validate, check scopes, price, take the idempotency slot and the rate-limit lease
        (no lock yet)."""
        settings = self.rt.settings
        plan = plan_call(
            route,
            body,
            model_from_path=model,
            default_max_output_tokens=settings.default_max_output_tokens,
            max_output_tokens_limit=settings.max_output_tokens_limit,
        )
        if principal.scopes:
            require_scope(principal.scopes, path, plan.model)
        tariff = (await self.rt.tariffs.book()).current(int(time.time()))
        target = self.router.resolve(plan.model, route.dialect, tariff)
        rate = tariff.rate(target.model)
        worst = worst_case_micro(rate, plan.input_tokens_estimate, plan.max_output_tokens)
        request_hash = hashlib.sha256(f"{route}\0{model}\0".encode() + raw).hexdigest()
        request_id = new_request_id()
        attempt = 1
        if idempotency_key is not None:
            if len(idempotency_key) > 255:
                raise InvalidInput("Idempotency-Key is longer than 255 characters")
            begun = await self.idempotency.begin(
                principal.tenant_id, idempotency_key, request_hash, request_id, now_us()
            )
            if isinstance(begun, Replay):
                return replay_response(route if job is None else None, begun)
            assert isinstance(begun, Attempt)
            request_id, attempt = begun.request_id, begun.number
        limits = RateLimits(
            principal.requests_per_minute, principal.tokens_per_minute, principal.max_concurrent
        )
        try:
            lease = await self.rt.limiter.acquire(
                principal.credential_id, limits, plan.input_tokens_estimate + plan.max_output_tokens
            )
        except ApicreditsError as exc:
            if isinstance(exc, RateLimited):
                self.metrics.child(self.metrics.rate_limited, exc.details["limit"]).inc()
            if idempotency_key is not None:
                await self.idempotency.fail(principal.tenant_id, idempotency_key)
            raise
        suffix = f":{attempt}" if attempt > 1 else ""
        return Call(
            route,
            principal,
            plan,
            target,
            rate,
            tariff.version,
            worst,
            request_id,
            request_hash,
            job.lock_id if job else f"call:{principal.tenant_id}:{request_id}{suffix}",
            lease,
            now_us(),
            idempotency_key,
            job,
        )

    # -- the call --------------------------------------------------------------------------
    async def run(self, request: Request, call: Call, body: object) -> Response:
        """Lock the worst case, call upstream, settle. Always closes the lock."""
        locked = False
        try:
            available = await self._hold(call)
            locked = True
            assert isinstance(body, dict)  # plan_call checked it
            payload = upstream_body(
                call.route, body, call.plan, upstream_model=call.target.upstream_model
            )
            response = await self._send(request, call, payload)
            if call.plan.stream:
                return await self._stream(call, response, available)
            return await self._complete(call, response)
        except ApicreditsError as exc:
            if locked:
                await self._abort(call)
            else:
                await self._release(call, None)
            if call.idempotency_key is not None:
                try:
                    await self.idempotency.fail(call.principal.tenant_id, call.idempotency_key)
                except ApicreditsError:  # the database is gone too: the slot goes stale
                    log.warning("idempotency slot of %s not freed", call.request_id)
            return call_error(call.route if call.job is None else None, exc)

    async def _hold(self, call: Call) -> int:
        """Hold the call's worst case: its own lock, or a reservation inside its job.
        Returns what remains available to the caller afterwards."""
        if call.job is not None:
            await self.jobs.reserve(call.job, call.worst_micro)
            return call.job.remaining_micro - call.worst_micro
        lock = Lock(
            call.lock_id,
            call.principal.account_id,
            provider_account(call.target.upstream.name),
            call.worst_micro,
            self.rt.settings.lock_timeout_seconds,
            call.principal.budget_scopes,
            memo=call.request_id,
        )
        _, balances = await self.rt.ledger.execute_with_balances(lock)
        self.metrics.locked.inc(call.worst_micro)
        self.metrics.open_locks.inc()
        return balances[call.principal.account_id]

    async def _send(self, request: Request, call: Call, payload: bytes) -> UpstreamResponse:
        extra = await self.upstream_headers(call) if self.upstream_headers is not None else {}
        path = upstream_path(call.route, call.target.upstream_model)
        return await self.exchange(request, call.target.upstream, call.route, path, payload, extra)

    async def exchange(
        self,
        request: Request,
        upstream: Upstream,
        route: Route,
        path: str,
        payload: bytes,
        extra_headers: dict[str, str] | None = None,
    ) -> UpstreamResponse:
        """POST ``payload`` to ``upstream`` at ``path`` on behalf of ``request``: its
        credentials, the client's version headers; a 200's response (a plain call's whole
        exchange, a stream's headers), or ``UpstreamFailed``."""
        assert self.http is not None
        headers = {"content-type": "application/json", **upstream.auth_headers(route.dialect)}
        sent = request_headers(request)
        for name in _FORWARDED:
            if name in sent and name not in headers:
                headers[name] = sent[name]
        if upstream.is_simulator:  # failure modes and usage modifiers of the simulator
            headers.update({k: v for k, v in sent.items() if k.startswith("x-sim-")})
        if extra_headers:
            headers.update(extra_headers)
        started = time.perf_counter()
        try:
            response = await self.http.post(
                upstream.base_url + path, headers, payload, time_limit=self._timeout()
            )
        except TimeoutError:
            raise UpstreamFailed("upstream_timeout", 504, f"{upstream.name} timed out") from None
        except UpstreamUnavailable as exc:
            raise UpstreamFailed(
                "upstream_error", 502, f"{upstream.name} unreachable: {exc.message}"
            ) from None
        if response.status != 200:
            try:
                error = await response.read(self.rt.settings.max_upstream_body_bytes)
            except (UpstreamUnavailable, TimeoutError):
                error = b""
            finally:
                response.release()
            self.metrics.child(self.metrics.upstream_latency, upstream.name).observe(
                time.perf_counter() - started
            )
            raise upstream_failure(upstream.name, response.status, response.headers, error)
        return response

    async def read_answer(self, upstream: Upstream, response: UpstreamResponse) -> bytes:
        """The whole body of a 200 from ``exchange`` (then the connection is released)."""
        started = time.perf_counter()
        try:
            payload = await response.read(self.rt.settings.max_upstream_body_bytes)
        except TimeoutError:
            raise UpstreamFailed("upstream_timeout", 504, "upstream timed out") from None
        except UpstreamUnavailable as exc:
            raise UpstreamFailed(
                "upstream_error", 502, f"upstream read failed: {exc.message}"
            ) from None
        finally:
            response.release()
        self.metrics.child(self.metrics.upstream_latency, upstream.name).observe(
            time.perf_counter() - started
        )
        return payload

    def _timeout(self) -> float:
        return self.rt.settings.upstream_timeout_seconds

    async def _complete(self, call: Call, response: UpstreamResponse) -> Response:
        payload = await self.read_answer(call.target.upstream, response)
        usage = usage_from_response(call.route, payload)
        cost, remaining = await self._charge(call, usage, "ok")
        headers = charge_headers(call, cost, remaining)
        if call.idempotency_key is not None:
            await self.idempotency.complete(
                call.principal.tenant_id, call.idempotency_key, 200, payload, cost
            )
        media = response.headers.get("content-type", "application/json")
        return Response(payload, 200, headers=headers, media_type=media)

    async def _stream(self, call: Call, response: UpstreamResponse, available: int) -> Response:
        strip = call.route == Route.OPENAI_CHAT and not call.plan.client_wants_usage_chunk
        meter = StreamMeter(call.route, call.plan, strip_usage_chunk=strip)
        started = time.perf_counter()

        limit = self.rt.settings.max_upstream_body_bytes

        async def relay() -> AsyncIterator[bytes]:
            ending = "client_left"
            try:
                async for chunk in response.chunks(self._timeout()):
                    if call.ttft_us is None:
                        call.ttft_us = now_us() - call.started_us
                        self.metrics.child(self.metrics.ttft, call.target.upstream.name).observe(
                            time.perf_counter() - started
                        )
                    out = meter.feed(chunk)
                    if out:
                        yield out
                    if meter.pending > limit:  # held back whole: it would grow without end
                        log.warning("an event of %s's stream for %s passed %d bytes; cut",
                                    call.target.upstream.name, call.request_id, limit)  # fmt: skip
                        raise UpstreamUnavailable(f"a stream event is larger than {limit:,} bytes")
                tail = meter.flush()
                if tail:
                    yield tail
                ending = "done" if meter.complete else "cut"
            except (UpstreamUnavailable, TimeoutError):
                ending = "cut"
            finally:
                response.close()  # stops the provider generating for a client that left
                self.metrics.child(
                    self.metrics.upstream_latency, call.target.upstream.name
                ).observe(time.perf_counter() - started)
                # Settle in a task of its own: this generator may be under cancellation.
                task = asyncio.create_task(self._settle_stream(call, meter, ending))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)
            if ending == "cut":
                yield stream_error(
                    call.route,
                    "upstream_error",
                    "the upstream stream ended early; the call was not charged",
                )

        headers = charge_headers(call, None, available)
        media = response.headers.get("content-type", "text/event-stream")
        return StreamingResponse(relay(), 200, headers=headers, media_type=media)

    async def _settle_stream(self, call: Call, meter: StreamMeter, ending: str) -> None:
        try:
            if ending == "done":
                cost, _ = await self._charge(call, meter.usage(), "ok")
            elif ending == "client_left":
                cost, _ = await self._charge(call, meter.partial_usage(), "partial")
            else:
                await self._abort(call)
                cost = 0
            if call.idempotency_key is not None:
                if ending == "cut":
                    await self.idempotency.fail(call.principal.tenant_id, call.idempotency_key)
                else:
                    await self.idempotency.complete(
                        call.principal.tenant_id, call.idempotency_key, 200, None, cost
                    )
        except MalformedUpstream:
            await self._abort(call)
        except Exception:
            log.exception("settling stream %s failed; its lock will expire", call.request_id)

    # -- settlement ------------------------------------------------------------------------
    async def _charge(self, call: Call, usage: Usage, status: str) -> tuple[int, int]:
        """Charge what the call used (at most its hold); returns (charge, remaining)."""
        cost = cost_micro(call.rate, usage)
        charge = min(cost, call.worst_micro)
        record = UsageRecord(
            call.request_id,
            call.principal.tenant_id,
            call.principal.project_id,
            call.principal.credential_id,
            call.job.id if call.job else None,
            call.lock_id,
            call.target.upstream.name,
            call.target.model,
            str(call.route),
            dict(usage),
            call.tariff_version,
            charge,
            cost - charge,
            status,
            call.request_hash,
            call.started_us,
            call.ttft_us,
            now_us() - call.started_us,
        )
        if call.job is not None:
            job = await self.jobs.record(call.job.id, call.worst_micro, record)
            await self._release(call, usage)
            return charge, job.remaining_micro
        command = Consume(
            f"{call.lock_id}:consume",
            call.lock_id,
            charge,
            attach=(("usage_records", record.row()),),
        )
        _, balances = await self.rt.ledger.execute_with_balances(command)
        self.metrics.consumed.inc(charge)
        self.metrics.refunded.inc(call.worst_micro - charge)
        if log.isEnabledFor(logging.DEBUG):  # one line per call costs ~10% of a worker
            log.debug(
                "call charged",
                extra={
                    "request_id": call.request_id,
                    "tenant_id": call.principal.tenant_id,
                    "credential_id": call.principal.credential_id,
                    "model": call.target.model,
                    "route": str(call.route),
                    "status": status,
                    "cost_micro": charge,
                    "lock_micro": call.worst_micro,
                    "job_id": call.job.id if call.job else None,
                },
            )
        if cost > charge:
            self.metrics.uncollected.inc(cost - charge)
            log.warning("call %s used %d micro above its lock", call.request_id, cost - charge)
        self.metrics.open_locks.dec()
        await self._release(call, usage)
        return charge, balances[call.principal.account_id]

    async def _abort(self, call: Call) -> None:
        """The call failed: release its hold (refund its lock or its job reservation)."""
        if call.job is not None:
            try:
                await self.jobs.unreserve(call.job.id, call.worst_micro)
            except Exception:
                log.exception("releasing the reservation of %s failed", call.request_id)
            await self._release(call, None)
            return
        try:
            await self.rt.ledger.refund(f"{call.lock_id}:refund", call.lock_id)
            self.metrics.refunded.inc(call.worst_micro)
            self.metrics.open_locks.dec()
        except DatabaseUnavailable as exc:  # an outage, logged once already: no traceback
            log.warning("refund of %s not made (%s); the lock will expire", call.lock_id, exc.cause)
        except ApicreditsError:
            log.exception("refund of %s failed; the lock will expire", call.lock_id)
        await self._release(call, None)

    async def _release(self, call: Call, usage: Usage | None) -> None:
        try:
            await self.rt.limiter.release(call.lease)
            estimated = call.plan.input_tokens_estimate + call.plan.max_output_tokens
            used = sum(usage.get(u, 0) for u in TOKEN_UNITS) if usage is not None else 0
            limits = RateLimits(
                call.principal.requests_per_minute, call.principal.tokens_per_minute
            )
            await self.rt.limiter.adjust_tokens(
                call.principal.credential_id, limits, used - estimated
            )
        except ApicreditsError:
            log.warning("rate-limit lease of %s not released; it will expire", call.request_id)

    # -- responses -------------------------------------------------------------------------


def json_body(request: Request, raw: bytes) -> object:
    content_type = media_type(request)
    if content_type not in ("application/json", ""):
        raise InvalidInput(f"expected application/json, got {content_type!r}")
    return json_input.request_body(raw)
