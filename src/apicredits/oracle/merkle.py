"""Merkle trees laid out exactly like OpenZeppelin's ``StandardMerkleTree``.

A leaf is ``keccak256(keccak256(abi.encode(values...)))``; an inner node hashes its two
children in sorted order, ``keccak256(min(a, b) ++ max(a, b))``; the leaves are sorted by
hash; and the tree is one array with the root at 0, the children of node i at 2i+1 and 2i+2,
and the sorted leaves at the end in reverse. So ``root`` and ``proof(i)`` are what
``StandardMerkleTree.of(values, types)`` in ``@openzeppelin/merkle-tree`` gives for the same
values, and a proof verifies with OpenZeppelin's ``MerkleProof.verify`` or snekmate's
``merkle_proof_verification``.

Building is the oracle's hot path (an epoch may hold a million usage events): values of static
ABI types are encoded without eth-abi, and the hashing runs over flat buffers in the C
extension ``apicredits.oracle._keccak`` (built by ``pip install``; it releases the GIL, so an
``Executor`` of threads spreads the leaves over cores). Without it the same work runs in
Python (about four times slower) with the fastest keccak installed: ``safe-pysha3``, else
pycryptodome's; a process pool then spreads it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_checksum_address

from apicredits.oracle.errors import MerkleError

try:
    from apicredits.oracle import _keccak as _native
except ImportError:  # built without a C compiler: the pure-Python path below
    _native = None  # type: ignore[assignment,unused-ignore]

__all__ = ["MerkleTree", "hash_pair", "keccak256", "leaf_hash", "process_proof", "verify_proof"]

Hasher = Callable[[bytes], bytes]


def _hasher() -> Hasher:
    """A keccak256 function; the batch loops each take their own (it may hold state)."""
    try:
        sha3: Any = importlib.import_module("sha3")  # safe-pysha3: ~0.5 µs a hash
        keccak_256 = sha3.keccak_256
        return lambda data: keccak_256(data).digest()  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        pass
    try:  # pycryptodome's C core without its per-object overhead: ~2 µs a hash
        lib: Any = importlib.import_module("Crypto.Hash.keccak")._raw_keccak_lib
        ffi: Any = importlib.import_module("Crypto.Util._raw_api").ffi

        pointer = ffi.new("void **")
        if lib.keccak_init(pointer, 64, 24):
            raise ImportError("keccak_init failed")
        state = ffi.gc(pointer[0], lib.keccak_destroy)
        out = ffi.new("uint8_t[32]")
        view = ffi.buffer(out)
        reset, absorb, digest = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest

        def raw(data: bytes) -> bytes:
            reset(state)
            absorb(state, data, len(data))
            digest(state, out, 32, 1)
            return view[:]  # type: ignore[no-any-return]

        return raw
    except (ImportError, AttributeError):
        from Crypto.Hash import keccak

        return lambda data: keccak.new(digest_bits=256, data=data).digest()


def _stateless_keccak() -> Hasher:
    try:
        sha3: Any = importlib.import_module("sha3")
        keccak_256 = sha3.keccak_256
        return lambda data: keccak_256(data).digest()  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        from Crypto.Hash import keccak

        return lambda data: keccak.new(digest_bits=256, data=data).digest()


# Safe to share: every call hashes afresh.
_KECCAK: Hasher = _native.keccak256 if _native is not None else _stateless_keccak()


def keccak256(data: bytes) -> bytes:
    """keccak256 of ``data`` with the fastest implementation installed."""
    return _KECCAK(data)


# --- leaves -------------------------------------------------------------------------------

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _is_hex_address(value: str) -> bool:
    """A 0x-prefixed 20-byte hex address whose checksum holds if it is mixed-case."""
    if not _HEX_ADDRESS.fullmatch(value):
        return False
    digits = value[2:]
    return digits in (digits.lower(), digits.upper()) or is_checksum_address(value)


_UINT = re.compile(r"uint(\d{1,3})$")
_INT = re.compile(r"int(\d{1,3})$")
_BYTES = re.compile(r"bytes(\d{1,2})$")


def _word_encoder(abi_type: str) -> Callable[[Any], bytes] | None:
    """A direct 32-byte encoder for a static ABI type, or None (then eth-abi encodes)."""
    if m := _UINT.fullmatch(abi_type):
        bits = int(m[1])
        if bits % 8 or not 8 <= bits <= 256:
            return None
        limit = 1 << bits

        def uint(value: Any) -> bytes:
            if type(value) is not int or not 0 <= value < limit:
                raise MerkleError(f"{value!r} is not a {abi_type}", abi_type=abi_type)
            return value.to_bytes(32, "big")

        return uint
    if m := _INT.fullmatch(abi_type):
        bits = int(m[1])
        if bits % 8 or not 8 <= bits <= 256:
            return None
        bound = 1 << (bits - 1)

        def sint(value: Any) -> bytes:
            if type(value) is not int or not -bound <= value < bound:
                raise MerkleError(f"{value!r} is not an {abi_type}", abi_type=abi_type)
            return value.to_bytes(32, "big", signed=True)

        return sint
    if m := _BYTES.fullmatch(abi_type):
        size = int(m[1])
        if not 1 <= size <= 32:
            return None
        pad = bytes(32 - size)

        def fixed_bytes(value: Any) -> bytes:
            if not isinstance(value, bytes) or len(value) != size:
                raise MerkleError(f"a {abi_type} value is {size} bytes", abi_type=abi_type)
            return value + pad

        return fixed_bytes
    if abi_type == "address":

        def address(value: Any) -> bytes:
            if isinstance(value, bytes) and len(value) == 20:
                return bytes(12) + value
            if isinstance(value, str) and _is_hex_address(value):
                return bytes(12) + bytes.fromhex(value[2:])
            raise MerkleError(f"{value!r} is not an address", abi_type=abi_type)

        return address
    if abi_type == "bool":

        def boolean(value: Any) -> bytes:
            if not isinstance(value, bool):
                raise MerkleError(f"{value!r} is not a bool", abi_type=abi_type)
            return int(value).to_bytes(32, "big")

        return boolean
    return None


def _encoder(types: Sequence[str]) -> Callable[[Sequence[Any]], bytes]:
    """``abi.encode(values...)`` for these types, fast when every type is a static word."""
    words = [_word_encoder(t) for t in types]
    arity = len(types)
    if all(w is not None for w in words):
        encoders: list[Callable[[Any], bytes]] = [w for w in words if w is not None]
        if arity == 1 and types[0] == "bytes32":
            only = encoders[0]

            def one_word(values: Sequence[Any]) -> bytes:
                if len(values) != 1:
                    raise MerkleError("expected 1 value", types=list(types))
                value = values[0]
                if isinstance(value, bytes) and len(value) == 32:
                    return value
                return only(value)

            return one_word

        def static(values: Sequence[Any]) -> bytes:
            if len(values) != arity:
                raise MerkleError(f"expected {arity} values", types=list(types))
            return b"".join([encode(v) for encode, v in zip(encoders, values, strict=True)])

        return static

    def generic(values: Sequence[Any]) -> bytes:
        if len(values) != arity:
            raise MerkleError(f"expected {arity} values", types=list(types))
        try:
            return abi_encode(list(types), list(values))
        except Exception as exc:  # eth-abi raises a zoo of encoding errors
            raise MerkleError(f"values do not encode as {list(types)}: {exc}") from None

    return generic


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """OpenZeppelin's standard leaf: ``keccak256(keccak256(abi.encode(values...)))``."""
    return keccak256(keccak256(_encoder(types)(values)))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a < b else b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify_proof(root: bytes, leaf: bytes, proof: Iterable[bytes]) -> bool:
    """OpenZeppelin ``MerkleProof.verify``: whether ``proof`` links ``leaf`` to ``root``."""
    return process_proof(leaf, proof) == root


# --- batch work (module level so that a process pool can run it) ---------------------------


def _hash_leaves(encoded: bytes | list[bytes], width: int) -> bytes:
    """``keccak256(keccak256(record))`` of fixed-``width`` records packed in one blob (or of a
    list of encodings), in order, as one blob."""
    if _native is not None and isinstance(encoded, bytes):
        return _native.leaf_hashes(encoded, width)
    keccak = _hasher()
    if isinstance(encoded, bytes):
        records: Iterable[bytes] = (encoded[i : i + width] for i in range(0, len(encoded), width))
    else:
        records = encoded
    return b"".join([keccak(keccak(record)) for record in records])


def _sorted_words(blob: bytes) -> bytes:
    """The 32-byte words of ``blob`` in ascending order."""
    if _native is not None:
        return _native.sort_words(blob)
    words = [blob[i : i + 32] for i in range(0, len(blob), 32)]
    words.sort()
    return b"".join(words)


def _hash_pairs(children: bytes) -> bytes:
    """Parents of consecutive (left, right) children packed in one blob."""
    keccak = _hasher()
    out: list[bytes] = []
    append = out.append
    for i in range(0, len(children), 64):
        a = children[i : i + 32]
        b = children[i + 32 : i + 64]
        append(keccak(a + b if a < b else b + a))
    return b"".join(out)


_PARALLEL_MIN = 1 << 15  # below this many items, shipping work to another task costs more


def _chunks(total: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    step = -(-total // parts)
    step += -step % align
    return [(lo, min(lo + step, total)) for lo in range(0, total, step)]


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class MerkleTree:
    """A built tree: ``root``, ``leaf_hash(i)`` and ``proof(i)`` for the i-th value given."""

    types: tuple[str, ...]
    _nodes: bytes = field(repr=False)  # the OpenZeppelin array, 32 bytes a node
    _leaves: bytes = field(repr=False)  # leaf hashes in the order the values were given

    @classmethod
    def build(
        cls,
        types: Sequence[str],
        values: Iterable[Sequence[Any]],
        *,
        executor: Executor | None = None,
        workers: int = 2,
    ) -> MerkleTree:
        """The tree of ``values`` (each a sequence matching ``types``), as
        ``StandardMerkleTree.of(values, types)``; ``executor`` spreads the hashing over
        ``workers`` tasks at a time."""
        types = tuple(types)
        if not types:
            raise MerkleError("a leaf needs at least one ABI type")
        encode = _encoder(types)
        encoded = [encode(v) for v in values]
        if not encoded:
            raise MerkleError("a Merkle tree needs at least one leaf")
        width = len(encoded[0])
        fixed = all(len(e) == width for e in encoded)
        if executor is None or len(encoded) < _PARALLEL_MIN:
            ordered = _hash_leaves(b"".join(encoded) if fixed else encoded, width)
        else:
            spans = _chunks(len(encoded), workers)
            jobs = [b"".join(encoded[lo:hi]) if fixed else encoded[lo:hi] for lo, hi in spans]
            ordered = b"".join(executor.map(_hash_leaves, jobs, [width] * len(jobs)))
        ranked = _sorted_words(ordered)
        return cls(types, _make_tree(ranked, executor, workers), ordered)

    def __len__(self) -> int:
        return len(self._leaves) // 32

    def __repr__(self) -> str:
        return f"MerkleTree(types={list(self.types)}, leaves={len(self)}, root=0x{self.root.hex()})"

    @property
    def root(self) -> bytes:
        return self._nodes[:32]

    def leaf_hash(self, index: int) -> bytes:
        self._check(index)
        return self._leaves[32 * index : 32 * index + 32]

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from the ``index``-th value's leaf up to the root."""
        node = self._tree_index(index)
        proof = []
        while node > 0:
            sibling = node + 1 if node % 2 else node - 1
            proof.append(self._nodes[32 * sibling : 32 * sibling + 32])
            node = (node - 1) // 2
        return proof

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise MerkleError(f"no leaf {index} in a tree of {len(self)}", index=index)

    def _node(self, i: int) -> bytes:
        return self._nodes[32 * i : 32 * i + 32]

    def _tree_index(self, index: int) -> int:
        """Where the ``index``-th value's leaf sits in the array (OpenZeppelin's treeIndex)."""
        leaf = self.leaf_hash(index)
        n = len(self)
        last = 2 * n - 2  # the k-th smallest leaf hash sits at last - k

        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if self._node(last - mid) < leaf:
                lo = mid + 1
            else:
                hi = mid
        rank = lo
        if rank + 1 < n and self._node(last - rank - 1) == leaf:
            # Equal leaves keep the order they were given in (OpenZeppelin sorts stably).
            rank += sum(1 for j in range(index) if self._leaves[32 * j : 32 * j + 32] == leaf)
        return last - rank


def _make_tree(ranked: bytes, executor: Executor | None, workers: int) -> bytes:
    """OpenZeppelin's ``makeMerkleTree`` over sorted leaf hashes (one blob), level by level."""
    if _native is not None:
        return _native.make_tree(ranked)
    n = len(ranked) // 32
    leaves = [ranked[i : i + 32] for i in range(0, len(ranked), 32)]
    nodes = bytearray(32 * (n - 1)) + b"".join(reversed(leaves))
    hi = n - 2  # highest inner node not yet computed
    while hi >= 0:
        lo = (hi + 1) // 2  # inner nodes lo..hi have every child computed
        children = bytes(nodes[32 * (2 * lo + 1) : 32 * (2 * hi + 3)])
        count = hi - lo + 1
        if executor is None or count < _PARALLEL_MIN:
            parents = _hash_pairs(children)
        else:
            spans = _chunks(len(children), workers, align=64)
            parents = b"".join(executor.map(_hash_pairs, [children[a:b] for a, b in spans]))
        nodes[32 * lo : 32 * (hi + 1)] = parents
        hi = lo - 1
    return bytes(nodes)
