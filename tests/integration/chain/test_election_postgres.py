"""The indexer's election on the real PostgreSQL: one leader per name, the next takes over."""

from __future__ import annotations

import pytest

from apicredits.chain.election import PostgresLease, lease_for
from apicredits.db import Database

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_one_leader_then_a_successor(postgres_url: str) -> None:
    a_db, b_db = Database(postgres_url), Database(postgres_url)  # two workers, two pools
    try:
        a, b = lease_for(a_db, "indexer-1337-0xvault"), lease_for(b_db, "indexer-1337-0xvault")
        assert isinstance(a, PostgresLease)
        assert await a.hold()
        assert await a.hold()  # still the leader on the next poll
        assert not await b.hold()
        other = lease_for(b_db, "indexer-1337-0xother")  # another vault: its own election
        assert await other.hold()
        await other.release()
        await a.release()
        assert await b.hold()  # the follower takes over once the leader lets go
        assert not await a.hold()
        await b.release()
    finally:
        await a_db.aclose()
        await b_db.aclose()


async def test_a_leader_whose_session_dies_is_succeeded(postgres_url: str) -> None:
    a_db, b_db = Database(postgres_url), Database(postgres_url)
    try:
        a, b = PostgresLease(a_db, "indexer"), PostgresLease(b_db, "indexer")
        assert await a.hold()
        assert not await b.hold()
        assert a._conn is not None
        await a._conn.invalidate()  # the leader's process dies: PostgreSQL ends its session
        assert await b.hold()
        assert not await a.hold()  # the old leader notices and stands down
        await b.release()
    finally:
        await a_db.aclose()
        await b_db.aclose()
