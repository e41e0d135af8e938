"""Lock + consume pairs per second on SQLite and PostgreSQL, with concurrent workers.

    .venv/bin/python bench/ledger.py [--seconds 10] [--processes 2] [--concurrency 128]

Each worker process runs ``concurrency`` asyncio tasks that lock a random tenant's credits
and consume part of the lock, for ``seconds``. Afterwards the invariants are checked:
postings sum to zero, nothing is left locked, every lock closed once, and the credits
spent equal the sum of what was consumed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from apicredits.db import Database, upgrade
from apicredits.db.schema import accounts, open_locks, transfers
from apicredits.ledger import AccountType, Ledger, tenant_account

sys.path.insert(0, str(Path(__file__).parent))
from scratch import scratch_database

TENANTS = 100
LOCK = 10_000
USE = 6_000
PG_ADMIN = os.environ.get("APICREDITS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _worker(url: str, worker: int, seconds: float, concurrency: int) -> tuple[int, int]:
    db = Database(url, pool_size=4)
    ledger = Ledger(db)
    pairs = 0
    failures = 0
    deadline = time.monotonic() + seconds

    async def loop(task: int) -> None:
        nonlocal pairs, failures
        rng = random.Random(worker * 100_000 + task)
        n = 0
        while time.monotonic() < deadline:
            tenant = tenant_account(f"t{rng.randrange(TENANTS)}")
            lock_id = f"w{worker}.{task}.{n}"
            n += 1
            try:
                await ledger.lock(lock_id, tenant, LOCK, timeout_seconds=600)
                await ledger.consume(lock_id + ":c", lock_id, USE)
                pairs += 1
            except Exception:  # counted and reported
                failures += 1

    try:
        await asyncio.gather(*(loop(t) for t in range(concurrency)))
    finally:
        await db.aclose()
    return pairs, failures


def _run_worker(url: str, worker: int, seconds: float, concurrency: int) -> tuple[int, int]:
    return asyncio.run(_worker(url, worker, seconds, concurrency))


async def _prepare(url: str) -> None:
    db = Database(url)
    await upgrade(db)
    ledger = Ledger(db)
    await ledger.open_system_accounts()
    for t in range(TENANTS):
        await ledger.open_account(tenant_account(f"t{t}"), AccountType.TENANT)
        await ledger.deposit(f"fund-{t}", tenant_account(f"t{t}"), 10**15)
    await db.aclose()


async def _check(url: str, pairs: int) -> str:
    db = Database(url)
    stmt = select(
        func.sum(accounts.c.credits_posted - accounts.c.debits_posted),
        func.sum(accounts.c.credits_pending - accounts.c.debits_pending),
        func.sum(accounts.c.debits_pending),
    )
    posted, pending, locked = await db.read(lambda c: c.execute(stmt).one())
    consumed = select(func.count(), func.coalesce(func.sum(transfers.c.amount), 0)).where(
        transfers.c.kind == "consume"
    )
    n_consumed, spent = await db.read(lambda c: c.execute(consumed).one())
    still_open = await db.read(
        lambda c: c.execute(select(func.count()).select_from(open_locks)).scalar_one()
    )
    await db.aclose()
    problems = []
    if posted != 0 or pending != 0:
        problems.append(f"postings do not sum to zero ({posted}, {pending})")
    if locked != 0 or still_open != 0:
        problems.append(f"{locked} micro still locked, {still_open} open locks")
    if n_consumed != pairs or spent != pairs * USE:
        problems.append(f"{n_consumed} consumes / {spent} spent for {pairs} pairs")
    return "; ".join(problems) or "ok"


def bench(name: str, url: str, args: argparse.Namespace) -> float:
    asyncio.run(_prepare(url))
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ctx.Pool(args.processes) as pool:
        results = pool.starmap(
            _run_worker,
            [(url, w, args.seconds, args.concurrency) for w in range(args.processes)],
        )
    elapsed = time.perf_counter() - started
    pairs = sum(p for p, _ in results)
    failures = sum(f for _, f in results)
    rate = pairs / float(args.seconds)
    invariants = asyncio.run(_check(url, pairs))
    print(
        f"{name:<10} {args.processes} procs x {args.concurrency} tasks: {pairs} pairs in "
        f"{args.seconds:.0f}s ({elapsed:.1f}s wall) = {rate:,.0f} lock+consume pairs/s; "
        f"failures {failures}; invariants {invariants}"
    )
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    print(f"bench/ledger.py on {os.cpu_count()} cores, {TENANTS} tenants")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            bench("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.backend in ("postgres", "both"):
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(scratch_database(PG_ADMIN))
            except OSError as exc:
                print(f"postgres   skipped: cannot reach {PG_ADMIN}: {exc}", file=sys.stderr)
                return 1
            assert url is not None
            bench("postgres", url, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
