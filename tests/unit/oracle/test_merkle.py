"""OpenZeppelin StandardMerkleTree compatibility: published vectors, a line-by-line port of
``makeMerkleTree``/``getProof`` as the reference, and the fast paths against eth-abi."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_abi.abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.oracle import merkle
from apicredits.oracle.errors import MerkleError
from apicredits.oracle.merkle import (
    MerkleTree,
    hash_pair,
    keccak256,
    leaf_hash,
    process_proof,
    verify_proof,
)

try:
    from apicredits.oracle import _keccak as native
except ImportError:  # built without a compiler
    native = None  # type: ignore[assignment,unused-ignore]

# @openzeppelin/merkle-tree test/dumps/standard-v1.sorted.1_0_6.json: values a..f, ["string"]
OZ_DUMP_TREE = [
    "6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",
    "52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",
    "fd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",
    "8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",
    "965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",
    "eba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",
    "c62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",
    "9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",
    "9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",
    "9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",
    "19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681",
]
OZ_DUMP_TREE_INDEX = [8, 10, 7, 5, 9, 6]


def reference_tree(types: list[str], values: list[list[Any]]) -> tuple[list[bytes], list[int]]:
    """StandardMerkleTree.prepare + makeMerkleTree, straight from the TypeScript."""
    hashed = [(keccak256(keccak256(encode(types, v))), i) for i, v in enumerate(values)]
    hashed.sort(key=lambda item: item[0])  # stable, like Array.prototype.sort
    tree: list[bytes] = [b""] * (2 * len(hashed) - 1)
    for i, (h, _) in enumerate(hashed):
        tree[len(tree) - 1 - i] = h
    for i in range(len(tree) - 1 - len(hashed), -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    tree_index = [0] * len(values)
    for leaf_index, (_, value_index) in enumerate(hashed):
        tree_index[value_index] = len(tree) - leaf_index - 1
    return tree, tree_index


def reference_proof(tree: list[bytes], index: int) -> list[bytes]:
    proof = []
    while index > 0:
        proof.append(tree[index - (-1) ** (index % 2)])
        index = (index - 1) // 2
    return proof


def nodes(tree: MerkleTree) -> list[bytes]:
    count = 2 * len(tree) - 1
    return [tree._nodes[32 * i : 32 * i + 32] for i in range(count)]


def test_openzeppelin_readme_root() -> None:
    tree = MerkleTree.build(
        ["address", "uint256"],
        [
            ["0x1111111111111111111111111111111111111111", 5000000000000000000],
            ["0x2222222222222222222222222222222222222222", 2500000000000000000],
        ],
    )
    assert tree.root.hex() == "d4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


def test_openzeppelin_dump_layout_and_tree_indices() -> None:
    tree = MerkleTree.build(["string"], [[c] for c in "abcdef"])
    assert [n.hex() for n in nodes(tree)] == OZ_DUMP_TREE
    assert [tree._tree_index(i) for i in range(6)] == OZ_DUMP_TREE_INDEX
    for i in range(6):
        assert verify_proof(tree.root, tree.leaf_hash(i), tree.proof(i))


def test_single_leaf_is_its_own_root() -> None:
    tree = MerkleTree.build(["bytes32"], [[b"\x05" * 32]])
    assert tree.root == tree.leaf_hash(0) == leaf_hash(["bytes32"], [b"\x05" * 32])
    assert tree.proof(0) == []
    assert len(tree) == 1


values_strategy = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from([b"\x01" * 32, b"\x02" * 32, b"\xff" * 32])),
    min_size=1,
    max_size=40,
)


@given(values_strategy)
@settings(max_examples=60, deadline=None)
def test_matches_openzeppelin_reference_including_duplicates(raw: list[tuple[int, bytes]]) -> None:
    types = ["uint64", "bytes32"]
    values = [list(v) for v in raw]
    tree = MerkleTree.build(types, values)
    expected, tree_index = reference_tree(types, values)
    assert nodes(tree) == expected
    for i in range(len(values)):
        assert tree._tree_index(i) == tree_index[i]
        assert tree.proof(i) == reference_proof(expected, tree_index[i])
        assert verify_proof(tree.root, tree.leaf_hash(i), tree.proof(i))


def test_a_tampered_proof_or_leaf_fails() -> None:
    tree = MerkleTree.build(["uint256"], [[i] for i in range(9)])
    proof = tree.proof(3)
    assert verify_proof(tree.root, tree.leaf_hash(3), proof)
    assert not verify_proof(tree.root, tree.leaf_hash(4), proof)
    assert not verify_proof(tree.root, tree.leaf_hash(3), proof[:-1])
    assert not verify_proof(tree.root, tree.leaf_hash(3), [proof[0][::-1], *proof[1:]])
    assert process_proof(tree.leaf_hash(3), proof) == tree.root


@pytest.mark.parametrize("native", [True, False], ids=["c-extension", "python"])
def test_executor_path_builds_the_same_tree(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    if not native:
        monkeypatch.setattr(merkle, "_native", None)
    monkeypatch.setattr(merkle, "_PARALLEL_MIN", 4)
    values = [[i, f"0x{i:040x}"] for i in range(101)]
    serial = MerkleTree.build(["uint32", "address"], values)
    with ThreadPoolExecutor(3) as executor:
        parallel = MerkleTree.build(["uint32", "address"], values, executor=executor, workers=3)
    assert parallel._nodes == serial._nodes
    assert parallel._leaves == serial._leaves
    strings = [[str(i) * (i % 7)] for i in range(50)]
    with ThreadPoolExecutor(2) as executor:
        assert (
            MerkleTree.build(["string"], strings, executor=executor).root
            == MerkleTree.build(["string"], strings).root
        )


def test_batch_hasher_is_keccak256() -> None:
    keccak = merkle._hasher()
    for data in (b"", b"abc", bytes(range(256)) * 3):
        assert keccak(data) == keccak256(data)
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


static_values = st.tuples(
    st.integers(0, 2**64 - 1),
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**256 - 1),
    st.integers(-(2**127), 2**127 - 1),
    st.booleans(),
    st.binary(min_size=4, max_size=4),
)
STATIC_TYPES = ["uint64", "address", "bytes32", "uint256", "int128", "bool", "bytes4"]


@given(static_values)
def test_fast_static_encoding_is_abi_encode(values: tuple[Any, ...]) -> None:
    encoded = merkle._encoder(STATIC_TYPES)(values)
    assert encoded == encode(STATIC_TYPES, list(values))


def test_addresses_may_be_strings_or_bytes() -> None:
    raw = bytes.fromhex("12" * 20)
    assert leaf_hash(["address"], ["0x" + "12" * 20]) == leaf_hash(["address"], [raw])


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["uint64"], [2**64]),
        (["uint64"], [-1]),
        (["uint64"], [True]),
        (["uint64"], ["1"]),
        (["int8"], [128]),
        (["address"], ["0x1234"]),
        (["address"], ["0x" + "aB" * 20]),  # bad checksum
        (["bytes32"], [b"\x00" * 31]),
        (["bytes4"], ["0x00000000"]),
        (["bool"], [1]),
        (["uint64", "bytes32"], [1]),
        (["string"], [5]),
        (["string"], ["a", "b"]),
    ],
)
def test_values_that_do_not_fit_raise(types: list[str], values: list[Any]) -> None:
    with pytest.raises(MerkleError):
        leaf_hash(types, values)


def test_empty_inputs_and_bad_indices_raise() -> None:
    with pytest.raises(MerkleError):
        MerkleTree.build(["bytes32"], [])
    with pytest.raises(MerkleError):
        MerkleTree.build([], [[]])
    tree = MerkleTree.build(["uint8"], [[1], [2]])
    for index in (-1, 2):
        with pytest.raises(MerkleError):
            tree.proof(index)
        with pytest.raises(MerkleError):
            tree.leaf_hash(index)
    assert "leaves=2" in repr(tree)


# --- the C extension against the pure-Python path ---------------------------------------


def test_the_c_extension_is_built_under_ci() -> None:
    """Without a compiler the package falls back to Python; CI must run the fast path."""
    if os.environ.get("CI") == "true":
        assert native is not None, "apicredits.oracle._keccak was not built"


needs_native = pytest.mark.skipif(
    native is None, reason="C extension not built (pip install -e . with a compiler)"
)


@needs_native
@settings(max_examples=200)
@given(st.binary(max_size=700))
def test_native_keccak256_is_keccak256(data: bytes) -> None:
    assert native is not None
    assert native.keccak256(data) == merkle._stateless_keccak()(data)


@needs_native
@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=300),
    st.integers(0, 5),
)
def test_native_tree_is_the_python_tree(leaves: list[bytes], duplicates: int) -> None:
    values = [[leaf] for leaf in leaves + leaves[:duplicates]]
    native = MerkleTree.build(["bytes32"], values)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(merkle, "_native", None)
        python = MerkleTree.build(["bytes32"], values)
    assert native._nodes == python._nodes
    assert native._leaves == python._leaves


@needs_native
def test_native_functions_refuse_ragged_buffers() -> None:
    assert native is not None
    with pytest.raises(ValueError, match="width"):
        native.leaf_hashes(bytes(33), 32)
    with pytest.raises(ValueError, match="width"):
        native.leaf_hashes(bytes(32), 0)
    with pytest.raises(ValueError, match="32-byte"):
        native.sort_words(bytes(31))
    with pytest.raises(ValueError, match="non-empty"):
        native.make_tree(b"")
    with pytest.raises(TypeError):
        native.keccak256("not bytes")  # type: ignore[arg-type]


@needs_native
@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300), st.integers(0, 12), st.randoms(use_true_random=False))
def test_native_leaf_hashes_of_any_width(width: int, count: int, rnd: Any) -> None:
    assert native is not None
    records = rnd.randbytes(width * count)
    keccak = merkle._stateless_keccak()
    expected = b"".join(
        keccak(keccak(records[i : i + width])) for i in range(0, len(records), width)
    )
    assert native.leaf_hashes(records, width) == expected
    assert native.leaf_hashes(bytearray(records), width) == expected
    assert native.leaf_hashes(memoryview(records), width) == expected
