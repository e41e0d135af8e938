"""``ChainRuntime``: the chain a gateway serves (its deployment) and the indexer it runs.

``open_chain`` finds the deployment (``APICREDITS_CHAIN_DEPLOYMENT_FILE``, else the default
file of the configured chain under the data directory) and connects to its chain; the
gateway's lifespan runs ``ChainRuntime.run`` as a background task. Of several workers
sharing a ledger, the one holding the indexer's ``Lease`` indexes; the others wait to take
over. ``wake`` starts a pass now (e.g. after a wallet is linked) instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from apicredits.auth.keys import KeyRing
from apicredits.chain.base import Chain
from apicredits.chain.connect import confirmations, connect, deployment_path
from apicredits.chain.deployment import Deployment, load_deployment
from apicredits.chain.election import lease_for
from apicredits.chain.indexer import Indexer
from apicredits.chain.key_publication import publish_key_ring
from apicredits.ledger import Ledger
from apicredits.settings import Settings

log = logging.getLogger(__name__)

FOLLOWER_POLLS = 5  # a follower tries the lease every this many polls


@dataclass
class ChainRuntime:
    chain: Chain
    deployment: Deployment
    deployment_file: Path
    indexer: Indexer
    poll_seconds: float
    leading: bool = False
    # The gateway's signing keys (version, ring), published on chain by the leader.
    signing_keys: Callable[[], tuple[int, KeyRing]] | None = None
    _published_keys: int = -1
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Index while this worker holds the lease; otherwise wait to take it over."""
        d = self.deployment
        lease = lease_for(self.indexer.db, f"indexer-{d.chain_id}-{d.vault}")
        try:
            while True:
                try:
                    leading = await lease.hold()
                except Exception:
                    log.exception("chain indexer election failed; will retry")
                    leading = False
                if leading != self.leading:
                    self.leading = leading
                    if leading:
                        log.info("this worker indexes vault %s on chain %d", d.vault, d.chain_id)
                if leading:
                    try:
                        await self.indexer.sync()
                    except Exception:
                        log.exception("chain indexer pass failed; will retry")
                    await self._publish_keys()
                await self._sleep(self.poll_seconds * (1 if leading else FOLLOWER_POLLS))
        finally:
            self.leading = False
            await lease.release()

    async def _publish_keys(self) -> None:
        if self.signing_keys is None:
            return
        version, ring = self.signing_keys()
        if version == self._published_keys:
            return
        try:
            await asyncio.to_thread(publish_key_ring, self.chain, self.deployment, ring)
            self._published_keys = version
        except Exception:
            log.exception("publishing signing keys on chain failed; will retry")

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def close(self) -> None:
        self.chain.close()


async def open_chain(settings: Settings, ledger: Ledger) -> ChainRuntime | None:
    """The configured chain and deployment; None if the chain has no deployment file (only
    when none was named: a named deployment file must exist and match its chain)."""
    chain = await asyncio.to_thread(connect, settings)
    try:
        path = deployment_path(settings, chain.chain_id)
        if settings.chain_deployment_file is None and not path.exists():
            log.info("no deployment on chain %d at %s", chain.chain_id, path)
            chain.close()
            return None
        deployment = load_deployment(path, chain_id=chain.chain_id)
    except BaseException:
        chain.close()
        raise
    indexer = Indexer(chain, ledger, deployment, confirmations=confirmations(settings))
    return ChainRuntime(chain, deployment, path, indexer, settings.chain_poll_seconds)
