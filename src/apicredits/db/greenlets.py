"""Synchronous store code on an asyncio driver: the code runs in a greenlet of its own, and
each statement it awaits (``await_``) is handed up to the event loop (``run_sync``).

The same bridge SQLAlchemy's asyncio extension is built on, without its execution layer
around each statement: the ledger's hot writes on PostgreSQL use it to drive asyncpg
directly (``db.sql``), so one store code serves both engines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

T = TypeVar("T")


class _Worker(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet whose code may ``await_``: its parent is the task that runs it."""


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` to its end, awaiting on this task whatever it hands up."""
    worker = _Worker(fn, greenlet.getcurrent())
    handed = worker.switch(*args)
    while not worker.dead:
        try:
            value = await handed
        except BaseException as exc:  # back into the code that awaited it, cancellation too
            handed = worker.throw(exc)
        else:
            handed = worker.switch(value)
    result: T = handed
    return result


def await_(awaitable: Awaitable[T]) -> T:
    """From code that ``run_sync`` runs: the awaitable's result (the task awaits it)."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Worker):
        raise RuntimeError("await_ is for code that db.greenlets.run_sync runs")
    result: T = current.parent.switch(awaitable)
    return result
