"""The Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicredits.db import Database, normalise_url, upgrade
from apicredits.errors import InvalidInput
from migration_support import check_0007_round_trip, schema_drift

pytestmark = pytest.mark.anyio


async def test_sqlite_migrations_match_the_schema(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        await upgrade(db)
        await upgrade(db)  # idempotent: a second worker starting later
        assert await db.read(schema_drift) == []
    finally:
        await db.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:////x/a.db", "sqlite+pysqlite:////x/a.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ],
)
def test_urls_map_to_our_drivers(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "postgresql+pg8000://h/db"])
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_url(url)


async def test_0007_keeps_ledger_rows_and_guards_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        await check_0007_round_trip(db)
    finally:
        await db.aclose()
