"""Scratch PostgreSQL databases for the benches: made for one run, dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import asyncpg


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_database(admin_url: str | None) -> Iterator[str | None]:
    """A new database on the server of ``admin_url`` (its URL), dropped afterwards; None
    without an admin URL. Raises ``OSError`` if the server cannot be reached."""
    if admin_url is None:
        yield None
        return
    name = f"apicredits_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
