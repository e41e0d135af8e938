"""Migrations on the real PostgreSQL: exact schema, and safe when workers start together."""

from __future__ import annotations

import asyncio

import pytest

from apicredits.db import Database, upgrade
from migration_support import check_0007_round_trip, schema_drift

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_concurrent_upgrades_build_the_declared_schema(postgres_url: str) -> None:
    dbs = [Database(postgres_url, pool_size=1) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(db) for db in dbs))
        assert await dbs[0].read(schema_drift) == []
    finally:
        for db in dbs:
            await db.aclose()


async def test_0007_keeps_ledger_rows_and_guards(postgres_url: str) -> None:
    db = Database(postgres_url, pool_size=1)
    try:
        await check_0007_round_trip(db)
    finally:
        await db.aclose()
