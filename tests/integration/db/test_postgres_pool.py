"""Pooled PostgreSQL connections are checked only after idling, and a dead one is replaced."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection, text

from apicredits.db import Database, engine

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


async def test_a_connection_cut_while_idle_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.2)
    db = Database(postgres_url, pool_size=1)
    try:
        first = await db.read(backend_pid)
        assert await db.read(backend_pid) == first  # the same pooled connection, in use
        killer = Database(postgres_url)
        try:
            await killer.read(
                lambda c: c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
            )
        finally:
            await killer.aclose()
        await asyncio.sleep(0.3)  # idle past the threshold: checked at the next checkout
        second = await db.read(backend_pid)
        assert second != first
    finally:
        await db.aclose()
