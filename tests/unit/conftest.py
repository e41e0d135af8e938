"""Fixtures shared by the unit tests (no server: SQLite files under the test's tmp_path)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apicredits.db import Database, upgrade


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database of this test's own."""
    database = Database(f"sqlite:///{tmp_path / 'unit.db'}")
    await upgrade(database)
    yield database
    await database.aclose()
