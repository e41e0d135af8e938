"""``TariffStore`` over a real SQLite file: workers see each other's versions, parse each once."""

from __future__ import annotations

import pytest

from apicredits.db import Database
from apicredits.errors import IdempotencyConflict
from apicredits.tariffs import Unit
from apicredits.tariffs.store import TariffStore

pytestmark = pytest.mark.anyio


def toml(version: int, price: int) -> str:
    return (
        f'version = {version}\neffective_from = 0\n[models."m"]\nprovider = "p"\n'
        f"input_tokens = {price}\noutput_tokens = {price}\n"
    )


async def test_a_refresh_parses_only_versions_it_has_not_seen(db: Database) -> None:
    mine, other = TariffStore(db, ttl_seconds=0), TariffStore(db, ttl_seconds=0)
    await mine.add_toml(toml(1, 100))
    first = (await mine.book()).version(1)
    # Another worker adds versions, the lower number last: a refresh finds both.
    await other.add_toml(toml(3, 300))
    await other.add_toml(toml(2, 200))
    book = await mine.book()
    assert [t.version for t in book.versions()] == [1, 2, 3]
    assert book.version(1) is first  # not parsed again
    assert book.current(0).version == 3


async def test_own_additions_show_before_the_cache_expires(db: Database) -> None:
    store = TariffStore(db, ttl_seconds=3600)
    await store.add_toml(toml(1, 100))
    assert [t.version for t in (await store.book()).versions()] == [1]
    await store.add_toml(toml(2, 200))
    assert [t.version for t in (await store.book()).versions()] == [1, 2]
    await store.add_toml(toml(2, 200))  # the same content again: a no-op
    with pytest.raises(IdempotencyConflict):
        await store.add_toml(toml(2, 999))
    assert (await store.book()).version(2).rate("m").prices[Unit.INPUT_TOKENS] == 200


def unnumbered(price: int) -> str:
    return toml(0, price).removeprefix("version = 0\n")


async def test_an_unnumbered_version_is_numbered_unless_the_newest_says_the_same(
    db: Database,
) -> None:
    # A tariff file is added by every worker at every start: one version, not one per start.
    store = TariffStore(db)
    assert (await store.add_toml(unnumbered(100))).version == 1
    assert (await store.add_toml(unnumbered(100))).version == 1
    assert (await store.add_toml(unnumbered(200))).version == 2
    assert (await store.add_toml(unnumbered(100))).version == 3  # not the newest: a new one
    assert (await store.add_toml(toml(4, 200))).version == 4
    assert (await store.add_toml(unnumbered(200))).version == 4
    assert [t.version for t in (await store.book()).versions()] == [1, 2, 3, 4]
