"""``EmbeddedChain``: an EVM (titanoboa on py-evm, Prague fork) inside this process.

Persistence is a journal, not a state dump: every block (its number, timestamp and
transactions) is appended to a SQLite file and fsync'd before the call returns; opening
the chain replays the journal on the same fixed genesis (the dev accounts, funded) with the
recorded timestamps, which rebuilds the exact state, and the recorded logs serve ``logs()``
without replay. Replay checks every deployment lands where it did, so a journal that no
longer replays (e.g. other contract bytecode) fails loudly instead of drifting. Several
processes may share one journal: each catches up on blocks the others appended before it
reads or writes, and writes are serialised by SQLite's write lock.

Rules that make it a small chain: one transaction per block (automine); reverted
transactions are never mined (as a failed gas estimate on RPC); log queries span any number
of blocks (``max_log_range`` None: SQLite serves them from an index); block time is the wall
clock plus ``time_travel`` offsets, always increasing; gas is execution gas plus the
intrinsic cost, minus capped refunds, close to (not exactly) a node's receipt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boa
from boa.util.abi import Address
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from apicredits.chain.abi import TopicFilter, revert_reason
from apicredits.chain.base import ArtifactLoader, Chain, RawLog, Receipt
from apicredits.chain.errors import ChainError, TransactionReverted, WrongChain
from apicredits.chain.journal import Journal, JournalBlock, JournalLog, JournalTx
from apicredits.chain.keys import dev_accounts

EMBEDDED_CHAIN_ID = 1337
DEV_BALANCE_WEI = 10_000 * 10**18


def _new_env(chain_id: int, accounts: Sequence[str]) -> Any:
    env = boa.Env()
    # boa wraps the opcode table shared by every Env with tracers bound to the newest Env;
    # give this Env its own plain table and take its layer off the shared one, so many
    # chains in one process neither slow each other down nor keep each other alive.
    computation = env.evm.vm.state.computation_class
    shared = computation.opcodes
    own = dict(shared)
    for opcode, inner in ((0x20, "sha3"), (0x55, "sstore")):
        op = shared[opcode]
        shared[opcode] = getattr(op, inner, op)
        while hasattr(op, inner):
            op = getattr(op, inner)
        own[opcode] = op
    computation.opcodes = own
    env.evm.patch.chain_id = chain_id
    for account in accounts:
        env.set_balance(Address(account), DEV_BALANCE_WEI)
    return env


def _intrinsic_gas(data: bytes, create: bool) -> int:
    zeros = data.count(0)
    return 21_000 + (32_000 if create else 0) + 4 * zeros + 16 * (len(data) - zeros)


class EmbeddedChain(Chain):
    def __init__(
        self,
        path: Path | None = None,
        *,
        chain_id: int = EMBEDDED_CHAIN_ID,
        artifacts: ArtifactLoader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``path``: the journal file (None: in memory, gone with the process)."""
        super().__init__(artifacts)
        self.chain_id = chain_id
        self._clock = clock
        self._accounts = [a.address for a in dev_accounts()]
        self._journal = Journal(path)
        with self._journal.writing():
            stored = self._journal.meta("chain_id")
            if stored is None:
                self._journal.set_meta("chain_id", str(chain_id))
                now = int(clock())
                genesis = keccak(b"apicredits/embedded" + chain_id.to_bytes(32, "big"))
                self._journal.append(JournalBlock(0, "0x" + genesis.hex(), now))
            elif int(stored) != chain_id:
                raise WrongChain(chain_id, int(stored), f"embedded chain {path}")
        self._rebuild()

    @property
    def accounts(self) -> list[str]:
        return list(self._accounts)

    # -- state: replay of the journal
    def _rebuild(self) -> None:
        self._env = _new_env(self.chain_id, self._accounts)
        self._head, self._head_hash, self._ts = -1, "", 0
        self._catch_up()

    def _catch_up(self) -> None:
        if self._head >= 0 and self._journal.block(self._head) != (self._head_hash, self._ts):
            self._rebuild()  # another process reverted this chain below our head
            return
        for block in self._journal.blocks(after=self._head):
            for tx in block.txs:
                self._env.evm.reset_access_counters()  # warm/cold sets are per transaction
                _, address, _, error = self._execute(block.number, block.timestamp, tx)
                if error is not None or address != tx.contract_address:
                    raise ChainError(
                        f"embedded chain journal does not replay at block {block.number} "
                        f"(tx {tx.tx_hash}); move the chain directory away to start afresh"
                    )
            self._head, self._head_hash, self._ts = block.number, block.hash, block.timestamp

    def _execute(
        self, number: int, timestamp: int, tx: JournalTx
    ) -> tuple[Any, str | None, list[tuple[str, tuple[bytes, ...], bytes]], str | None]:
        """Run one transaction in block ``number``: (computation, contract address, logs,
        revert reason or None)."""
        env = self._env
        env.evm.patch.block_number = number
        env.evm.patch.timestamp = timestamp
        sender = Address(tx.sender)
        created: str | None = None
        if tx.kind == "deploy":
            target, computation = env.deploy(sender=sender, bytecode=tx.data, value=tx.value)
            created = to_checksum_address(str(target))
        else:
            env.evm.vm.state.increment_nonce(sender.canonical_address)
            computation = env.execute_code(
                to_address=Address(tx.to_address), sender=sender, data=tx.data, value=tx.value
            )
        if computation.is_error:
            return computation, created, [], revert_reason(bytes(computation.output or b""))
        logs: list[tuple[str, tuple[bytes, ...], bytes]] = [
            (to_checksum_address(address), tuple(t.to_bytes(32, "big") for t in topics), data)
            for _, address, topics, data in computation.get_raw_log_entries()
        ]
        return computation, created, logs, None

    def _mine(self, kind: str, sender: str, to: str | None, data: bytes, fn: str) -> Receipt:
        with self._lock:
            state = self._env.evm.vm.state
            saved = (self._head, self._head_hash, self._ts)
            snapshot = None
            try:
                with self._journal.writing():
                    self._catch_up()
                    self._env.evm.reset_access_counters()
                    snapshot = state.snapshot()
                    nonce = state.get_nonce(Address(sender).canonical_address)
                    tx_hash = keccak(
                        self.chain_id.to_bytes(32, "big") + bytes.fromhex(sender[2:])
                        + nonce.to_bytes(32, "big") + bytes.fromhex((to or "0x")[2:]) + data
                    )  # fmt: skip
                    tx = JournalTx("0x" + tx_hash.hex(), kind, sender, to, data, 0, 0, None)
                    number, timestamp = self._head + 1, self._next_timestamp()
                    computation, created, raw, error = self._execute(number, timestamp, tx)
                    if error is not None:
                        raise TransactionReverted(fn, error)
                    refund = min(computation.get_gas_refund(), computation.get_gas_used() // 5)
                    gas = _intrinsic_gas(data, kind == "deploy") + computation.get_gas_used()
                    tx = JournalTx(tx.tx_hash, kind, sender, to, data, 0, gas - refund, created)
                    logs = tuple(
                        JournalLog(i, tx.tx_hash, a, t, d) for i, (a, t, d) in enumerate(raw)
                    )
                    block = self._block(number, timestamp, (tx,), logs)
                    self._journal.append(block)
            except BaseException:
                if snapshot is not None:
                    state.revert(snapshot)
                self._head, self._head_hash, self._ts = saved
                raise
            state.commit(snapshot)
            self._head, self._head_hash, self._ts = number, block.hash, timestamp
            return Receipt(
                tx.tx_hash, number, tx.gas_used, 1,
                tuple(RawLog(g.address, g.topics, g.data, number, block.hash, g.tx_hash,
                             g.log_index) for g in logs),
                created,
            )  # fmt: skip

    def _block(
        self, number: int, timestamp: int, txs: tuple[JournalTx, ...], logs: tuple[JournalLog, ...]
    ) -> JournalBlock:
        epoch = int(self._journal.meta("epoch") or 0)  # bumped by every revert
        preimage = bytes.fromhex(self._head_hash[2:]) + b"".join(
            n.to_bytes(32, "big") for n in (number, timestamp, epoch)
        )
        preimage += b"".join(bytes.fromhex(t.tx_hash[2:]) for t in txs)
        return JournalBlock(number, "0x" + keccak(preimage).hex(), timestamp, txs, logs)

    def _next_timestamp(self) -> int:
        offset = int(self._journal.meta("time_offset") or 0)
        not_before = int(self._journal.meta("not_before") or 0)
        return max(self._ts + 1, int(self._clock()) + offset, not_before)

    # -- Chain
    def block_number(self) -> int:
        with self._lock:
            self._catch_up()
            return self._head

    def block_hash(self, number: int) -> str | None:
        with self._lock:
            found = self._journal.block(number)
            return None if found is None else found[0]

    def block_timestamp(self, number: int | None = None) -> int:
        with self._lock:
            found = self._journal.block(self._journal.head() if number is None else number)
            if found is None:
                raise ChainError(f"block {number} does not exist")
            return found[1]

    def time_travel(self, seconds: int) -> None:
        with self._lock, self._journal.writing():
            self._catch_up()
            offset = int(self._journal.meta("time_offset") or 0)
            self._journal.set_meta("time_offset", str(offset + int(seconds)))
            self._journal.set_meta("not_before", str(self._ts + int(seconds)))

    def mine(self, blocks: int = 1) -> None:
        with self._lock, self._journal.writing():
            self._catch_up()
            for _ in range(blocks):
                block = self._block(self._head + 1, self._next_timestamp(), (), ())
                self._journal.append(block)
                self._head, self._head_hash, self._ts = block.number, block.hash, block.timestamp

    def snapshot(self) -> int:
        return self.block_number()

    def revert(self, snapshot_id: int) -> None:
        """Drop every block above ``snapshot_id`` (a reorg, as far as indexers can tell)."""
        with self._lock:
            with self._journal.writing():
                self._journal.truncate(snapshot_id)
                epoch = int(self._journal.meta("epoch") or 0)
                self._journal.set_meta("epoch", str(epoch + 1))
            self._rebuild()

    def deploy(self, artifact_name: str, *args: Any, sender: str | None = None) -> str:
        data = self.interface(artifact_name).deploy_data(*args)
        receipt = self._mine("deploy", sender or self.default_sender, None, data, artifact_name)
        assert receipt.contract_address is not None
        return receipt.contract_address

    def transact(
        self, address: str, artifact_name: str, fn: str, *args: Any, sender: str | None = None
    ) -> Receipt:
        data = self.interface(artifact_name).call_data(fn, *args)
        to = to_checksum_address(address)
        return self._mine("call", sender or self.default_sender, to, data, f"{artifact_name}.{fn}")

    def call(
        self, address: str, artifact_name: str, fn: str, *args: Any, sender: str | None = None
    ) -> Any:
        iface = self.interface(artifact_name)
        with self._lock:
            self._catch_up()
            env = self._env
            env.evm.patch.block_number, env.evm.patch.timestamp = self._head, self._ts
            snapshot = env.evm.vm.state.snapshot()
            try:
                computation = env.execute_code(
                    to_address=Address(address),
                    sender=Address(sender or self.default_sender),
                    data=iface.call_data(fn, *args),
                    is_modifying=False,
                )
            finally:
                env.evm.vm.state.revert(snapshot)
        if computation.is_error:
            raise TransactionReverted(f"{artifact_name}.{fn}", revert_reason(computation.output))
        return iface.decode_output(fn, bytes(computation.output))

    def _query_logs(
        self,
        address: str,
        topics: Sequence[bytes],
        indexed: TopicFilter,
        from_block: int,
        to_block: int,
    ) -> list[RawLog]:
        with self._lock:
            rows = self._journal.logs(
                to_checksum_address(address), topics, from_block, to_block, indexed
            )
        return [
            RawLog(addr, tuple(blob[i : i + 32] for i in range(0, len(blob), 32)), bytes(data),
                   number, block_hash, tx_hash, index)
            for number, block_hash, index, tx_hash, addr, blob, data in rows
        ]  # fmt: skip

    def close(self) -> None:
        self._journal.close()
