"""Bring a database to the newest schema with Alembic; safe when several workers start at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from apicredits.db.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(conn: Connection) -> Config:
    """Alembic's configuration for running our migrations on ``conn``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Serialise concurrent upgrades (several workers starting together).
        conn.execute(text("SELECT pg_advisory_xact_lock(7303311)"))
    command.upgrade(alembic_config(conn), "head")


async def upgrade(db: Database) -> None:
    await db.write(_upgrade)
