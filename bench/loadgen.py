"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending the
same request back to back, recording every latency. Raw asyncio streams (with uvloop), so
that it costs far less CPU than the servers it measures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Requests:
    """One request sent over and over, or distinct ones each sent once (e.g. DPoP proofs),
    shared by every connection; a connection stops when distinct ones run out."""

    def __init__(self, request: bytes | list[bytes]) -> None:
        self.many = isinstance(request, list)
        self.items = list(request) if isinstance(request, list) else [request]
        self.index = 0

    def next(self) -> bytes | None:
        if not self.many:
            return self.items[0]
        if self.index >= len(self.items):
            return None
        self.index += 1
        return self.items[self.index - 1]


async def _connection(
    host: str, port: int, requests: Requests, deadline: float, max_requests: int | None,
    out: Result,
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    try:
        while time.perf_counter() < deadline and (max_requests is None or sent < max_requests):
            request = requests.next()
            if request is None:
                break
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            out.latencies.append(time.perf_counter() - started)
            sent += 1
            if status == 200:
                out.requests += 1
            else:
                out.errors += 1
    finally:
        writer.close()


async def _run(
    host: str, port: int, request: bytes | list[bytes], connections: int, seconds: float,
    max_requests: int | None,
) -> Result:  # fmt: skip
    out = Result(0, 0, 0.0, [])
    started = time.perf_counter()
    deadline = started + seconds
    per_conn = None if max_requests is None else -(-max_requests // connections)
    requests = Requests(request)
    await asyncio.gather(
        *(_connection(host, port, requests, deadline, per_conn, out) for _ in range(connections))
    )
    out.seconds = time.perf_counter() - started
    return out


def run(
    host: str,
    port: int,
    request: bytes | list[bytes],
    connections: int,
    seconds: float,
    max_requests: int | None = None,
) -> Result:
    try:
        import uvloop

        return uvloop.run(_run(host, port, request, connections, seconds, max_requests))
    except ImportError:
        return asyncio.run(_run(host, port, request, connections, seconds, max_requests))
