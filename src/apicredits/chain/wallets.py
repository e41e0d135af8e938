"""``Wallets``: which tenant an on-chain address funds (the vault's ``tenant`` argument).

Vault events for an address nobody has linked yet are recorded as ``unassigned``; linking
the address later makes the indexer apply them to the tenant on its next pass, once."""

from __future__ import annotations

import time
from collections.abc import Iterable

from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from apicredits.db.engine import Database
from apicredits.db.schema import chain_events, tenant_wallets, tenants
from apicredits.errors import Conflict, InvalidInput, NotFound


def checksum(address: str) -> str:
    if not is_address(address):
        raise InvalidInput(f"not an address: {address!r}", field="address")
    return to_checksum_address(address)


def tenants_of(conn: Connection, addresses: Iterable[str]) -> dict[str, str]:
    """address -> tenant id, for the linked ones among ``addresses``."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    stmt = select(tenant_wallets.c.address, tenant_wallets.c.tenant_id).where(
        tenant_wallets.c.address.in_(wanted)
    )
    return {row.address: row.tenant_id for row in conn.execute(stmt)}


class Wallets:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def link(self, tenant_id: str, address: str) -> str:
        """Deposits to ``address`` credit ``tenant_id`` from now on (one tenant per address).
        Linking the same pair again is a no-op."""
        address = checksum(address)

        def work(conn: Connection) -> str | None:
            if conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
                raise NotFound(f"tenant {tenant_id} does not exist", tenant_id=tenant_id)
            owner = tenants_of(conn, [address]).get(address)
            if owner is None:
                row = {"address": address, "tenant_id": tenant_id,
                       "created_at_us": time.time_ns() // 1000}  # fmt: skip
                conn.execute(tenant_wallets.insert(), row)
            return owner

        try:
            owner = await self.db.write(work)
        except IntegrityError:  # linked by someone else meanwhile
            owner = await self.tenant_of(address)
        if owner not in (None, tenant_id):
            raise Conflict(f"{address} already funds tenant {owner}", address=address)
        return address

    async def tenant_of(self, address: str) -> str | None:
        address = checksum(address)
        return (await self.db.read(lambda c: tenants_of(c, [address]))).get(address)

    async def addresses(self, tenant_id: str) -> list[str]:
        stmt = select(tenant_wallets.c.address).where(tenant_wallets.c.tenant_id == tenant_id)
        rows = await self.db.read(lambda c: c.execute(stmt.order_by("address")).all())
        return [r.address for r in rows]

    async def unassigned_micro(self, addresses: Iterable[str]) -> int:
        """Deposits to ``addresses`` recorded before they were linked and not applied yet
        (the indexer's next pass credits them)."""
        wanted = sorted(set(addresses))
        if not wanted:
            return 0
        stmt = select(chain_events.c.amount).where(
            chain_events.c.address.in_(wanted),
            chain_events.c.status == "unassigned",
            chain_events.c.event == "Deposit",
            chain_events.c.reversal_id.is_(None),
        )
        rows = await self.db.read(lambda c: c.execute(stmt).all())
        return sum(int(r.amount) for r in rows)
