"""``Chain``: the one interface every chain backend implements.

Methods are synchronous. The embedded backend is CPU-bound Python (py-evm) that must not
run on the event loop, and web3.py's sync provider is its most mature one; async callers
(the gateway, the indexer) run chain work with ``asyncio.to_thread``. Each backend
serialises its own calls with a lock, so one instance may be shared across threads.

Transactions are mined one per block and wait for their receipt (anvil's automine, and the
embedded chain's rule), so ``transact`` returns a final ``Receipt`` or raises
``TransactionReverted``.

Log queries filter by event (topic 0) and by indexed arguments (``where``, encoded by the
contract's ABI), and never ask a backend for more than ``max_log_range`` blocks at once:
a wider range is read in consecutive chunks (``logs_in_chunks``), halved when the node
refuses one as too large.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from apicredits.chain.abi import ContractInterface, TopicFilter
from apicredits.chain.errors import ChainError, LogRangeTooLarge

ArtifactLoader = Callable[[str], Mapping[str, Any]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RawLog:
    address: str  # checksum
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: str  # 0x-hex
    tx_hash: str
    log_index: int  # within its block


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    gas_used: int
    status: int  # 1 = success (a failed transaction raises instead)
    logs: tuple[RawLog, ...] = ()
    contract_address: str | None = None


@dataclass(frozen=True, slots=True)
class EventLog:
    chain_id: int
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    event: str
    args: Mapping[str, Any]


def default_artifacts(name: str) -> Mapping[str, Any]:
    """The shipped artifact ``apicredits/chain/artifacts/<name>.json`` (what
    ``apicredits.chain.build`` writes), read without loading the compiler."""
    resource = resources.files("apicredits.chain").joinpath("artifacts", f"{name}.json")
    try:
        artifact: Mapping[str, Any] = json.loads(resource.read_text("utf-8"))
    except FileNotFoundError:
        raise ChainError(f"no compiled contract named {name!r}") from None
    return artifact


def logs_in_chunks(
    query: Callable[[int, int], Sequence[T]], from_block: int, to_block: int, max_range: int | None
) -> list[T]:
    """``query(lo, hi)`` over consecutive chunks of ``from_block``..``to_block`` of at most
    ``max_range`` blocks (None: one query), results concatenated in block order. A chunk
    refused with ``LogRangeTooLarge`` is halved and retried, and the smaller size kept for
    the rest of the range; a single block refused raises."""
    if max_range is not None and max_range < 1:
        raise ValueError(f"max_range must be at least 1, not {max_range}")
    span = max_range or max(to_block - from_block + 1, 1)
    found: list[T] = []
    lo = from_block
    while lo <= to_block:
        hi = min(lo + span - 1, to_block)
        try:
            found.extend(query(lo, hi))
        except LogRangeTooLarge:
            if hi == lo:
                raise
            span = (hi - lo + 1) // 2
            continue
        lo = hi + 1
    return found


class Chain(abc.ABC):
    chain_id: int
    max_log_range: int | None = None
    """The most blocks one backend log query spans (None: no limit)."""

    def __init__(self, artifacts: ArtifactLoader | None = None) -> None:
        self._load_artifact = artifacts or default_artifacts
        self._interfaces: dict[str, ContractInterface] = {}
        self._lock = threading.RLock()

    def interface(self, artifact_name: str) -> ContractInterface:
        found = self._interfaces.get(artifact_name)
        if found is None:
            found = ContractInterface.from_artifact(
                artifact_name, self._load_artifact(artifact_name)
            )
            self._interfaces[artifact_name] = found
        return found

    # -- accounts
    @property
    @abc.abstractmethod
    def accounts(self) -> list[str]:
        """Funded accounts this backend can send from; the first is the default sender."""

    @property
    def default_sender(self) -> str:
        return self.accounts[0]

    # -- blocks
    @abc.abstractmethod
    def block_number(self) -> int: ...

    @abc.abstractmethod
    def block_hash(self, number: int) -> str | None:
        """The hash of block ``number``, or None if the chain is not that long."""

    @abc.abstractmethod
    def block_timestamp(self, number: int | None = None) -> int: ...

    @abc.abstractmethod
    def time_travel(self, seconds: int) -> None:
        """Move the clock of the next block forward (local chains only)."""

    @abc.abstractmethod
    def mine(self, blocks: int = 1) -> None:
        """Mine empty blocks (local chains only)."""

    def snapshot(self) -> int:
        """Remember the chain's state; ``revert`` to it later (local chains only)."""
        raise ChainError(f"{type(self).__name__} cannot take snapshots")

    def revert(self, snapshot_id: int) -> None:
        raise ChainError(f"{type(self).__name__} cannot revert to snapshots")

    # -- contracts
    @abc.abstractmethod
    def deploy(self, artifact_name: str, *args: Any, sender: str | None = None) -> str:
        """Deploy a contract; returns its checksum address."""

    @abc.abstractmethod
    def call(
        self, address: str, artifact_name: str, fn: str, *args: Any, sender: str | None = None
    ) -> Any:
        """Run ``fn`` read-only against the latest block; returns its decoded output."""

    @abc.abstractmethod
    def transact(
        self, address: str, artifact_name: str, fn: str, *args: Any, sender: str | None = None
    ) -> Receipt: ...

    def raw_logs(
        self,
        address: str,
        topics: Sequence[bytes],
        from_block: int,
        to_block: int,
        *,
        indexed: TopicFilter = (),
    ) -> list[RawLog]:
        """Logs of ``address`` whose topic 0 is one of ``topics`` and whose topic ``i + 1`` is
        one of ``indexed[i]`` (None: any), in chain order; read ``max_log_range`` blocks at a
        time (see ``logs_in_chunks``)."""
        return logs_in_chunks(
            lambda lo, hi: self._query_logs(address, topics, indexed, lo, hi),
            from_block,
            to_block,
            self.max_log_range,
        )

    @abc.abstractmethod
    def _query_logs(
        self,
        address: str,
        topics: Sequence[bytes],
        indexed: TopicFilter,
        from_block: int,
        to_block: int,
    ) -> list[RawLog]:
        """One backend query of ``raw_logs`` (at most ``max_log_range`` blocks), in chain
        order; raises ``LogRangeTooLarge`` when the node refuses the range as too large."""

    def events(
        self,
        address: str,
        artifact_name: str,
        event_names: Sequence[str],
        from_block: int,
        to_block: int,
        *,
        where: Mapping[str, Any] | None = None,
    ) -> list[EventLog]:
        """Decoded logs of several events of one contract, in chain order. ``where`` keeps
        those whose indexed arguments have the values it names (a list, tuple or set: any
        of them), filtered by the node; each named event must index them alike."""
        iface = self.interface(artifact_name)
        by_topic = {iface.topic(name): name for name in event_names}
        indexed: TopicFilter = ()
        if where:
            filters = {iface.topic_filter(name, where) for name in event_names}
            if len(filters) > 1:
                raise ChainError(
                    f"{', '.join(event_names)} do not index {', '.join(where)} alike; "
                    "query them one by one"
                )
            indexed = filters.pop() if filters else ()
        out = []
        for log in self.raw_logs(address, list(by_topic), from_block, to_block, indexed=indexed):
            name = by_topic[log.topics[0]]
            args = iface.decode_event(name, log.topics, log.data)
            out.append(
                EventLog(self.chain_id, log.block_number, log.block_hash, log.tx_hash,
                         log.log_index, name, args)
            )  # fmt: skip
        return out

    def logs(
        self,
        address: str,
        artifact_name: str,
        event_name: str,
        from_block: int,
        to_block: int,
        *,
        where: Mapping[str, Any] | None = None,
    ) -> list[EventLog]:
        """Decoded ``event_name`` logs, in chain order (``where``: as in ``events``)."""
        return self.events(address, artifact_name, [event_name], from_block, to_block, where=where)

    def receipt_events(self, receipt: Receipt, artifact_name: str, event: str) -> list[EventLog]:
        """The ``event`` logs a receipt carries (of any contract with that ABI)."""
        iface = self.interface(artifact_name)
        topic = iface.topic(event)
        return [
            EventLog(self.chain_id, log.block_number, log.block_hash, log.tx_hash,
                     log.log_index, event, iface.decode_event(event, log.topics, log.data))
            for log in receipt.logs
            if log.topics and log.topics[0] == topic
        ]  # fmt: skip

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections."""
