"""Synchronous code driving awaitables through ``db.greenlets``, and the statement numbering
that hands the ledger's ``:named`` SQL to asyncpg."""

from __future__ import annotations

import asyncio

import pytest

from apicredits.db.greenlets import await_, run_sync
from apicredits.db.sql import _numbered

pytestmark = pytest.mark.anyio


async def test_sync_code_gets_each_awaitables_result_in_order() -> None:
    seen: list[int] = []

    async def value(n: int) -> int:
        await asyncio.sleep(0)
        seen.append(n)
        return n * 10

    def work(a: int, b: int) -> int:
        return await_(value(a)) + await_(value(b))

    assert await run_sync(work, 1, 2) == 30
    assert seen == [1, 2]


async def test_an_awaitables_error_reaches_the_sync_code_and_can_be_handled() -> None:
    async def fail() -> None:
        raise KeyError("gone")

    def work() -> str:
        try:
            await_(fail())
        except KeyError as exc:
            return f"handled {exc}"
        return "not raised"

    assert await run_sync(work) == "handled 'gone'"


async def test_an_error_of_the_sync_code_reaches_the_caller() -> None:
    def work() -> None:
        await_(asyncio.sleep(0))
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        await run_sync(work)


async def test_cancelling_the_task_stops_the_sync_code_where_it_waits() -> None:
    reached: list[str] = []

    def work() -> None:
        try:
            await_(asyncio.sleep(10))
            reached.append("after the wait")
        finally:
            reached.append("finally")

    task = asyncio.create_task(run_sync(work))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["finally"]


def test_await_outside_run_sync_is_refused() -> None:
    async def nothing() -> None:
        return None

    coroutine = nothing()
    try:
        with pytest.raises(RuntimeError, match="run_sync"):
            await_(coroutine)
    finally:
        coroutine.close()


def test_names_become_numbers_once_each_and_casts_stay() -> None:
    statement, names = _numbered(
        "SELECT :a, CAST(:b AS text[]), x::bigint, :a FROM t WHERE y = ANY(:b_2)"
    )
    assert statement == "SELECT $1, CAST($2 AS text[]), x::bigint, $1 FROM t WHERE y = ANY($3)"
    assert names == ("a", "b", "b_2")


def test_a_statement_without_names_is_unchanged() -> None:
    assert _numbered("SELECT COALESCE(MAX(seq), 0) FROM transfers") == (
        "SELECT COALESCE(MAX(seq), 0) FROM transfers",
        (),
    )
