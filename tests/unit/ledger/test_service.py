"""``Ledger`` over a real SQLite file: batching, history, balances and lock expiry."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from apicredits.db import Database
from apicredits.errors import InsufficientCredits, LockClosed
from apicredits.ledger import AccountType, Ledger, TransferKind, tenant_account
from apicredits.ledger.batcher import MAX_GATHER_TURNS

pytestmark = pytest.mark.anyio
T = tenant_account("t")


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_800_000_000_000_000

    def __call__(self) -> int:
        return self.now_us


@pytest.fixture
async def ledger(db: Database) -> Ledger:
    led = Ledger(db, clock_us=Clock())
    await led.open_system_accounts()
    await led.open_account(T, AccountType.TENANT)
    await led.deposit("fund", T, 1_000)
    return led


async def test_concurrent_commands_share_batches(ledger: Ledger) -> None:
    results = await asyncio.gather(
        *(ledger.lock(f"l{i}", T, 10, timeout_seconds=60) for i in range(100)),
        return_exceptions=True,
    )
    assert all(not isinstance(r, BaseException) for r in results)
    refused = await asyncio.gather(
        ledger.lock("too-much", T, 1, timeout_seconds=60), return_exceptions=True
    )
    assert isinstance(refused[0], InsufficientCredits)
    seqs = [r.seq for r in results]  # type: ignore[union-attr]
    assert len(set(seqs)) == 100
    assert all(s is not None for s in seqs)
    balance = await ledger.balance(T)
    assert (balance.available_micro, balance.locked_micro) == (0, 1_000)


def count_transactions(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """How each write transaction from now on was made ("now": at once on the caller's
    task; "batch": by the queue's drainer) and how many commands it held."""
    sizes: list[tuple[str, int]] = []
    write_sql, write_now = db.write_sql, db.write_now

    async def batch(work: Any) -> Any:
        sizes.append(("batch", len(work.keywords["commands"])))
        return await write_sql(work)

    def now(work: Any) -> Any:
        result = write_now(work)
        sizes.append(("now", len(work.keywords["commands"])))
        return result

    monkeypatch.setattr(db, "write_sql", batch)
    monkeypatch.setattr(db, "write_now", now)
    return sizes


async def lock_after_turns(ledger: Ledger, turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)
    await ledger.lock(f"after-{turns}", T, 1, timeout_seconds=60)


async def busy(ledger: Ledger) -> None:
    """Load as a gateway sees it: three commands in one turn (the first is written at once,
    the other two share a batch), after which commands queue for batches."""
    await asyncio.gather(*(ledger.lock(f"busy-{i}", T, 1, timeout_seconds=60) for i in range(3)))


async def test_a_command_at_a_quiet_time_is_written_at_once(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_transactions(db, monkeypatch)
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    await ledger.lock("quiet", T, 1, timeout_seconds=60)
    assert turned == []  # written without giving the loop a turn
    assert sizes == [("now", 1)]
    await asyncio.sleep(0)
    await ledger.lock("quiet-again", T, 1, timeout_seconds=60)
    assert sizes == [("now", 1), ("now", 1)]


async def test_one_tasks_commands_in_one_turn_are_all_written_at_once(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_transactions(db, monkeypatch)
    await ledger.lock("first", T, 5, timeout_seconds=60)
    await ledger.consume("first:use", "first", 3)  # no other task came: no company
    assert sizes == [("now", 1), ("now", 1)]
    assert (await ledger.balance(T)).spent_micro == 3


async def test_company_in_the_same_turn_makes_batches(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_transactions(db, monkeypatch)
    await busy(ledger)
    assert sizes == [("now", 1), ("batch", 2)]
    await asyncio.gather(*(ledger.lock(f"x{i}", T, 1, timeout_seconds=60) for i in range(5)))
    assert sizes[2:] == [("batch", 5)]  # still under load: all five share one batch
    await ledger.lock("lone", T, 1, timeout_seconds=60)  # load is over: one turn's wait,
    await ledger.lock("quiet", T, 1, timeout_seconds=60)  # then at once again
    assert sizes[3:] == [("batch", 1), ("now", 1)]
    assert (await ledger.balance(T)).locked_micro == 3 + 5 + 2


async def test_a_command_waits_for_a_write_lock_held_elsewhere(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_transactions(db, monkeypatch)
    other = sqlite3.connect(db.sqlite_path or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    task = asyncio.create_task(ledger.lock("waits", T, 1, timeout_seconds=60))
    await asyncio.sleep(0.05)
    assert not task.done()
    other.execute("COMMIT")
    other.close()
    assert (await task).id == "waits"
    assert sizes == [("batch", 1)]


async def test_commands_still_arriving_join_the_batch(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await busy(ledger)
    sizes = count_transactions(db, monkeypatch)
    # one new command each loop turn, for fewer turns than the batcher waits
    await asyncio.gather(*(lock_after_turns(ledger, t) for t in range(MAX_GATHER_TURNS)))
    assert sizes == [("batch", MAX_GATHER_TURNS)]


async def test_a_batch_waits_a_bounded_number_of_turns(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await busy(ledger)
    sizes = count_transactions(db, monkeypatch)
    # commands that keep arriving every turn do not hold the first one back for ever
    await asyncio.gather(*(lock_after_turns(ledger, t) for t in range(4 * MAX_GATHER_TURNS)))
    assert sum(n for _, n in sizes) == 4 * MAX_GATHER_TURNS
    assert MAX_GATHER_TURNS <= sizes[0][1] <= MAX_GATHER_TURNS + 1  # the drainer's own turn
    assert len(sizes) > 1


async def test_under_load_a_lone_command_is_written_after_one_turn(
    ledger: Ledger, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await busy(ledger)
    sizes = count_transactions(db, monkeypatch)
    late = asyncio.create_task(lock_after_turns(ledger, 2))
    await ledger.lock("alone", T, 1, timeout_seconds=60)  # nothing else came in its turn
    await late
    assert sizes == [("batch", 1), ("now", 1)]


async def test_history_and_balance(ledger: Ledger) -> None:
    await ledger.lock("l", T, 100, timeout_seconds=60)
    await ledger.consume("c", "l", 40)
    history = await ledger.history(T)
    assert [t.kind for t in history] == [
        TransferKind.DEPOSIT,
        TransferKind.LOCK,
        TransferKind.CONSUME,
    ]
    assert [t.seq for t in history] == sorted(t.seq for t in history)  # type: ignore[type-var]
    after = await ledger.history(T, after_seq=history[1].seq or 0)
    assert [t.id for t in after] == ["c"]
    balance = await ledger.balance(T)
    assert (
        balance.available_micro,
        balance.locked_micro,
        balance.spent_micro,
        balance.deposited_micro,
    ) == (960, 0, 40, 1_000)


async def test_sweeper_expires_due_locks_once(db: Database) -> None:
    clock = Clock()
    first, second = Ledger(db, clock_us=clock), Ledger(db, clock_us=clock)
    await first.open_system_accounts()
    await first.open_account(T, AccountType.TENANT)
    await first.deposit("fund", T, 1_000)
    for i in range(30):
        await first.lock(f"l{i}", T, 10, timeout_seconds=10 + i % 3)
    await first.consume("c0", "l0", 5)
    assert await first.expire_due() == 0  # nothing is due yet
    clock.now_us += 11 * 1_000_000
    # Two "workers" sweep at once, and both find the same due locks before either writes
    # (the barrier forces the race; left to thread timing, the second read may come after
    # the first sweep committed and find nothing). Every due lock still expires once, and
    # each sweeper counts the 19 as expired. Due: timeout 10 s (l3, l6 ... l27; l0 was
    # consumed) and 11 s (l1, l4 ... l28).
    both_read = asyncio.Barrier(2)
    read = db.read

    async def read_then_wait(work: Any) -> Any:
        found = await read(work)
        await both_read.wait()
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "read", read_then_wait)
        assert await asyncio.gather(first.expire_due(), second.expire_due()) == [19, 19]
    clock.now_us += 10 * 1_000_000
    assert await first.expire_due() == 10
    assert await first.expire_due() == 0
    history = await first.history(T, limit=1000)
    expiries = [t.pending_id for t in history if t.kind == TransferKind.EXPIRE]
    assert len(expiries) == len(set(expiries)) == 29
    balance = await first.balance(T)
    assert (balance.available_micro, balance.locked_micro) == (995, 0)
    with pytest.raises(LockClosed):
        await first.consume("late", "l1", 1)


async def test_sweeper_task_runs_and_stops(ledger: Ledger) -> None:
    await ledger.lock("l", T, 10, timeout_seconds=1)
    ledger.clock_us.now_us += 2_000_000  # type: ignore[attr-defined]
    task = asyncio.create_task(ledger.run_sweeper(0.01))
    for _ in range(200):
        if (await ledger.balance(T)).locked_micro == 0:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert (await ledger.balance(T)).locked_micro == 0


async def test_a_caller_that_gives_up_leaves_the_shared_batch_alone(ledger: Ledger) -> None:
    await busy(ledger)
    gives_up = asyncio.create_task(ledger.lock("a", T, 10, timeout_seconds=60))
    waits = asyncio.create_task(ledger.lock("b", T, 10, timeout_seconds=60))
    await asyncio.sleep(0)  # both commands are queued for one batch
    gives_up.cancel()
    assert (await waits).id == "b"
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    # the batch was written whole: "a" holds its credits though its caller stopped waiting
    assert (await ledger.balance(T)).locked_micro == 3 + 20
    assert (await ledger.transfer("a")) is not None
