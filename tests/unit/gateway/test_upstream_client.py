"""``UpstreamClient`` against tiny scripted servers on 127.0.0.1: each test's server sends
exact raw bytes and records exactly what it received, so framing, pooling, timeouts and
decoding are checked byte for byte (no external servers)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apicredits.gateway.upstream_client import (
    UpstreamClient,
    UpstreamResponse,
    UpstreamUnavailable,
)

# -- a scriptable server ------------------------------------------------------------------


class Peer:
    """One connection the server accepted: the requests read on it, and whether the client
    closed it (``eof``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.requests: list[bytes] = []
        self.eof = asyncio.Event()

    async def read_request(self) -> bytes | None:
        """The next request (head and body, raw), or None once the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            raw = head + await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof.set()
            return None
        self.requests.append(raw)
        return raw

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_eof(self) -> None:
        """Answer nothing more; return when the client closes the connection."""
        while await self.read_request() is not None:
            pass


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """``asyncio.start_server`` on port 0 running ``handler`` for every connection; the
    connection is closed when the handler returns."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.peers: list[Peer] = []
        self.done: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/v1/chat", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(reader, writer)
        self.peers.append(peer)
        done = asyncio.Event()
        self.done.append(done)
        try:
            await self.handler(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            done.set()


def response(body: bytes = b"hello", *, head: str = "HTTP/1.1 200 OK", extra: str = "") -> bytes:
    return f"{head}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def replies(*answers: bytes) -> Handler:
    """Keep-alive: answer each request with the next of ``answers`` (then ``response()``),
    across all connections, until the client closes."""
    queue = list(answers)

    async def handle(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(queue.pop(0) if queue else response())

    return handle


@contextlib.asynccontextmanager
async def upstream(**options: Any) -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(**options)
    try:
        yield client
    finally:
        await client.aclose()


async def fetch(client: UpstreamClient, url: str, body: bytes = b"{}") -> bytes:
    """One post whose body is read whole, then released."""
    resp = await client.post(url, {"content-type": "application/json"}, body, time_limit=5)
    try:
        return await resp.read()
    finally:
        resp.release()


def parse_request(raw: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    line, *lines = head.decode("latin-1").split("\r\n")
    headers = []
    for text in lines:
        name, _, value = text.partition(":")
        headers.append((name.lower(), value.strip()))
    return line, sorted(headers), body


async def collect(resp: UpstreamResponse, idle_timeout: float = 2.0) -> list[bytes]:
    return [piece async for piece in resp.chunks(idle_timeout)]


async def stream_into(pieces: list[bytes], resp: UpstreamResponse, idle_timeout: float) -> None:
    """``chunks`` into ``pieces``, which keeps what came if the stream then fails."""
    async for piece in resp.chunks(idle_timeout):
        pieces.append(piece)


def free_port() -> int:
    """A port nothing listens on (bound, never listened, closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- requests and responses ---------------------------------------------------------------


def test_content_length_response_and_the_exact_request_sent() -> None:
    answer = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-Id: r-1\r\n"
        b'Content-Length: 11\r\n\r\n{"ok":true}'
    )

    async def main() -> None:
        async with Server(replies(answer)) as server, upstream() as client:
            resp = await client.post(
                server.url("/path?q=1"),
                {
                    "Authorization": "Bearer sk-1",
                    "Content-Type": "application/json",
                    "Host": "evil.example",
                    "Content-Length": "999",
                    "Accept-Encoding": "gzip, br",
                    "Connection": "close",
                    "Transfer-Encoding": "chunked",
                    "TE": "trailers",
                },
                b'{"a":1}',
                time_limit=5,
            )
            assert resp.status == 201
            assert resp.headers == {
                "content-type": "application/json",
                "x-request-id": "r-1",
                "content-length": "11",
            }
            assert await resp.read() == b'{"ok":true}'
            resp.release()
            [raw] = server.peers[0].requests
            line, headers, body = parse_request(raw)
            assert line == "POST /path?q=1 HTTP/1.1"
            assert headers == sorted(
                [
                    ("host", f"127.0.0.1:{server.port}"),
                    ("content-length", "7"),
                    ("accept-encoding", "identity"),
                    ("authorization", "Bearer sk-1"),
                    ("content-type", "application/json"),
                ]
            )
            assert body == b'{"a":1}'

    asyncio.run(main())


def test_a_large_request_body_is_sent_whole_and_a_bare_url_targets_slash() -> None:
    payload = bytes(range(256)) * 400  # 100 KiB: over the size sent in one write with the head

    async def main() -> None:
        async with Server(replies()) as server, upstream() as client:
            assert await fetch(client, f"http://127.0.0.1:{server.port}", payload) == b"hello"
            line, headers, body = parse_request(server.peers[0].requests[0])
            assert line == "POST / HTTP/1.1"
            assert ("content-length", str(len(payload))) in headers
            assert body == payload

    asyncio.run(main())


def test_repeated_response_headers_are_joined() -> None:
    answer = response(
        extra="Set-Cookie: a=1\r\nX-Multi: one\r\nset-cookie: b=2\r\nX-MULTI: two\r\n"
    )

    async def main() -> None:
        async with Server(replies(answer)) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            assert resp.headers["set-cookie"] == "a=1, b=2"
            assert resp.headers["x-multi"] == "one, two"
            assert await resp.read() == b"hello"
            resp.release()

    asyncio.run(main())


# -- keep-alive ---------------------------------------------------------------------------


def test_released_connections_are_reused() -> None:
    async def main() -> None:
        async with (
            Server(replies(response(b"one"), response(b"two"))) as server,
            upstream() as client,
        ):
            assert await fetch(client, server.url()) == b"one"
            assert await fetch(client, server.url()) == b"two"
            assert await fetch(client, server.url()) == b"hello"
            assert len(server.peers) == 1
            assert len(server.peers[0].requests) == 3

    asyncio.run(main())


def test_a_closed_response_is_not_reused() -> None:
    async def main() -> None:
        async with Server(replies()) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            assert await resp.read() == b"hello"
            resp.close()
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)
            assert await fetch(client, server.url()) == b"hello"
            assert len(server.peers) == 2

    asyncio.run(main())


def test_a_response_released_before_its_body_ended_closes_the_connection() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await peer.until_eof()

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            resp.release()
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            resp.close()
            assert len(server.peers) == 2
            assert [len(peer.requests) for peer in server.peers] == [1, 1]

    asyncio.run(main())


@pytest.mark.parametrize(
    "first",
    [
        response(b"bye", extra="Connection: close\r\n"),
        response(b"bye", head="HTTP/1.0 200 OK"),
        response(b"bye") + response(b"unasked"),  # a second response nobody asked for
    ],
    ids=["connection-close", "http-1.0", "extra-response"],
)
def test_a_connection_the_server_will_not_keep_is_not_reused(first: bytes) -> None:
    async def main() -> None:
        # The server keeps the socket open: only the client's reading of the response
        # decides that the connection is done.
        async with Server(replies(first)) as server, upstream() as client:
            assert await fetch(client, server.url()) == b"bye"
            assert await fetch(client, server.url()) == b"hello"
            assert len(server.peers) == 2
            assert len(server.peers[0].requests) == 1
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # and it was closed

    asyncio.run(main())


def test_an_idle_connection_the_server_closed_is_not_used() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first"))
        # ...and closes the kept-alive connection while it sits in the client's pool

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            assert await fetch(client, server.url()) == b"first"
            await asyncio.wait_for(server.done[0].wait(), 2)
            await asyncio.sleep(0.05)  # the client's loop sees the FIN
            assert await fetch(client, server.url()) == b"first"
            assert len(server.peers) == 2

    asyncio.run(main())


def test_an_idle_connection_expires_after_keepalive_seconds() -> None:
    async def main() -> None:
        async with Server(replies()) as server, upstream(keepalive_seconds=0.05) as client:
            await fetch(client, server.url())
            await fetch(client, server.url())  # immediately: reused
            assert len(server.peers) == 1
            await asyncio.sleep(0.1)
            await fetch(client, server.url())
            assert len(server.peers) == 2
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # the stale one was closed

    asyncio.run(main())


def test_aclose_closes_idle_connections_and_refuses_new_posts() -> None:
    async def main() -> None:
        async with Server(replies()) as server:
            client = UpstreamClient()
            await fetch(client, server.url())
            await client.aclose()
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)
            with pytest.raises(UpstreamUnavailable):
                await client.post(server.url(), {}, b"", time_limit=5)
            assert len(server.peers) == 1

    asyncio.run(main())


# -- body framing -------------------------------------------------------------------------


def test_chunked_body_read_whole() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(0.02)
        await peer.send(b"1;ext=1\r\n \r\n6\r\nwo")
        await asyncio.sleep(0.02)
        await peer.send(b"rld!\r\n0\r\n\r\n")
        await replies()(peer)

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            assert await fetch(client, server.url()) == b"hello world!"
            assert await fetch(client, server.url()) == b"hello"  # the chunked one ended
            assert len(server.peers) == 1

    asyncio.run(main())


def test_trailers_after_a_chunked_body_are_not_taken_for_headers() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Trailer: late\r\nX-Kept: overwritten\r\n\r\n"
    )

    async def main() -> None:
        async with Server(replies(answer, answer)) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            assert await resp.read() == b"hello"
            assert resp.headers["x-kept"] == "yes"
            assert "x-trailer" not in resp.headers
            resp.release()
            assert await fetch(client, server.url()) == b"hello"  # the trailers ended it
            assert len(server.peers) == 1

    asyncio.run(main())


def test_chunked_body_streams_pieces_as_they_arrive() -> None:
    async def main() -> None:
        first_seen = asyncio.Event()
        last_sent = False

        async def handle(peer: Peer) -> None:
            nonlocal last_sent
            await peer.read_request()
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await peer.send(b"6\r\ndata: \r\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_seen.wait(), 1)
            await asyncio.sleep(0.02)
            await peer.send(b"2\r\n1\n\r\n")
            await asyncio.sleep(0.02)
            last_sent = True
            await peer.send(b"1\r\n\n\r\n0\r\n\r\n")
            await replies()(peer)

        async with Server(handle) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            pieces: list[bytes] = []
            async for piece in resp.chunks(idle_timeout=2):
                if not pieces:
                    assert not last_sent, "the first piece came only after the whole body"
                    first_seen.set()
                pieces.append(piece)
            resp.release()
            assert b"".join(pieces) == b"data: 1\n\n"
            assert len(pieces) >= 2
            assert await fetch(client, server.url()) == b"hello"  # back in the pool, reused
            assert len(server.peers) == 1

    asyncio.run(main())


def test_close_delimited_body_is_read_to_the_end_and_not_reused() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ")
        await asyncio.sleep(0.02)
        await peer.send(b"more")
        # returning closes the connection: that is the end of the body

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            assert await fetch(client, server.url()) == b"some more"
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            assert b"".join(await collect(resp)) == b"some more"
            resp.release()
            assert len(server.peers) == 2

    asyncio.run(main())


TRUNCATED = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n6\r\nef",
]


@pytest.mark.parametrize("answer", TRUNCATED, ids=["content-length", "chunked"])
def test_a_body_cut_short_fails_read(answer: bytes) -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(answer)

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            with pytest.raises(UpstreamUnavailable) as caught:
                await resp.read()
            assert caught.value.code == "upstream_error"
            resp.release()

    asyncio.run(main())


@pytest.mark.parametrize("answer", TRUNCATED, ids=["content-length", "chunked"])
def test_a_body_cut_short_fails_chunks_after_what_came(answer: bytes) -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(answer)
        await asyncio.sleep(0.05)

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            pieces: list[bytes] = []
            with pytest.raises(UpstreamUnavailable):
                await stream_into(pieces, resp, idle_timeout=2)
            assert b"".join(pieces).startswith(b"abcd")
            resp.release()

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer",
    [
        response(b"x" * 2048),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(*[b"x" * 512] * 4),
    ],
    ids=["content-length", "chunked"],
)
def test_read_refuses_a_body_over_its_limit_and_closes(answer: bytes) -> None:
    async def main() -> None:
        async with Server(replies(answer, answer)) as server, upstream() as client:
            assert len(await fetch(client, server.url())) == 2048  # no limit: all of it
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            with pytest.raises(UpstreamUnavailable, match="larger than 1,024 bytes"):
                await resp.read(limit=1024)
            resp.release()
            assert await fetch(client, server.url()) == b"hello"
            assert len(server.peers) == 2  # that connection was closed, not pooled

    asyncio.run(main())


# -- failures -----------------------------------------------------------------------------


def test_a_server_that_closes_without_answering() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            with pytest.raises(UpstreamUnavailable, match="without a response"):
                await client.post(server.url(), {}, b"{}", time_limit=5)
            assert len(server.peers[0].requests) == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    ],
    ids=["garbage", "bad-status", "two-lengths", "bad-chunk-size"],
)
def test_malformed_responses_are_refused(answer: bytes) -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(answer)
        await peer.until_eof()  # the server keeps the connection: the client must act

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            with pytest.raises(UpstreamUnavailable):
                await fetch(client, server.url())
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # and closed the connection

    asyncio.run(main())


def test_connection_refused_names_the_origin() -> None:
    port = free_port()

    async def main() -> None:
        async with upstream() as client:
            with pytest.raises(UpstreamUnavailable, match=f"127.0.0.1:{port}"):
                await client.post(f"http://127.0.0.1:{port}/v1", {}, b"", time_limit=5)

    asyncio.run(main())


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http:///nohost", "not a url"])
def test_urls_that_are_not_http_are_refused(url: str) -> None:
    async def main() -> None:
        async with upstream() as client:
            with pytest.raises(UpstreamUnavailable):
                await client.post(url, {}, b"", time_limit=5)

    asyncio.run(main())


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Note": "a\r\nX-Injected: 1"},
        {"X-Note": "a\nX-Injected: 1"},
        {"X-Note": "a\rX-Injected: 1"},
        {"X-Injected: 1\r\nX-Note": "a"},
        {"X-Bad:Name": "a"},
        {"X Bad": "a"},
        {"": "a"},
        {"X-Note": "caf\u00e9 \u2603"},  # not latin-1
    ],
    ids=["crlf-value", "lf-value", "cr-value", "crlf-name", "colon", "space", "empty", "utf8"],
)
def test_headers_that_would_corrupt_the_request_are_refused(headers: dict[str, str]) -> None:
    async def main() -> None:
        async with Server(replies()) as server:
            async with upstream() as fresh:  # nothing connected: nothing may connect
                with pytest.raises(UpstreamUnavailable):
                    await fresh.post(server.url(), headers, b"", time_limit=5)
                await asyncio.sleep(0.02)
                assert server.peers == []
            async with upstream() as client:  # a pooled connection: nothing may be sent on it
                await fetch(client, server.url())
                with pytest.raises(UpstreamUnavailable):
                    await client.post(server.url(), headers, b"", time_limit=5)
                assert await fetch(client, server.url()) == b"hello"
                assert len(server.peers) == 1
                requests = server.peers[0].requests
                assert len(requests) == 2
                assert all(b"injected" not in raw.lower() for raw in requests)

    asyncio.run(main())


# -- timeouts -----------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out() -> None:
    async def main() -> None:
        async with Server(Peer.until_eof) as server, upstream() as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.post(server.url(), {}, b"", time_limit=0.2)
            assert 0.15 <= time.monotonic() - started < 1.0
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # abandoned, closed

    asyncio.run(main())


def test_read_times_out_when_the_body_stalls() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await peer.until_eof()

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            started = time.monotonic()
            resp = await client.post(server.url(), {}, b"", time_limit=0.3)
            with pytest.raises(TimeoutError):
                await resp.read()
            assert 0.25 <= time.monotonic() - started < 1.0
            resp.close()

    asyncio.run(main())


def test_chunks_time_out_after_an_idle_stall() -> None:
    async def handle(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await peer.until_eof()

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=30)
            pieces: list[bytes] = []
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await stream_into(pieces, resp, idle_timeout=0.2)
            assert 0.15 <= time.monotonic() - started < 1.0
            assert pieces == [b"abc"]
            resp.close()

    asyncio.run(main())


# -- content codings, interim responses, back-pressure --------------------------------------

TEXT = b'{"usage": {"prompt_tokens": 12, "completion_tokens": 34}}' * 50


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
    ],
    ids=["gzip", "x-gzip", "deflate"],
)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_compressed_bodies_are_decoded(coding: str, encoded: bytes, framing: str) -> None:
    if framing == "chunked":
        half = len(encoded) // 2
        answer = (
            f"HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nX-Kept: yes\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode() + chunked(encoded[:half], encoded[half:])
    else:
        answer = response(encoded, extra=f"Content-Encoding: {coding}\r\nX-Kept: yes\r\n")

    async def main() -> None:
        async with Server(replies(answer, answer)) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            assert "content-encoding" not in resp.headers
            assert "content-length" not in resp.headers
            assert resp.headers["x-kept"] == "yes"
            assert await resp.read() == TEXT
            resp.release()
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            assert b"".join(await collect(resp)) == TEXT
            resp.release()
            assert len(server.peers) == 1  # a decoded response still keeps its connection

    asyncio.run(main())


def _bad_crc() -> bytes:
    data = bytearray(gzip.compress(TEXT))
    data[-8] ^= 0xFF  # the CRC32 in the trailer
    return bytes(data)


@pytest.mark.parametrize(
    "encoded",
    [b"\x1f\x8b\x08\x00" + b"not really gzip" * 4, b"plain text, not gzip", _bad_crc()],
    ids=["garbage-after-magic", "not-gzip", "bad-crc"],
)
def test_a_corrupt_gzip_body_is_refused(encoded: bytes) -> None:
    answer = response(encoded, extra="Content-Encoding: gzip\r\n")

    async def main() -> None:
        async with Server(replies(answer)) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            with pytest.raises(UpstreamUnavailable, match="corrupt"):
                await resp.read()
            resp.release()

    asyncio.run(main())


def test_a_gzip_stream_without_its_end_is_refused() -> None:
    """The HTTP message is whole (its Content-Length is honest) but the gzip stream in it
    stops halfway: no end-of-stream, no CRC check, half the data missing."""
    encoded = gzip.compress(bytes(range(256)) * 64)
    answer = response(encoded[: len(encoded) // 2], extra="Content-Encoding: gzip\r\n")

    async def main() -> None:
        async with Server(replies(answer)) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            with pytest.raises(UpstreamUnavailable):
                await resp.read()
            resp.release()

    asyncio.run(main())


def test_a_gzip_body_cut_short_by_the_server_is_refused() -> None:
    encoded = gzip.compress(bytes(range(256)) * 64)

    async def handle(peer: Peer) -> None:
        await peer.read_request()
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(encoded)}"
        await peer.send(head.encode() + b"\r\n\r\n" + encoded[: len(encoded) // 2])
        # ...and closes: half the promised Content-Length never arrives

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            with pytest.raises(UpstreamUnavailable):
                await resp.read()
            resp.release()

    asyncio.run(main())


def test_an_unsupported_content_coding_fails_on_read() -> None:
    answer = response(b"\x0b\x02\x80hello\x03", extra="Content-Encoding: br\r\n")

    async def main() -> None:
        async with Server(replies(answer)) as server, upstream() as client:
            resp = await client.post(server.url(), {}, b"", time_limit=5)
            with pytest.raises(UpstreamUnavailable, match="br"):
                await resp.read()
            resp.release()

    asyncio.run(main())


def test_interim_responses_are_skipped() -> None:
    async def handle(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            await asyncio.sleep(0.02)
            await peer.send(
                b"HTTP/1.1 100 Continue\r\n\r\n"
                + response(b'{"final":true}', extra="X-Final: 1\r\n")
            )

    async def main() -> None:
        async with Server(handle) as server, upstream() as client:
            for _ in range(2):
                resp = await client.post(server.url(), {}, b"", time_limit=5)
                assert resp.status == 200
                assert "link" not in resp.headers
                assert resp.headers["x-final"] == "1"
                assert await resp.read() == b'{"final":true}'
                resp.release()
            assert len(server.peers) == 1

    asyncio.run(main())


def test_back_pressure_delivers_every_byte_in_order() -> None:
    pieces = [bytes([i % 251]) * 7 + i.to_bytes(4, "big") * 4093 for i in range(64)]
    expected = b"".join(pieces)  # about 1 MiB

    async def handle(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pieces:
                peer.writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await peer.send(b"0\r\n\r\n")

    async def main() -> None:
        async with Server(handle) as server, upstream(buffer_limit=1024) as client:
            resp = await client.post(server.url(), {}, b"", time_limit=10)
            received = bytearray()
            count = 0
            async for piece in resp.chunks(idle_timeout=2):
                received += piece
                count += 1
                if count % 8 == 0:
                    await asyncio.sleep(0.001)  # a slow consumer
            resp.release()
            assert len(received) == len(expected)
            assert received == expected
            assert await fetch(client, server.url()) == expected  # reusable, read whole too
            assert len(server.peers) == 1

    asyncio.run(main())


# -- TLS ----------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, cert_pem


def test_https_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    cert_file, key_file, cert_pem = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cadata=cert_pem.decode())

    async def main() -> None:
        async with Server(replies(response(b"secret")), server_context) as server:
            async with upstream(ssl_context=trusting) as client:
                assert await fetch(client, server.url(scheme="https")) == b"secret"
                assert await fetch(client, server.url(scheme="https")) == b"hello"
                assert len(server.peers) == 1
                line, headers, _ = parse_request(server.peers[0].requests[0])
                assert line == "POST /v1/chat HTTP/1.1"
                assert ("host", f"127.0.0.1:{server.port}") in headers
            async with upstream() as untrusting:  # the system's trust store: refused
                with pytest.raises(UpstreamUnavailable, match=f"127.0.0.1:{server.port}"):
                    await untrusting.post(server.url(scheme="https"), {}, b"", time_limit=5)

    asyncio.run(main())
