"""Storage: one schema (``schema``), two engines (``engine``), Alembic migrations."""

from __future__ import annotations

from apicredits.db.engine import Database, normalise_url
from apicredits.db.migrate import upgrade

__all__ = ["Database", "normalise_url", "upgrade"]
