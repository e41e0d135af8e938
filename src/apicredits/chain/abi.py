"""``ContractInterface``: ABI encoding and decoding of one compiled contract.

Both backends speak raw calldata and raw logs through this class (eth-abi underneath), so
the embedded chain and JSON-RPC decode events and revert reasons exactly alike, and filter
logs by the same topics (``topic_filter``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import EncodingError
from eth_utils.abi import (
    collapse_if_tuple,
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
)
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from apicredits.chain.errors import ChainError

_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


def abi_hash(abi: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the ABI's canonical JSON (sorted keys, no spaces): what a deployment pins."""
    canonical = json.dumps(list(abi), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _types(params: Sequence[Mapping[str, Any]]) -> list[str]:
    return [collapse_if_tuple(dict(p)) for p in params]


def _plain(value: Any) -> Any:
    """eth-abi output made JSON-friendly: checksum addresses, 0x hex bytes, lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def _dynamic(kind: str) -> bool:
    return kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("(")


TopicFilter = tuple[tuple[bytes, ...] | None, ...]
"""Topics 1, 2, ... of a log query: each None (any value) or the values it may take."""


def encode_topic(kind: str, value: Any) -> bytes:
    """The 32-byte topic an indexed argument of ABI type ``kind`` has when it is ``value``:
    a value type ABI-encoded (uint/int/address/bool left-padded, bytesN right-padded, so
    bytes32 as is), a string or bytes hashed with keccak256, as the EVM logs them. Bytes
    may be given as 0x-hex. Raises ``ValueError`` for a value that is not a ``kind``."""
    if kind.startswith("bytes") and isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        return keccak(value.encode())
    if kind == "bytes":
        if not isinstance(value, bytes | bytearray):
            raise ValueError(f"{value!r} is not bytes")
        return keccak(bytes(value))
    if _dynamic(kind):
        raise ValueError(f"filtering by an indexed {kind} is not supported")
    try:
        return encode([kind], [value])
    except EncodingError as exc:
        raise ValueError(str(exc)) from None


def revert_reason(data: bytes) -> str:
    """The human reason inside revert data (Error(string), Panic(uint256) or raw hex)."""
    if data[:4] == _ERROR_SELECTOR:
        try:
            return str(decode(["string"], data[4:])[0])
        except Exception:  # malformed revert data: show it raw
            return "0x" + data.hex()
    if data[:4] == _PANIC_SELECTOR and len(data) >= 36:
        return f"panic 0x{int.from_bytes(data[4:36], 'big'):02x}"
    return "0x" + data.hex() if data else ""


@dataclass(frozen=True)
class ContractInterface:
    name: str
    abi: tuple[Mapping[str, Any], ...]
    bytecode: bytes

    @classmethod
    def from_artifact(cls, name: str, artifact: Mapping[str, Any]) -> ContractInterface:
        code = str(artifact.get("bytecode", ""))
        return cls(name, tuple(artifact["abi"]), bytes.fromhex(code.removeprefix("0x")))

    @cached_property
    def abi_hash(self) -> str:
        return abi_hash(self.abi)

    @cached_property
    def _functions(self) -> dict[str, Mapping[str, Any]]:
        return {e["name"]: e for e in self.abi if e.get("type") == "function"}

    @cached_property
    def _events(self) -> dict[str, Mapping[str, Any]]:
        return {e["name"]: e for e in self.abi if e.get("type") == "event"}

    def _function(self, fn: str) -> Mapping[str, Any]:
        try:
            return self._functions[fn]
        except KeyError:
            raise ChainError(f"{self.name} has no function {fn}") from None

    def _event(self, event: str) -> Mapping[str, Any]:
        try:
            return self._events[event]
        except KeyError:
            raise ChainError(f"{self.name} has no event {event}") from None

    def deploy_data(self, *args: Any) -> bytes:
        ctor = next((e for e in self.abi if e.get("type") == "constructor"), None)
        inputs = _types(ctor["inputs"]) if ctor else []
        return self.bytecode + (encode(inputs, list(args)) if inputs else b"")

    def call_data(self, fn: str, *args: Any) -> bytes:
        entry = self._function(fn)
        selector = function_abi_to_4byte_selector(dict(entry))  # type: ignore[arg-type]
        return selector + encode(_types(entry["inputs"]), list(args))

    def decode_output(self, fn: str, data: bytes) -> Any:
        """A call's return value: one value as itself, several as a tuple, none as None."""
        outputs = _types(self._function(fn).get("outputs", []))
        if not outputs:
            return None
        values = tuple(_plain(v) for v in decode(outputs, data))
        return values[0] if len(values) == 1 else values

    def is_view(self, fn: str) -> bool:
        return self._function(fn).get("stateMutability") in ("view", "pure")

    def topic(self, event: str) -> bytes:
        return event_abi_to_log_topic(dict(self._event(event)))  # type: ignore[arg-type]

    def decode_event(self, event: str, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """The named arguments of one log of ``event`` (topic 0 already matched)."""
        inputs = self._event(event)["inputs"]
        indexed = [p for p in inputs if p.get("indexed")]
        plain = [p for p in inputs if not p.get("indexed")]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            kind = collapse_if_tuple(dict(param))
            args[param["name"]] = (
                "0x" + topic.hex() if _dynamic(kind) else _plain(decode([kind], topic)[0])
            )
        for param, value in zip(plain, decode(_types(plain), data), strict=True):
            args[param["name"]] = _plain(value)
        return args

    def topic_filter(self, event: str, where: Mapping[str, Any]) -> TopicFilter:
        """Topics 1.. of a query for the ``event`` logs whose indexed arguments have the
        values ``where`` gives (a list, tuple or set of values: any of them), trailing
        wildcards dropped. A name that is not an indexed input of ``event`` is refused."""
        indexed = [p for p in self._event(event)["inputs"] if p.get("indexed")]
        position = {p["name"]: i for i, p in enumerate(indexed)}
        for name in where:
            if name not in position:
                names = ", ".join(position) or "none"
                raise ChainError(
                    f"{self.name}.{event} has no indexed input {name!r} (indexed: {names})",
                    event=event,
                    name=name,
                )
        topics: list[tuple[bytes, ...] | None] = [None] * len(indexed)
        for name, value in where.items():
            param = indexed[position[name]]
            kind = collapse_if_tuple(dict(param))
            values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
            if not values:
                raise ChainError(f"{self.name}.{event}: no value given for {name!r}", name=name)
            try:
                encoded = tuple(dict.fromkeys(encode_topic(kind, v) for v in values))
            except ValueError as exc:
                raise ChainError(
                    f"{self.name}.{event}: {name}={value!r} is not a {kind} ({exc})", name=name
                ) from None
            topics[position[name]] = encoded
        while topics and topics[-1] is None:
            topics.pop()
        return tuple(topics)
