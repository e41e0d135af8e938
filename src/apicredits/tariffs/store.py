"""Tariff versions in the database, and the cached ``TariffBook`` the gateway prices with.

Versions are insert-only: uploading an existing version number with the same content is a
no-op, with different content a conflict, so a charge's recorded version always means the
same prices. Every worker reloads the book when its cache is older than ``ttl_seconds``.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from typing import Any

from sqlalchemy import Connection, select

from apicredits.db.engine import Database
from apicredits.db.schema import tariff_versions
from apicredits.errors import IdempotencyConflict, InvalidInput
from apicredits.tariffs.quotes import canonical_json
from apicredits.tariffs.ratecard import TariffBook, TariffVersion


class TariffStore:
    def __init__(self, db: Database, *, ttl_seconds: float = 5.0) -> None:
        self.db = db
        self.ttl_seconds = ttl_seconds
        self._book: TariffBook | None = None
        self._loaded_at = -math.inf

    async def add(self, tariff: TariffVersion) -> TariffVersion:
        document = canonical_json(tariff.to_document()).decode()
        row = {
            "version": tariff.version,
            "effective_from": tariff.effective_from,
            "document": document,
            "created_at_us": time.time_ns() // 1000,
        }

        def work(conn: Connection) -> str | None:
            existing = conn.execute(
                select(tariff_versions.c.document).where(
                    tariff_versions.c.version == tariff.version
                )
            ).scalar_one_or_none()
            if existing is None:
                conn.execute(tariff_versions.insert(), row)
            return existing

        existing = await self.db.write(work)
        if existing is not None and existing != document:
            raise IdempotencyConflict(
                f"tariff version {tariff.version} already exists with different content",
                tariff_version=tariff.version,
            )
        self._loaded_at = -math.inf  # the next ``book()`` picks it up
        return tariff

    async def add_toml(self, text: str) -> TariffVersion:
        """Add a version from TOML (see ``add_document``)."""
        try:
            document: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"tariff TOML does not parse: {exc}") from None
        return await self.add_document(document)

    async def add_document(self, document: dict[str, Any]) -> TariffVersion:
        """Add a version. Without a ``version`` key it gets the next number, unless the
        newest version says the same: that one is returned (a tariff file is added again
        by every worker at every start, which must not make a new version each time)."""
        if "version" not in document:
            newest = await self.db.read(_newest)
            if newest is not None:
                same = TariffVersion.from_document({**document, "version": newest[0]})
                if canonical_json(same.to_document()).decode() == newest[1]:
                    return same
            document = {**document, "version": (newest[0] if newest else 0) + 1}
        return await self.add(TariffVersion.from_document(document))

    async def book(self) -> TariffBook:
        if self._book is None or time.monotonic() - self._loaded_at > self.ttl_seconds:
            book = self._book or TariffBook()
            # Versions never change once written, so a refresh parses only the ones this
            # worker has not seen (parsing the whole book on the event loop every few
            # seconds stalled every request in flight).
            known = {t.version for t in book.versions()}
            for document in await self.db.read(lambda c: _documents_except(c, known)):
                book.add(TariffVersion.from_document(json.loads(document)))
            self._book, self._loaded_at = book, time.monotonic()
        return self._book


def _newest(conn: Connection) -> tuple[int, str] | None:
    """The highest version number and its document."""
    stmt = select(tariff_versions.c.version, tariff_versions.c.document)
    row = conn.execute(stmt.order_by(tariff_versions.c.version.desc()).limit(1)).first()
    return None if row is None else (int(row.version), str(row.document))


def _documents_except(conn: Connection, known: set[int]) -> list[str]:
    numbers = conn.execute(select(tariff_versions.c.version)).scalars()
    missing = sorted(set(numbers) - known)
    if not missing:
        return []
    stmt = (
        select(tariff_versions.c.document)
        .where(tariff_versions.c.version.in_(missing))
        .order_by(tariff_versions.c.version)
    )
    return list(conn.execute(stmt).scalars())
