"""Non-streaming chat requests per second against the provider simulator.

    .venv/bin/python bench/simulator.py [--seconds 5] [--connections 8] [--client raw|aiohttp]

Starts the simulator (one uvicorn worker, uvloop, httptools, access log off) in a subprocess on
a free port, then drives it from a second process: ``connections`` keep-alive connections, each
sending one request at a time for ``seconds``. Prints requests/s and p50/p99 latency.

The default ``raw`` client writes one prepared HTTP/1.1 request per round trip over a plain
asyncio connection and reads the response by its Content-Length: on a 2-core machine the load
generator shares the CPU with the server, and aiohttp's client costs about as much per request
as the simulator does, so with it the figure measures the client as much as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import time
from multiprocessing import Queue

BODY = json.dumps(
    {
        "model": "sim-gpt",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Summarise the settlement flow in one paragraph."},
        ],
        "max_tokens": 64,
    }
).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"simulator did not start on port {port}")


async def _raw_connection(port: int, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\nauthorization: Bearer x\r\n"
        b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
    )
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected response: {head!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        await writer.wait_closed()


async def _aiohttp_connections(
    port: int, deadline: float, connections: int, latencies: list[float]
) -> None:
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer x"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"unexpected status {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(loop() for _ in range(connections)))


def _load(port: int, seconds: float, connections: int, client: str, out: list[float]) -> None:
    import uvloop

    async def main() -> list[float]:
        latencies: list[float] = []
        deadline = time.monotonic() + seconds
        if client == "raw":
            await asyncio.gather(
                *(_raw_connection(port, deadline, latencies) for _ in range(connections))
            )
        else:
            await _aiohttp_connections(port, deadline, connections, latencies)
        return latencies

    out.extend(uvloop.run(main()))


def _load_process(
    port: int, seconds: float, connections: int, client: str, queue: Queue[list[float]]
) -> None:
    latencies: list[float] = []
    _load(port, seconds, connections, client, latencies)
    queue.put(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    args = parser.parse_args()

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from apicredits.providers.simulator import run_simulator; run_simulator(port={port})",
        ]
    )
    try:
        _wait_for(port)
        _load(port, 0.5, args.connections, args.client, [])  # warm up
        queue: Queue[list[float]] = multiprocessing.Queue()
        started = time.monotonic()
        worker = multiprocessing.Process(
            target=_load_process,
            args=(port, args.seconds, args.connections, args.client, queue),
        )
        worker.start()
        latencies = queue.get()
        worker.join()
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=10)

    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"simulator, non-streaming chat, {args.connections} connections, {args.client} client: "
        f"{len(latencies) / args.seconds:,.0f} req/s ({len(latencies)} requests in "
        f"{elapsed:.1f} s), p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )


if __name__ == "__main__":
    main()
