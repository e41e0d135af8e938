"""A/B of the gateway's CPU per request between source trees, on one noisy machine.

    git worktree add /tmp/base <rev>
    .venv/bin/python bench/gateway_ab.py [--rounds 12] [--seconds 3] [--connections 8]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] base=/tmp/base/src new=src

Starts one simulator and one gateway worker per tree (each with its own SQLite data dir,
or with ``--postgres`` its own new database on that server, dropped afterwards; its
``src`` first on ``PYTHONPATH``), all at once, then alternates short loads of
``--connections`` between them (the order flips every round) and prints, per tree, the
median requests/s and p50 latency and the median and lowest CPU each worker spent per
request; then, for each further tree, its CPU and requests/s as ratios to the first
tree's, paired by round (the median ratio and its middle half). A machine whose speed
drifts by tens of percent within minutes (as shared VMs do) still gives a fair
comparison this way; separate ``bench/gateway.py`` runs do not.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import gateway as bench
from scratch import scratch_database

PATH = "/v1/chat/completions"


def start_gateway(
    src: str, sim_port: int, database_url: str | None
) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    port = bench.free_port()
    env = bench.gateway_env(tempfile.mkdtemp(prefix="apicredits-ab-"), sim_port, database_url)
    env["PYTHONPATH"] = str(Path(src).resolve())
    gw = subprocess.Popen(
        [sys.executable, "-m", "apicredits", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    bench.wait_http(f"http://127.0.0.1:{port}/healthz")
    _, _, headers = bench.funded_tenant(port)
    return gw, port, headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="NAME=SRC_DIR, e.g. base=/tmp/base/src")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="run each tree on PostgreSQL")
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.trees]
    if any(len(t) != 2 or not Path(t[1], "apicredits").is_dir() for t in trees):
        parser.error("each tree is NAME=SRC_DIR, with SRC_DIR holding the apicredits package")
    sim_port = bench.free_port()
    procs = [subprocess.Popen([str(bench.BIN), "provider-sim", "--port", str(sim_port)])]
    with contextlib.ExitStack() as databases:
        try:
            return compare(args, trees, sim_port, procs, databases)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def compare(
    args: argparse.Namespace,
    trees: list[list[str]],
    sim_port: int,
    procs: list[subprocess.Popen[bytes]],
    databases: contextlib.ExitStack,
) -> int:
    bench.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
    up = []
    for name, src in trees:
        url = databases.enter_context(scratch_database(args.postgres))
        gw, port, headers = start_gateway(src, sim_port, url)
        procs.append(gw)
        bench.load(port, PATH, headers, args.connections, 1.0)  # warm up
        up.append((name, port, headers, gw.pid))
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name, *_ in up}
    for round_ in range(args.rounds):
        for name, port, headers, pid in up if round_ % 2 == 0 else up[::-1]:
            before = bench.cpu_seconds(pid)
            busy = bench.load(port, PATH, headers, args.connections, args.seconds)
            if busy.errors:
                raise SystemExit(f"{name}: {busy.errors} errors under load")
            cpu = (bench.cpu_seconds(pid) - before) / max(1, busy.requests) * 1e6
            figures[name].append((busy.rps, busy.percentile(50) * 1000, cpu))
    print(f"{args.connections} connections, {'PostgreSQL' if args.postgres else 'SQLite'}")
    for name, runs in figures.items():
        print(
            f"{name:<10} req/s median {statistics.median(r[0] for r in runs):7,.0f} | "
            f"p50 median {statistics.median(r[1] for r in runs):6.3f} ms | "
            f"CPU/req median {statistics.median(r[2] for r in runs):5.0f} µs, "
            f"lowest {min(r[2] for r in runs):5.0f} µs ({len(runs)} loads)"
        )
    # Each round loads every tree back to back, so a round's ratio cancels most of the drift
    # that the medians above still carry.
    (first, base), *others = figures.items()
    for name, runs in others:
        ratios = sorted(r[2] / b[2] for r, b in zip(runs, base, strict=True))
        rps = statistics.median(r[0] / b[0] for r, b in zip(runs, base, strict=True))
        print(
            f"{name:<10} vs {first}, paired by round: CPU/req x{statistics.median(ratios):.3f} "
            f"(middle half x{ratios[len(ratios) // 4]:.3f}-x{ratios[(3 * len(ratios)) // 4]:.3f}), "
            f"req/s x{rps:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
