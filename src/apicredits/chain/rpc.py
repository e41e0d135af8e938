"""``RpcChain``: anvil or a real network over JSON-RPC (web3.py, HTTP).

Transactions are signed here with local keys (the configured deployer, plus anvil's dev
accounts when the node is chain 31337), gas is estimated first (so a revert is reported
with its reason and nothing is sent), and ``transact`` waits for the receipt.

Providers cap ``eth_getLogs`` (block ranges of 2,000-10,000, results of about 10,000): a log
query spans at most ``max_log_range`` blocks per call (``APICREDITS_CHAIN_LOG_RANGE``), and
a call the node refuses as too large (``_range_refused``, or HTTP 413) is retried on half
the range.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound, Web3RPCError

from apicredits.chain.abi import TopicFilter, revert_reason
from apicredits.chain.base import ArtifactLoader, Chain, RawLog, Receipt
from apicredits.chain.errors import (
    HOW_TO_START_ANVIL,
    ChainError,
    ChainUnavailable,
    LogRangeTooLarge,
    TransactionReverted,
    WrongChain,
)
from apicredits.chain.keys import ANVIL_CHAIN_ID, dev_accounts

T = TypeVar("T")

DEFAULT_MAX_LOG_RANGE = 5_000
# How providers say an eth_getLogs range or result is too large: -32005 "limit exceeded"
# (Infura, geth: "query returned more than 10000 results"), Alchemy's "Log response size
# exceeded", "block range is too wide/large", "exceed maximum block range: 5000", ...
_RANGE_ERROR_CODES = frozenset({-32005})
_RANGE_ERROR = re.compile(
    r"more than \d+ results|too many (results|logs|blocks)|response size|block range"
    r"|range (is )?too (large|wide|big)|max(imum)? (block )?range|blocks? distance"
    r"|limit exceeded|query exceeds",
    re.IGNORECASE,
)


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex() if not isinstance(value, str) else value


def _reason(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) > 2:
        return revert_reason(bytes.fromhex(data[2:]))
    message = str(exc.args[0] if exc.args else exc)
    return message.removeprefix("execution reverted: ").removeprefix("execution reverted")


def _range_refused(error: Mapping[str, Any]) -> bool:
    """Whether a JSON-RPC error object says the log query asked for too much."""
    return error.get("code") in _RANGE_ERROR_CODES or bool(
        _RANGE_ERROR.search(str(error.get("message", "")))
    )


def _topic_position(values: Sequence[bytes] | None) -> str | list[str] | None:
    if values is None:
        return None
    return _hex(values[0]) if len(values) == 1 else [_hex(v) for v in values]


class RpcChain(Chain):
    def __init__(
        self,
        url: str,
        *,
        chain_id: int | None = None,
        signer: LocalAccount | None = None,
        artifacts: ArtifactLoader | None = None,
        receipt_timeout_seconds: float = 120.0,
        max_log_range: int | None = DEFAULT_MAX_LOG_RANGE,
    ) -> None:
        """``chain_id``: the id the node must report (None: whatever it reports);
        ``max_log_range``: the most blocks one ``eth_getLogs`` spans (None: no limit)."""
        super().__init__(artifacts)
        if max_log_range is not None and max_log_range < 1:
            raise ChainError(f"max_log_range must be at least 1 block, not {max_log_range}")
        self.max_log_range = max_log_range
        self.url = url
        self._session = requests.Session()
        provider = HTTPProvider(
            url,
            request_kwargs={"timeout": 30},
            session=self._session,
            exception_retry_configuration=None,  # fail fast; callers retry
        )
        self.w3 = Web3(provider)
        self._receipt_timeout = receipt_timeout_seconds
        try:
            actual = self._rpc(lambda: int(self.w3.eth.chain_id))
            if chain_id is not None and actual != chain_id:
                raise WrongChain(chain_id, actual, f"the node at {url}")
            keys = [signer] if signer is not None else []
            if actual == ANVIL_CHAIN_ID:
                keys += [a for a in dev_accounts() if signer is None or a.address != signer.address]
            if not keys:
                raise ChainError(
                    f"no key to send transactions on chain {actual}: set "
                    "APICREDITS_CHAIN_KEYFILE (+ password) or APICREDITS_CHAIN_PRIVATE_KEY"
                )
        except ChainError:
            self._session.close()
            raise
        self.chain_id = actual
        self._keys = {k.address: k for k in keys}
        self._nonces: dict[str, int] = {}

    def _rpc(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except OSError as exc:
            raise ChainUnavailable(
                f"cannot reach the chain node at {self.url} ({type(exc).__name__}); "
                + HOW_TO_START_ANVIL
            ) from None

    def _raw(self, method: str, *params: Any) -> Any:
        response = self._rpc(lambda: self.w3.provider.make_request(method, list(params)))  # type: ignore[arg-type]
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error']}")
        return response.get("result")

    @property
    def accounts(self) -> list[str]:
        return list(self._keys)

    # -- blocks
    def block_number(self) -> int:
        return self._rpc(lambda: int(self.w3.eth.block_number))

    def block_hash(self, number: int) -> str | None:
        try:
            block = self._rpc(lambda: self.w3.eth.get_block(number))
        except BlockNotFound:
            return None
        return _hex(block["hash"])

    def block_timestamp(self, number: int | None = None) -> int:
        block = self._rpc(lambda: self.w3.eth.get_block("latest" if number is None else number))
        return int(block["timestamp"])

    def time_travel(self, seconds: int) -> None:
        self._raw("evm_increaseTime", int(seconds))

    def mine(self, blocks: int = 1) -> None:
        self._raw("anvil_mine", hex(blocks))

    def snapshot(self) -> int:
        return int(self._raw("evm_snapshot"), 16)

    def revert(self, snapshot_id: int) -> None:
        if not self._raw("evm_revert", hex(snapshot_id)):
            raise ChainError(f"the node has no snapshot {snapshot_id}")
        self._nonces.clear()

    # -- contracts
    def deploy(self, artifact_name: str, *args: Any, sender: str | None = None) -> str:
        data = self.interface(artifact_name).deploy_data(*args)
        receipt = self._send(sender, None, data, artifact_name)
        assert receipt.contract_address is not None
        return receipt.contract_address

    def transact(
        self, address: str, artifact_name: str, fn: str, *args: Any, sender: str | None = None
    ) -> Receipt:
        data = self.interface(artifact_name).call_data(fn, *args)
        return self._send(sender, to_checksum_address(address), data, f"{artifact_name}.{fn}")

    def call(
        self, address: str, artifact_name: str, fn: str, *args: Any, sender: str | None = None
    ) -> Any:
        iface = self.interface(artifact_name)
        tx = {"to": to_checksum_address(address), "data": _hex(iface.call_data(fn, *args))}
        if sender is not None:
            tx["from"] = sender
        try:
            out = self._rpc(lambda: self.w3.eth.call(tx))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            raise TransactionReverted(f"{artifact_name}.{fn}", _reason(exc)) from None
        return iface.decode_output(fn, bytes(out))

    def _send(self, sender: str | None, to: str | None, data: bytes, fn: str) -> Receipt:
        sender = to_checksum_address(sender or self.default_sender)
        key = self._keys.get(sender)
        if key is None:
            raise ChainError(f"no key for sender {sender} on chain {self.chain_id}")
        tx: dict[str, Any] = {"from": sender, "data": _hex(data), "chainId": self.chain_id}
        if to is not None:
            tx["to"] = to
        with self._lock:
            try:
                tx["gas"] = self._rpc(lambda: self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
            except (ContractLogicError, Web3RPCError) as exc:
                raise TransactionReverted(fn, _reason(exc)) from None
            tx["gas"] = tx["gas"] * 6 // 5 + 10_000
            base = int(self._rpc(lambda: self.w3.eth.get_block("latest")).get("baseFeePerGas", 0))
            tip = self._rpc(lambda: int(self.w3.eth.max_priority_fee))
            tx.update(maxPriorityFeePerGas=tip, maxFeePerGas=2 * base + tip)
            nonce = self._nonces.get(sender)
            if nonce is None:
                nonce = self._rpc(lambda: self.w3.eth.get_transaction_count(sender, "pending"))
            tx["nonce"] = nonce
            raw = key.sign_transaction(tx).raw_transaction
            try:
                tx_hash = self._rpc(lambda: self.w3.eth.send_raw_transaction(raw))
            except Web3RPCError:
                self._nonces.pop(sender, None)
                raise
            self._nonces[sender] = nonce + 1
        receipt = self._wait(HexBytes(tx_hash))
        if int(receipt["status"]) != 1:
            raise TransactionReverted(fn, "status 0", _hex(tx_hash))
        return Receipt(
            _hex(receipt["transactionHash"]),
            int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
            1,
            tuple(self._log(g) for g in receipt["logs"]),
            receipt.get("contractAddress"),
        )

    def _wait(self, tx_hash: HexBytes) -> Any:
        deadline = time.monotonic() + self._receipt_timeout
        delay = 0.002
        while True:
            try:
                return self._rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise ChainError(f"no receipt for {tx_hash.to_0x_hex()} in time") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @staticmethod
    def _log(g: Any) -> RawLog:
        return RawLog(
            to_checksum_address(g["address"]),
            tuple(bytes(t) for t in g["topics"]),
            bytes(g["data"]),
            int(g["blockNumber"]),
            _hex(g["blockHash"]),
            _hex(g["transactionHash"]),
            int(g["logIndex"]),
        )

    def _query_logs(
        self,
        address: str,
        topics: Sequence[bytes],
        indexed: TopicFilter,
        from_block: int,
        to_block: int,
    ) -> list[RawLog]:
        query = {
            "address": to_checksum_address(address),
            "topics": [[_hex(t) for t in topics], *(_topic_position(v) for v in indexed)],
            "fromBlock": from_block,
            "toBlock": to_block,
        }

        def get_logs() -> Any:
            try:
                return self.w3.eth.get_logs(query)  # type: ignore[arg-type]
            except requests.HTTPError as exc:
                # Some gateways refuse an oversized query at the HTTP layer instead.
                status = exc.response.status_code if exc.response is not None else None
                text = exc.response.text[:200] if exc.response is not None else ""
                if status == 413 or (status in (400, 422) and _RANGE_ERROR.search(text)):
                    why = f"HTTP {status} {text}".strip()
                    raise LogRangeTooLarge(from_block, to_block, why) from None
                raise

        try:
            found = self._rpc(get_logs)
        except Web3RPCError as exc:
            found_error = (exc.rpc_response or {}).get("error")
            error: Mapping[str, Any] = (
                found_error if isinstance(found_error, Mapping) else {"message": exc.message}
            )
            if _range_refused(error):
                raise LogRangeTooLarge(from_block, to_block, str(error.get("message"))) from None
            raise ChainError(f"eth_getLogs failed: {error.get('message')}") from None
        return sorted((self._log(g) for g in found), key=lambda g: (g.block_number, g.log_index))

    def close(self) -> None:
        self._session.close()
