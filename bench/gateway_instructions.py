"""Instructions per request of one gateway worker, counted by valgrind's callgrind: the
A/B that a noisy machine cannot blur.

    .venv/bin/python bench/gateway_instructions.py [--requests 1000] [--connections 8]
        base=/tmp/base/src new=src

For each tree in turn: one simulator, one gateway worker under ``valgrind --tool=callgrind``
(its ``src`` first on ``PYTHONPATH``, SQLite and in-process limits, counting switched off
until the worker has warmed up on 300 requests), then ``--requests`` non-streaming chat
calls at ``--connections``, counted. Prints each tree's instructions per request, in the
worker's process (all threads, user space: the kernel's share of a call is not counted),
and each further tree's ratio to the first. The same tree measured twice agrees within
~1.5%, whatever else the machine does; ``bench/gateway_ab.py`` times the same comparison
and needs a difference of ~10% to see it. A run takes about a minute per tree.

With ``--by-library``, each tree's instructions are also split by the shared object that
ran them (the CPython interpreter, SQLite, libc, uvloop, ...): what compiling or replacing
one part of the stack could save at most.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import gateway as bench
import loadgen

WARM_UP = 300


def count(src: str, requests: int, connections: int) -> tuple[float, dict[str, int]]:
    """Instructions per request of a gateway worker running ``src``, and its instructions
    by shared object."""
    data = tempfile.mkdtemp(prefix="apicredits-instructions-")
    sim_port, port = bench.free_port(), bench.free_port()
    env = {**bench.gateway_env(data, sim_port), "PYTHONPATH": str(Path(src).resolve())}
    out = Path(data, "callgrind.out")
    sim = subprocess.Popen([str(bench.BIN), "provider-sim", "--port", str(sim_port)], env=env)
    trace = f"--callgrind-out-file={out}"
    callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", trace]
    worker = [sys.executable, "-m", "apicredits", "serve", "--port", str(port), "--workers", "1"]
    gw = subprocess.Popen(
        [*callgrind, *worker],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        bench.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        bench.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=600)
        _, _, headers = bench.funded_tenant(port)
        request = loadgen.build_request(
            "127.0.0.1", port, "/v1/chat/completions", bench.BODY, headers
        )
        loadgen.run("127.0.0.1", port, request, connections, 3600, WARM_UP)
        _control(gw.pid, "--instr=on")
        done = loadgen.run("127.0.0.1", port, request, connections, 3600, requests)
        _control(gw.pid, "--instr=off")
        _control(gw.pid, "--dump")
        if done.errors:  # seen once in ~10 runs, under valgrind's slowness
            print(f"{src}: {done.errors} of {requests} calls failed", file=sys.stderr)
        if done.errors * 100 > requests:
            raise SystemExit(f"{src}: too many failed calls to count")
        parts = list(out.parent.glob(out.name + ".*"))
        by_object = _by_object(parts)
        total = sum(by_object.values())  # equals the dumps' ``totals:`` lines
        if not total:
            raise SystemExit("callgrind wrote no counts")
        return total / (done.requests + done.errors), by_object
    finally:
        for proc in (gw, sim):
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def _control(pid: int, option: str) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def _by_object(parts: list[Path]) -> dict[str, int]:
    """Self cost by shared object, read from callgrind's format: ``ob=`` names the object of
    the functions that follow (``ob=(id) name`` once, then ``ob=(id)``; ``cob=`` shares the
    ids); a cost line is a position then the count; the line after ``calls=`` is the cost
    of a call, already counted in the callee, so it is skipped. Counts only ``Ir``, the one
    event this bench records."""
    costs: dict[str, int] = {}
    for part in parts:
        names: dict[str, str] = {}
        current, skip = "?", False
        for line in part.read_text().splitlines():
            if line.startswith(("ob=", "cob=")):
                ref, _, name = line.split("=", 1)[1].partition(" ")
                if name:
                    names[ref] = name
                if line.startswith("ob="):
                    current = names.get(ref, ref)
            elif line.startswith("calls="):
                skip = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()  # a position alone: no cost (trailing zeros are left out)
                if not skip and len(fields) > 1:
                    costs[current] = costs.get(current, 0) + int(fields[1])
                skip = False
    return costs


LIBRARIES = (  # shared-object name fragment -> what it is
    ("libpython", "CPython (interpreter, objects)"),
    ("libsqlite3", "SQLite"),
    ("libc.so", "libc (memory, strings, locks)"),
    ("_json", "json"),
    ("uvloop", "uvloop"),
    ("httptools", "httptools"),
)


def _libraries(costs: dict[str, int]) -> dict[str, int]:
    grouped: dict[str, int] = {}
    for obj, n in costs.items():
        label = next((what for part, what in LIBRARIES if part in obj), "other")
        grouped[label] = grouped.get(label, 0) + n
    return dict(sorted(grouped.items(), key=lambda kv: -kv[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="NAME=SRC_DIR, e.g. base=/tmp/base/src")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--by-library", action="store_true", help="split by shared object")
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.trees]
    if any(len(t) != 2 or not Path(t[1], "apicredits").is_dir() for t in trees):
        parser.error("each tree is NAME=SRC_DIR, with SRC_DIR holding the apicredits package")
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        parser.error("needs valgrind (Debian: apt-get install valgrind)")
    print(f"{args.requests:,} requests at {args.connections} connections, SQLite")
    first = None
    for name, src in trees:
        per_request, by_object = count(src, args.requests, args.connections)
        ratio = "" if first is None else f" (x{per_request / first:.3f} of {trees[0][0]})"
        first = first or per_request
        print(f"{name:<10} {per_request:12,.0f} instructions/request{ratio}", flush=True)
        if args.by_library:
            total = sum(by_object.values())
            for label, n in _libraries(by_object).items():
                print(f"{'':<10} {n / total:6.1%} {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
