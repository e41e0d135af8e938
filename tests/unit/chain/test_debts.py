"""Reorg debts: a reversed deposit the tenant had spent is taken back as far as its credits
go, and the rest is recovered from its next deposits, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from apicredits.chain.debts import outstanding, recover_debts, reverse_what_is_left
from apicredits.chain.embedded import EmbeddedChain
from apicredits.db.schema import chain_debt_repayments, chain_debts
from apicredits.ledger import PLATFORM_REVENUE_ACCOUNT, WORLD_ACCOUNT, Move
from chain_support import Books, books, deployed, indexer, pay_in

pytestmark = pytest.mark.anyio


async def spend(b: Books, amount: int, n: int = 0) -> None:
    await b.ledger.move(f"spend-{n}", b.account, PLATFORM_REVENUE_ACCOUNT, amount)


async def owed(b: Books) -> list[tuple[str, int]]:
    return (await b.db.read(lambda c: outstanding(c, [b.tenant_id]))).get(b.tenant_id, [])


async def test_a_reorged_deposit_already_spent_becomes_a_debt_the_next_deposit_repays(
    tmp_path: Path,
) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        idx = indexer(chain, b, d)
        pay_in(chain, d, b.wallet, 100)
        await idx.sync()
        fork_point = chain.snapshot()
        pay_in(chain, d, b.wallet, 50)
        await idx.sync()
        await spend(b, 120)  # 30 left, 20 of them backed by the deposit about to vanish
        chain.revert(fork_point)
        chain.mine(2)
        report = await idx.sync()
        assert report.reversed == 1
        assert await b.available() == 0  # the 30 left went back
        [(debt_id, debt)] = await owed(b)
        assert debt == 20
        assert debt_id.startswith("chain-debt:chain:")
        history = await b.ledger.history(b.account)
        reversal = [t for t in history if t.id.startswith("chain-reorg:")]
        assert [t.amount for t in reversal] == [30]

        pay_in(chain, d, b.wallet, 50)  # the next deposit repays the 20 first
        await idx.sync()
        assert await b.available() == 30
        assert await owed(b) == []
        repaid = [t for t in await b.ledger.history(b.account) if ":repay:" in t.id]
        assert [(t.amount, t.credit_account_id) for t in repaid] == [(20, WORLD_ACCOUNT)]
        await idx.sync()  # nothing more to collect
        assert await b.available() == 30


async def test_a_deposit_smaller_than_the_debt_repays_part_of_it(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        idx = indexer(chain, b, d)
        fork_point = chain.snapshot()
        pay_in(chain, d, b.wallet, 80)
        await idx.sync()
        await spend(b, 80)
        chain.revert(fork_point)
        chain.mine(2)
        await idx.sync()
        assert [debt for _, debt in await owed(b)] == [80]
        pay_in(chain, d, b.wallet, 30)
        await idx.sync()
        assert [debt for _, debt in await owed(b)] == [50]
        assert await b.available() == 0
        pay_in(chain, d, b.wallet, 70)
        await idx.sync()
        assert await owed(b) == []
        assert await b.available() == 20


async def test_replays_after_a_crash_neither_double_reverse_nor_double_collect(
    tmp_path: Path,
) -> None:
    async with books(tmp_path, "0x" + "11" * 20) as b:
        await b.ledger.deposit("d-1", b.account, 100)
        await spend(b, 60)
        reversal = Move("chain-reorg:chain:1:0xab:0", b.account, WORLD_ACCOUNT, 100)
        assert await reverse_what_is_left(b.ledger, b.db, reversal, b.tenant_id) == 60
        # The same reversal again (the bookkeeping write was lost): nothing moves twice.
        assert await reverse_what_is_left(b.ledger, b.db, reversal, b.tenant_id) == 60
        assert await b.available() == 0
        assert [debt for _, debt in await owed(b)] == [60]
        rows = await b.db.read(lambda c: c.execute(select(func.count()).select_from(chain_debts)))
        assert rows.scalar() == 1

        await b.ledger.deposit("d-2", b.account, 100)
        credited = [(b.tenant_id, "d-2", 100)]
        await recover_debts(b.ledger, b.db, credited)
        await recover_debts(b.ledger, b.db, credited)  # replayed: the same Move, once
        assert await b.available() == 40
        assert await owed(b) == []
        count = select(func.count()).select_from(chain_debt_repayments)
        assert (await b.db.read(lambda c: c.execute(count))).scalar() == 1


async def test_a_recovery_the_tenant_cannot_cover_is_withdrawn_and_stays_owed(
    tmp_path: Path,
) -> None:
    async with books(tmp_path, "0x" + "11" * 20) as b:
        await b.ledger.deposit("d-1", b.account, 50)
        await spend(b, 50)
        reversal = Move("chain-reorg:chain:1:0xcd:0", b.account, WORLD_ACCOUNT, 50)
        assert await reverse_what_is_left(b.ledger, b.db, reversal, b.tenant_id) == 50
        await b.ledger.deposit("d-2", b.account, 40)
        await spend(b, 35, n=1)  # spent before the indexer collected: only 5 left
        assert await recover_debts(b.ledger, b.db, [(b.tenant_id, "d-2", 40)]) == 0
        assert [debt for _, debt in await owed(b)] == [50]
        assert await b.available() == 5


async def test_a_tenant_without_debts_keeps_its_whole_deposit(tmp_path: Path) -> None:
    async with books(tmp_path, "0x" + "11" * 20) as b:
        await b.ledger.deposit("d-1", b.account, 50)
        assert await recover_debts(b.ledger, b.db, [(b.tenant_id, "d-1", 50)]) == 0
        assert await b.available() == 50
