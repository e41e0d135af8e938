"""The vault indexer: exactly once, confirmations, withdrawals, reorgs, batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apicredits.chain import Cursor, Indexer, Wallets
from apicredits.chain.embedded import EmbeddedChain
from apicredits.ledger import TransferKind
from chain_support import books, deployed, indexer, pay_in

pytestmark = pytest.mark.anyio


async def test_a_deposit_is_credited_exactly_once(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 2_500_000)
        first = await indexer(chain, b, d).sync()
        again = await indexer(chain, b, d).sync()
        assert (first.applied, again.applied) == (1, 0)
        assert await b.available() == 2_500_000
        [transfer] = await b.ledger.history(b.account)
        assert transfer.kind == TransferKind.DEPOSIT
        assert transfer.id.startswith("chain:1337:0x")
        assert json.loads(transfer.memo)["source"] == "chain"


async def test_replaying_a_range_after_a_crash_does_not_double_count(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 100)
        idx = indexer(chain, b, d)
        events = chain.events(d.vault, "credit_vault", ["Deposit"], 0, chain.block_number())
        commands = [idx._command(e, f"chain:1337:{e.tx_hash}:{e.log_index}", b.tenant_id, 100)
                    for e in events]  # fmt: skip
        await b.ledger.execute_many(commands)  # the ledger batch landed, then the process died
        await idx.sync()
        assert await b.available() == 100


async def test_confirmations_hold_events_back(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 100)
        idx = indexer(chain, b, d, confirmations=2)
        assert (await idx.sync()).applied == 0
        chain.mine(1)
        assert (await idx.sync()).applied == 0
        chain.mine(1)
        assert (await idx.sync()).applied == 1
        assert await b.available() == 100


async def test_withdraw_debits_and_unlinked_wallets_are_recorded(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain, withdraw_delay_seconds=10)
    stranger = chain.accounts[3]
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 1_000)
        pay_in(chain, d, stranger, 7)
        chain.transact(d.vault, "credit_vault", "request_withdrawal", 400, sender=b.wallet)
        chain.time_travel(11)
        chain.transact(d.vault, "credit_vault", "withdraw", sender=b.wallet)
        report = await indexer(chain, b, d).sync()
        assert report.applied == 3
        assert await b.available() == 600
        assert await Wallets(b.db).unassigned_micro([stranger]) == 7


async def test_linking_a_wallet_later_credits_its_unassigned_events_once(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain, withdraw_delay_seconds=10)
    late = chain.accounts[3]
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, late, 500)
        chain.transact(d.vault, "credit_vault", "request_withdrawal", 200, sender=late)
        chain.time_travel(11)
        chain.transact(d.vault, "credit_vault", "withdraw", sender=late)
        idx = indexer(chain, b, d)
        assert (await idx.sync()).assigned == 0
        assert await b.available() == 0
        await Wallets(b.db).link(b.tenant_id, late)
        assert await Wallets(b.db).unassigned_micro([late]) == 500
        assert (await idx.sync()).assigned == 2  # the deposit, then the withdrawal
        assert (await indexer(chain, b, d).sync()).assigned == 0
        assert await b.available() == 300
        assert await Wallets(b.db).unassigned_micro([late]) == 0
        [deposit, withdrawal] = await b.ledger.history(b.account)
        assert json.loads(deposit.memo)["assigned_on_link"] == late
        assert withdrawal.kind == TransferKind.MOVE


async def test_a_wallet_linked_mid_pass_is_credited_before_its_newer_events(
    tmp_path: Path,
) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain, withdraw_delay_seconds=10)
    late = chain.accounts[3]
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, late, 500)
        idx = indexer(chain, b, d)
        await idx.sync()  # unassigned
        chain.transact(d.vault, "credit_vault", "request_withdrawal", 200, sender=late)
        chain.time_travel(11)
        chain.transact(d.vault, "credit_vault", "withdraw", sender=late)
        await Wallets(b.db).link(b.tenant_id, late)
        # the link lands after this pass looked for claims, before it read the new events
        await idx._apply(
            chain.events(d.vault, "credit_vault", ["Withdraw"], 0, chain.block_number()),
            Cursor(chain.block_number(), str(chain.block_hash(chain.block_number()))),
        )
        assert await b.available() == 300  # the withdrawal was not refused


async def test_two_indexers_on_one_vault_count_each_event_once(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 100)
        first, second = indexer(chain, b, d), indexer(chain, b, d)
        events = chain.events(d.vault, "credit_vault", ["Deposit"], 0, chain.block_number())
        end = Cursor(chain.block_number(), str(chain.block_hash(chain.block_number())))
        await first.sync()
        # the second read the old cursor before the first recorded the range
        await second._apply(events, end)
        await second.sync()
        assert await b.available() == 100
        assert len(await b.ledger.history(b.account)) == 1


async def test_a_reorg_reverses_a_counted_deposit(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        pay_in(chain, d, b.wallet, 100)
        idx = indexer(chain, b, d)
        await idx.sync()
        fork_point = chain.snapshot()
        pay_in(chain, d, b.wallet, 50)
        await idx.sync()
        assert await b.available() == 150
        chain.revert(fork_point)  # the 50 never happened
        chain.mine(2)
        report = await idx.sync()
        assert report.reversed == 1
        assert await b.available() == 100
        kinds = [t.id.split(":")[0] for t in await b.ledger.history(b.account)]
        assert kinds == ["chain", "chain", "chain-reorg"]
        # the same deposit mined again (a new transaction) counts again, once
        pay_in(chain, d, b.wallet, 50)
        await idx.sync()
        await idx.sync()
        assert await b.available() == 150


async def test_a_transaction_reincluded_after_a_reorg_counts_again(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        idx = indexer(chain, b, d)
        fork_point = chain.snapshot()
        pay_in(chain, d, b.wallet, 70)
        await idx.sync()
        chain.revert(fork_point)
        chain.time_travel(5)  # the same transactions, mined in other blocks
        pay_in(chain, d, b.wallet, 70)
        await idx.sync()
        assert await b.available() == 70
        ids = [t.id for t in await b.ledger.history(b.account)]
        assert ids[0].count(":") == 3
        assert ids[1] == "chain-reorg:" + ids[0]
        assert ids[2] == ids[0] + ":1"


async def test_many_deposits_are_indexed_in_batches(tmp_path: Path) -> None:
    chain = EmbeddedChain(None)
    d = deployed(chain)
    async with books(tmp_path, chain.accounts[1]) as b:
        for i in range(30):
            pay_in(chain, d, b.wallet, i + 1)
        report = await Indexer(chain, b.ledger, d, batch_blocks=7).sync()
        assert report.applied == 30
        assert await b.available() == sum(range(1, 31))
        assert report.cursor is not None
        assert report.cursor.block_number == chain.block_number()
