"""A migrated SQLite database for the metering tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apicredits.db import Database, upgrade


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'u.db'}")
    await upgrade(database)
    yield database
    await database.aclose()
