"""The gateway's HTTP/1.1 client for provider calls.

A pool of keep-alive connections per origin, each an asyncio protocol that parses responses
with httptools (llhttp, the parser uvicorn serves with). Chosen by benchmark over aiohttp's
client, which cost about a quarter of a metered call's CPU on the gateway's hot path (see
``bench/gateway.py`` and issue 3's notes). It does what provider calls need and no more: one
request at a time per connection, request bodies sent whole, responses read whole or streamed
with back-pressure, TLS with the system's trust store, a deadline on every wait.

It asks for ``Accept-Encoding: identity`` (the gateway reads usage out of the body and
passes the body on as it came) and still decodes gzip or deflate if a server sends it.
It never retries: a POST to a provider is not idempotent, and the ledger refunds a call
that failed. A pooled connection the server closed while idle is dropped before use.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from apicredits.errors import ApicreditsError

Origin = tuple[str, str, int]  # scheme, host, port

# Header names the client writes itself; a caller's copy would make the request ambiguous.
_OWN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "accept-encoding",
        "proxy-connection",
    }
)


class UpstreamUnavailable(ApicreditsError):
    """The upstream could not be reached, closed the connection early or answered
    something that is not HTTP."""

    status = 502
    code = "upstream_error"


class UpstreamClient:
    """Pooled HTTP/1.1 connections to providers. One per gateway worker."""

    def __init__(
        self,
        *,
        keepalive_seconds: float = 30.0,
        max_idle_per_origin: int = 256,
        buffer_limit: int = 256 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.keepalive_seconds = keepalive_seconds
        self.max_idle_per_origin = max_idle_per_origin
        self.buffer_limit = buffer_limit
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._connections: set[_Connection] = set()
        self._targets: dict[str, tuple[Origin, str, str]] = {}
        self._closed = False

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, time_limit: float
    ) -> UpstreamResponse:
        """Send a POST and wait for the response's status and headers (at most ``time_limit``
        seconds, connecting included). The body is read with ``read`` (same deadline) or
        ``chunks``; then ``release`` or ``close`` the response."""
        if self._closed:
            raise UpstreamUnavailable("the upstream client is closed")
        origin, target, host = self._target(url)
        head = _request_head(target, host, headers, len(body))
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + time_limit
        conn = self._checkout(origin, now)
        if conn is None:
            conn = await self._connect(origin, deadline)
        response = UpstreamResponse(self, conn, loop, deadline)
        conn.exchange = response
        if len(body) < 65536:
            conn.send(head + body)
        else:  # no copy of a large body
            conn.send(head)
            conn.send(body)
        try:
            await response.wait_headers()
        except BaseException:
            response.close()
            raise
        return response

    async def aclose(self) -> None:
        self._closed = True
        self._idle.clear()
        for conn in list(self._connections):
            conn.close()

    # -- pool --------------------------------------------------------------------------
    def _target(self, url: str) -> tuple[Origin, str, str]:
        known = self._targets.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamUnavailable(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        known = ((parts.scheme, parts.hostname, port), target, host)
        if len(self._targets) >= 4096:  # model names come from config; stay bounded anyway
            self._targets.clear()
        self._targets[url] = known
        return known

    def _checkout(self, origin: Origin, now: float) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since <= self.keepalive_seconds:
                return conn
            conn.close()
        return None

    def _check_in(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if self._closed or not conn.usable or len(idle) >= self.max_idle_per_origin:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UpstreamUnavailable(f"cannot connect to {host}:{port}: {reason}") from None
        self._connections.add(conn)
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl


class _Connection(asyncio.Protocol):
    """One keep-alive connection; hands the bytes it receives to the response in flight."""

    def __init__(self, client: UpstreamClient, origin: Origin) -> None:
        self.client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.exchange: UpstreamResponse | None = None
        self.idle_since = 0.0
        self.lost = False

    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.exchange = None
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        self.exchange.feed(data)

    def eof_received(self) -> bool:
        if self.exchange is not None:
            self.exchange.end_of_input(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.exchange is not None:
            self.exchange.end_of_input(exc)
        self.client._forget(self)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class UpstreamResponse:
    """A response being received: status and headers once ``post`` returns, the body
    through ``read`` or ``chunks``."""

    def __init__(
        self,
        client: UpstreamClient,
        conn: _Connection,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
    ) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}  # names in lower case; repeats joined by ", "
        self._client = client
        self._conn: _Connection | None = conn
        self._loop = loop
        self._deadline = deadline
        self._parser = httptools.HttpResponseParser(self)
        self._have_headers = False
        self._interim = False
        self._close_delimited = False
        self._decoder: zlib._Decompress | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- reading -----------------------------------------------------------------------
    async def wait_headers(self) -> None:
        while not self._have_headers:
            if self._error is not None:
                raise self._error
            await self._wait(self._deadline)

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, by the deadline given to ``post``; ``UpstreamUnavailable`` (the
        connection closed) once it grows past ``limit`` bytes, decoded."""
        parts: list[bytes] = []
        size = 0
        while True:
            if self._chunks:
                size += sum(map(len, self._chunks))
                parts.extend(self._chunks)
                self._drained()
                if limit is not None and size > limit:
                    self.close()
                    raise UpstreamUnavailable(f"the answer is larger than {limit:,} bytes")
            if self._error is not None:
                raise self._error
            if self._complete:
                return b"".join(parts)
            await self._wait(self._deadline)

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        """The body as it arrives, waiting at most ``idle_timeout`` seconds for each piece.
        Raises ``UpstreamUnavailable`` (after yielding what came) if the body was cut."""
        while True:
            if self._chunks:
                data = b"".join(self._chunks)
                self._drained()
                yield data
                continue
            if self._error is not None:
                raise self._error
            if self._complete:
                return
            await self._wait(self._loop.time() + idle_timeout)

    def release(self) -> None:
        """Done with this response: its connection goes back to the pool if the body was
        read to its end and the server keeps it open; otherwise it is closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.exchange = None
        if self._complete and self._keep_alive and self._error is None and not self._paused:
            self._client._check_in(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Abandon the response and close its connection (the server stops sending)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _wait(self, deadline: float) -> None:
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drained(self) -> None:
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self._conn is not None:
            self._paused = False
            self._conn.resume_reading()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._wake()

    # -- input from the connection -----------------------------------------------------
    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._complete:  # trailing garbage after a whole response: just don't reuse
                self._keep_alive = False
            else:
                self._fail(UpstreamUnavailable("the upstream answered malformed HTTP"))
            if self._conn is not None:
                self._conn.close()

    def end_of_input(self, exc: Exception | None) -> None:
        if self._complete:
            self._keep_alive = False
            return
        if self._have_headers and self._close_delimited and exc is None:
            self._finish()  # a body without a length ends when the connection does
            return
        where = "before the response ended" if self._have_headers else "without a response"
        self._fail(UpstreamUnavailable(f"the upstream closed the connection {where}"))

    # httptools callbacks (names are the parser's)
    def on_message_begin(self) -> None:
        if self._complete:  # a second response nobody asked for
            self._keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete or self._have_headers:  # trailers are not headers
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        if self._complete:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim response (103 Early Hints): wait for the real one
            self._interim = True
            self.headers = {}
            return
        self.status = status
        headers = self.headers
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding not in ("identity", ""):
            self._fail(UpstreamUnavailable(f"the upstream sent an unsupported {encoding!r} body"))
        self._close_delimited = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )
        if self._decoder is not None:  # the body handed on is the decoded one
            headers.pop("content-encoding", None)
            headers.pop("content-length", None)
        self._have_headers = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._complete or self._error is not None:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error:
                self._fail(UpstreamUnavailable("the upstream sent a corrupt compressed body"))
                return
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > self._client.buffer_limit and not self._paused:
            self._paused = True
            if self._conn is not None:
                self._conn.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._complete:
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._finish()

    def _finish(self) -> None:
        if self._error is not None:
            return
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error:
                self._fail(UpstreamUnavailable("the upstream sent a corrupt compressed body"))
                return
            if not self._decoder.eof:  # zlib's flush does not notice a stream cut short
                self._fail(UpstreamUnavailable("the upstream sent a truncated compressed body"))
                return
            if tail:
                self._chunks.append(tail)
        self._complete = True
        self._wake()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _request_head(target: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [
        f"POST {target} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {length}\r\n"
        "accept-encoding: identity\r\n"
    ]
    for name, value in headers.items():
        if name.lower() in _OWN_HEADERS:
            continue
        if not name or any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
            raise UpstreamUnavailable(f"refusing to send the header {name!r}: invalid characters")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamUnavailable("refusing to send a header that is not latin-1") from None
