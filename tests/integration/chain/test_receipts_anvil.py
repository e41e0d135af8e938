"""Usage receipts and settlement on a real anvil (Prague, EIP-2537): the full suite from
``deploy``, three oracles registered with proofs of possession, a 2-of-3 receipt, lines paid
one by one and in a batch. Keys, signatures, messages and trees come from
``apicredits.oracle``, so this also holds the off-chain encodings to the contracts. Pairings
are milliseconds here (about a second each in py-evm), and the gas figures come from real
receipts; they are printed for the benchmarks (``pytest -s``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils import keccak

from apicredits.chain import Chain, Deployment, TransactionReverted, deploy, deposit_test_funds
from apicredits.chain.rpc import RpcChain
from apicredits.oracle.bls import CURVE_ORDER, OracleKey, aggregate_signatures
from apicredits.oracle.merkle import MerkleTree
from apicredits.oracle.messages import SETTLEMENT_LINE_TYPES, EpochSummary
from apicredits.oracle.records import EpochRecord

pytestmark = pytest.mark.integration

WINDOW = 3600
PROVIDER_ID = b"provider-anvil".ljust(32, b"\0")
Line = tuple[int, str, bytes, int, int]


def oracle_key(label: str) -> OracleKey:
    seed = int.from_bytes(hashlib.sha256(label.encode()).digest()) % CURVE_ORDER
    return OracleKey.from_bytes(seed.to_bytes(32))


def tree_of(lines: list[Line]) -> MerkleTree:
    return MerkleTree.build(SETTLEMENT_LINE_TYPES, lines)


@dataclass
class Suite:
    chain: Chain
    d: Deployment
    oracles: list[OracleKey]
    payout: str
    tenants: list[str]
    gas: dict[str, int]
    records: dict[int, EpochRecord]

    def receipts(self, fn: str, *args: object) -> int:
        return self.chain.transact(self.d.receipts, "usage_receipts", fn, *args).gas_used

    def submit(
        self,
        epoch: int,
        lines: list[Line],
        signer_indexes: list[int],
        signed_by: list[int] | None = None,
    ) -> int:
        tree = tree_of(lines)
        summary = EpochSummary(
            chain_id=self.chain.chain_id,
            receipts_contract=self.d.receipts,
            epoch=epoch,
            events_root=keccak(b"events-%d" % epoch),
            lines_root=tree.root,
            line_count=len(lines),
            total_micro=sum(line[3] for line in lines),
        )
        header = (epoch, summary.events_root, tree.root, len(lines), summary.total_micro)
        on_chain = self.chain.call(self.d.receipts, "usage_receipts", "epoch_message", *header)
        assert bytes.fromhex(on_chain.removeprefix("0x")) == summary.message()
        signing = [self.oracles[i] for i in (signed_by or signer_indexes)]
        signature = aggregate_signatures(key.sign(summary.message()) for key in signing)
        bitmap = sum(1 << i for i in signer_indexes)
        keys = b"".join(self.oracles[i].public_key for i in signer_indexes)
        receipt = self.chain.transact(
            self.d.receipts, "usage_receipts", "submit_epoch", *header, bitmap, keys, signature
        )
        (logged,) = self.chain.receipt_events(receipt, "usage_receipts", "EpochSubmitted")
        record = EpochRecord.from_log(logged.args)
        stored = self.chain.call(self.d.receipts, "usage_receipts", "commitment", epoch)
        assert stored == "0x" + record.commitment().hex()
        assert record.submitted_at == self.chain.block_timestamp(receipt.block_number)
        self.records[epoch] = record
        return receipt.gas_used

    def execute(
        self, tree: MerkleTree, lines: list[Line], index: int, record: EpochRecord | None = None
    ) -> int:
        epoch, *line = lines[index]
        receipt = self.chain.transact(
            self.d.treasury,
            "settlement_treasury",
            "execute_line",
            epoch,
            (record or self.records[epoch]).values(),
            *line,
            tree.proof(index),
        )
        return receipt.gas_used


@pytest.fixture
def suite(anvil_url: str, tmp_path: Path) -> Iterator[Suite]:
    chain = RpcChain(anvil_url)
    try:
        d = deploy(
            chain,
            withdraw_delay_seconds=WINDOW,
            dispute_window_seconds=WINDOW,
            path=tmp_path / "deployment.json",
        )
        admin, payout, *tenants = chain.accounts[1:5]
        chain.transact(
            d.address("provider_registry"),
            "provider_registry",
            "register",
            PROVIDER_ID,
            admin,
            payout,
            sender=admin,
        )
        for tenant in tenants:
            deposit_test_funds(chain, d, tenant=tenant, amount=50_000_000)
        oracles = [oracle_key(f"anvil-oracle-{i}") for i in range(3)]
        gas: dict[str, int] = {}
        s = Suite(chain, d, oracles, payout, tenants, gas, {})
        for i, oracle in enumerate(oracles):
            gas[f"register_oracle[{i}]"] = s.receipts(
                "register_oracle", oracle.public_key, oracle.proof_of_possession()
            )
        s.receipts("set_threshold", 2)
        yield s
    finally:
        chain.close()


def balance(s: Suite, who: str) -> int:
    return int(s.chain.call(s.d.stablecoin, "test_stablecoin", "balanceOf", who))


def test_a_2_of_3_receipt_settles_two_lines(suite: Suite) -> None:
    s = suite
    a, b = s.tenants
    lines = [
        (1, a, PROVIDER_ID, 7_000_000, 70_000),
        (1, b, PROVIDER_ID, 3_000_000, 0),
        (1, a, b"other".ljust(32, b"\0"), 1, 0),
    ]
    tree = tree_of(lines)
    s.gas["submit_epoch (2 of 3)"] = s.submit(1, lines, [0, 2])
    assert s.chain.call(s.d.receipts, "usage_receipts", "next_epoch") == 2
    with pytest.raises(TransactionReverted, match="dispute window not passed"):
        s.execute(tree, lines, 0)
    s.chain.time_travel(WINDOW)
    s.chain.mine(1)
    early = EpochRecord(*s.records[1].values()[:5], 0b11)  # other signers
    with pytest.raises(TransactionReverted, match="epoch record does not match the receipt"):
        s.execute(tree, lines, 0, early)
    fees = s.d.deployer
    before = balance(s, s.payout), balance(s, fees), balance(s, s.d.vault)
    s.gas["execute_line (first)"] = s.execute(tree, lines, 0)
    s.gas["execute_line (second)"] = s.execute(tree, lines, 1)
    after = balance(s, s.payout), balance(s, fees), balance(s, s.d.vault)
    assert after[0] - before[0] == 6_930_000 + 3_000_000
    assert after[1] - before[1] == 70_000
    assert before[2] - after[2] == 10_000_000
    assert s.chain.call(s.d.address("credit_token"), "credit_token", "balanceOf", a) == 43_000_000
    with pytest.raises(TransactionReverted, match="already executed"):
        s.execute(tree, lines, 1)

    s.gas["submit_epoch (3 of 3)"] = s.submit(2, lines[:1], [0, 1, 2])

    many = [(3, tenant, PROVIDER_ID, 100_000 + i, 1_000) for i in range(5) for tenant in (a, b)]
    s.submit(3, many, [1, 2])
    s.chain.time_travel(WINDOW)
    s.chain.mine(1)
    batch_tree = tree_of(many)
    batch = s.chain.transact(
        s.d.treasury,
        "settlement_treasury",
        "execute_lines",
        3,
        s.records[3].values(),
        [line[1:] for line in many],
        [batch_tree.proof(i) for i in range(len(many))],
    ).gas_used
    s.gas[f"execute_lines ({len(many)} lines, per line)"] = batch // len(many)
    print()
    for name, used in s.gas.items():
        print(f"gas {name}: {used}")


def test_a_signature_of_other_oracles_or_a_removed_one_is_refused(suite: Suite) -> None:
    s = suite
    lines = [(1, s.tenants[0], PROVIDER_ID, 1_000, 0)]
    with pytest.raises(TransactionReverted, match="invalid signature"):
        s.submit(1, lines, [0, 2], signed_by=[0, 1])
    s.receipts("remove_oracle", 2)
    with pytest.raises(TransactionReverted, match="not an active oracle"):
        s.submit(1, lines, [0, 2])
    s.submit(1, lines, [0, 1])


def test_a_voided_epoch_pays_nothing_and_the_window_ends_voiding(suite: Suite) -> None:
    s = suite
    lines = [(1, s.tenants[0], PROVIDER_ID, 1_000, 0), (1, s.tenants[1], PROVIDER_ID, 2_000, 0)]
    tree = tree_of(lines)
    s.submit(1, lines, [1, 2])
    s.receipts("void_epoch", 1, s.records[1].values())
    s.chain.time_travel(WINDOW)
    s.chain.mine(1)
    with pytest.raises(TransactionReverted, match="epoch is void"):
        s.execute(tree, lines, 0)

    again = [(2, *line[1:]) for line in lines]
    s.submit(2, again, [0, 1])
    s.chain.time_travel(WINDOW)
    s.chain.mine(1)
    with pytest.raises(TransactionReverted, match="dispute window closed"):
        s.receipts("void_epoch", 2, s.records[2].values())
    s.execute(tree_of(again), again, 1)
