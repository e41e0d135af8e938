"""The services one gateway process runs with, built from ``Settings``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apicredits.auth.authenticator import CapabilityAuthenticator
from apicredits.auth.authority import CapabilityAuthority
from apicredits.auth.issuer import TokenIssuer
from apicredits.auth.store import QUOTE_RING, KeyRingStore
from apicredits.db import Database, upgrade
from apicredits.ledger import Ledger
from apicredits.limits import RateLimiter, create_rate_limiter
from apicredits.settings import Settings
from apicredits.tariffs import QuoteSigner, default_tariff
from apicredits.tariffs.store import TariffStore
from apicredits.tenants import Directory
from apicredits.tenants.services import Services

if TYPE_CHECKING:  # the chain loads eth-account and, embedded, the EVM: imported on use
    from apicredits.chain.runtime import ChainRuntime


def chain_configured(settings: Settings) -> bool:
    """A deployment file is named or one exists under ``<data dir>/chain`` (cheap: no chain
    code is imported to tell)."""
    if settings.chain_deployment_file is not None:
        return True
    return any((settings.data_dir / "chain").glob("deployment-*.json"))


@dataclass
class Runtime:
    settings: Settings
    db: Database
    ledger: Ledger
    directory: Directory
    tariffs: TariffStore
    quote_signer: QuoteSigner
    limiter: RateLimiter
    authority: CapabilityAuthority
    authenticator: CapabilityAuthenticator
    services: Services
    token_issuer: TokenIssuer
    admin_token: str
    chain: ChainRuntime | None = None  # on-chain deposits, when a deployment is configured

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url, pool_size=settings.db_pool_size)
        chain: ChainRuntime | None = None
        try:
            await upgrade(db)
            ledger = Ledger(db)
            await ledger.open_system_accounts()
            tariffs = TariffStore(db)
            if not (await tariffs.book()).versions():
                await tariffs.add(default_tariff())
            if settings.tariff_file is not None:
                text = await asyncio.to_thread(Path(settings.tariff_file).read_text, "utf-8")
                await tariffs.add_toml(text)
            if chain_configured(settings):
                from apicredits.chain.runtime import open_chain

                chain = await open_chain(settings, ledger)
            authority = CapabilityAuthority(db, settings)
            await authority.start()
            # Quotes are signed with a key from the database, so a quote priced by one replica
            # locks on any other.
            quote_keys = KeyRingStore(
                db, overlap_seconds=settings.signing_key_overlap_seconds, ring_id=QUOTE_RING
            )
            _, quote_ring = await quote_keys.load_or_create()
        except BaseException:
            if chain is not None:
                chain.close()
            await db.aclose()
            raise
        directory = Directory(db, ledger)
        services = Services(directory)
        if chain is not None:  # the indexing worker also publishes the signing keys on chain
            chain.signing_keys = lambda: (authority.ring_version, authority.key_ring)
        authenticator = CapabilityAuthenticator(
            authority, directory, cache_seconds=settings.auth_cache_seconds
        )
        return cls(
            settings=settings,
            db=db,
            ledger=ledger,
            directory=directory,
            tariffs=tariffs,
            quote_signer=QuoteSigner(quote_ring.current.private_key),
            limiter=create_rate_limiter(settings.redis_url, prefix=settings.redis_prefix),
            authority=authority,
            authenticator=authenticator,
            services=services,
            token_issuer=TokenIssuer(
                authority, authenticator, services, default_ttl=settings.token_ttl_seconds
            ),
            admin_token=settings.resolve_admin_token(),
            chain=chain,
        )

    async def close(self) -> None:
        if self.chain is not None:
            self.chain.close()
        await self.authority.aclose()
        await self.limiter.aclose()
        await self.db.aclose()
