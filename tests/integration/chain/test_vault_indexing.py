"""Deposit -> indexer -> ledger, the same on the embedded chain and on anvil; a reorg on
anvil (evm_snapshot/evm_revert) that removes a counted deposit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apicredits.chain import Chain, ChainUnavailable
from apicredits.chain.embedded import EmbeddedChain
from apicredits.chain.rpc import RpcChain
from apicredits.ledger import PLATFORM_REVENUE_ACCOUNT
from chain_support import books, deployed, indexer, pay_in

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    if request.param == "embedded":
        backend: Chain = EmbeddedChain(None)
    else:
        backend = RpcChain(request.getfixturevalue("anvil_url"))
    try:
        yield backend
    finally:
        backend.close()


async def test_deposit_reaches_the_ledger(chain: Chain, tmp_path: Path) -> None:
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 3_000_000)
        pay_in(chain, d, b.wallet, 1_000_000)
        idx = indexer(chain, b, d, confirmations=1)
        chain.mine(1)
        assert (await idx.sync()).applied == 2
        assert (await idx.sync()).applied == 0
        assert await b.available() == 4_000_000
        assert chain.call(d.vault, "credit_vault", "available", b.wallet) == 4_000_000


async def test_an_anvil_reorg_reverses_a_counted_deposit(anvil_url: str, tmp_path: Path) -> None:
    chain = RpcChain(anvil_url)
    try:
        d = deployed(chain)
        async with books(tmp_path, chain.accounts[2]) as b:
            pay_in(chain, d, b.wallet, 100)
            idx = indexer(chain, b, d)
            await idx.sync()
            snapshot = chain.snapshot()
            pay_in(chain, d, b.wallet, 40)
            await idx.sync()
            assert await b.available() == 140
            chain.revert(snapshot)
            chain.time_travel(3)  # new blocks, new hashes
            chain.mine(2)
            report = await idx.sync()
            assert report.reversed == 1
            assert await b.available() == 100
    finally:
        chain.close()


async def test_an_anvil_reorg_of_a_spent_deposit_leaves_a_debt_the_next_one_repays(
    anvil_url: str, tmp_path: Path
) -> None:
    chain = RpcChain(anvil_url)
    try:
        d = deployed(chain)
        async with books(tmp_path, chain.accounts[3]) as b:
            idx = indexer(chain, b, d)
            pay_in(chain, d, b.wallet, 100)
            await idx.sync()
            snapshot = chain.snapshot()
            pay_in(chain, d, b.wallet, 40)
            await idx.sync()
            await b.ledger.move("spend", b.account, PLATFORM_REVENUE_ACCOUNT, 130)
            chain.revert(snapshot)
            chain.time_travel(3)
            chain.mine(2)
            assert (await idx.sync()).reversed == 1
            assert await b.available() == 0  # 10 taken back, 30 owed
            pay_in(chain, d, b.wallet, 50)
            await idx.sync()
            assert await b.available() == 20
    finally:
        chain.close()


def test_an_unreachable_node_is_a_clear_error() -> None:
    with pytest.raises(ChainUnavailable, match="apicredits chain up"):
        RpcChain("http://127.0.0.1:9")
