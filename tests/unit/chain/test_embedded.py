"""The embedded chain: contracts, logs, reverts, and its journal across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicredits.chain import TransactionReverted, WrongChain
from apicredits.chain.embedded import EmbeddedChain
from chain_support import deployed, pay_in


@pytest.fixture
def chain(tmp_path: Path) -> EmbeddedChain:
    return EmbeddedChain(tmp_path / "chain.sqlite3")


def test_deploy_call_transact_and_logs(chain: EmbeddedChain) -> None:
    d = deployed(chain)
    wallet = chain.accounts[1]
    pay_in(chain, d, wallet, 5_000_000)
    assert chain.call(d.vault, "credit_vault", "available", wallet) == 5_000_000
    assert chain.call(d.stablecoin, "test_stablecoin", "decimals") == 6
    [log] = chain.logs(d.vault, "credit_vault", "Deposit", 0, chain.block_number())
    assert log.args == {"tenant": wallet, "payer": wallet, "amount": 5_000_000}
    assert (log.chain_id, log.block_hash) == (1337, chain.block_hash(log.block_number))
    assert chain.logs(d.vault, "credit_vault", "Deposit", 0, log.block_number - 1) == []


def test_a_revert_carries_its_reason_and_mines_nothing(chain: EmbeddedChain) -> None:
    d = deployed(chain)
    head = chain.block_number()
    with pytest.raises(TransactionReverted, match="amount is zero"):
        chain.transact(d.vault, "credit_vault", "deposit", chain.accounts[1], 0)
    assert chain.block_number() == head


def test_receipts_carry_gas_and_decoded_events(chain: EmbeddedChain) -> None:
    d = deployed(chain)
    coin, wallet = d.stablecoin, chain.accounts[2]
    chain.transact(coin, "test_stablecoin", "mint", wallet, 10, sender=d.deployer)
    chain.transact(coin, "test_stablecoin", "approve", d.vault, 10, sender=wallet)
    receipt = chain.transact(d.vault, "credit_vault", "deposit", wallet, 10, sender=wallet)
    assert 60_000 < receipt.gas_used < 200_000
    [event] = chain.receipt_events(receipt, "credit_vault", "Deposit")
    assert event.args["amount"] == 10
    assert event.tx_hash == receipt.tx_hash


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite3"
    first = EmbeddedChain(path)
    d = deployed(first)
    pay_in(first, d, first.accounts[1], 7)
    first.time_travel(3600)
    first.mine(3)
    head, head_hash, ts = first.block_number(), first.block_hash(first.block_number()), 0
    ts = first.block_timestamp()
    first.close()
    again = EmbeddedChain(path)
    assert (again.block_number(), again.block_hash(head), again.block_timestamp()) == (
        head, head_hash, ts)  # fmt: skip
    assert again.call(d.vault, "credit_vault", "available", again.accounts[1]) == 7
    assert len(again.logs(d.vault, "credit_vault", "Deposit", 0, head)) == 1
    pay_in(again, d, again.accounts[1], 3)  # nonces and state carry on
    assert again.call(d.vault, "credit_vault", "available", again.accounts[1]) == 10


def test_two_handles_on_one_journal_see_each_other(tmp_path: Path) -> None:
    one, two = EmbeddedChain(tmp_path / "c"), EmbeddedChain(tmp_path / "c")
    d = deployed(one)
    pay_in(two, d, two.accounts[1], 5)
    pay_in(one, d, one.accounts[1], 6)
    assert two.call(d.vault, "credit_vault", "available", two.accounts[1]) == 11


def test_time_travel_moves_block_time(chain: EmbeddedChain) -> None:
    d = deployed(chain, withdraw_delay_seconds=100)
    wallet = chain.accounts[1]
    pay_in(chain, d, wallet, 50)
    chain.transact(d.vault, "credit_vault", "request_withdrawal", 50, sender=wallet)
    with pytest.raises(TransactionReverted, match="delay not passed"):
        chain.transact(d.vault, "credit_vault", "withdraw", sender=wallet)
    chain.time_travel(101)
    chain.transact(d.vault, "credit_vault", "withdraw", sender=wallet)
    assert chain.call(d.stablecoin, "test_stablecoin", "balanceOf", wallet) == 50


def test_revert_to_a_snapshot_forks_the_chain(chain: EmbeddedChain) -> None:
    d = deployed(chain)
    snapshot = chain.snapshot()
    pay_in(chain, d, chain.accounts[1], 5)
    orphan = chain.block_hash(snapshot + 1)
    chain.revert(snapshot)
    assert chain.block_number() == snapshot
    assert chain.call(d.vault, "credit_vault", "available", chain.accounts[1]) == 0
    chain.mine()
    assert chain.block_hash(snapshot + 1) not in (None, orphan)


def test_another_chain_id_in_the_same_file_is_refused(tmp_path: Path) -> None:
    EmbeddedChain(tmp_path / "c").close()
    with pytest.raises(WrongChain):
        EmbeddedChain(tmp_path / "c", chain_id=5)


def test_own_artifacts_can_be_plugged_in(tmp_path: Path) -> None:
    from vyper.compiler import compile_code

    source = "@external\n@view\ndef answer() -> uint256:\n    return 42\n"
    out = compile_code(source, output_formats=["abi", "bytecode"])
    chain = EmbeddedChain(None, artifacts=lambda name: out)
    address = chain.deploy("answer")
    assert chain.call(address, "answer", "answer") == 42
