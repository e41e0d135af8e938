"""BLS (min-sig) oracle keys, signatures and OpenZeppelin-style Merkle trees for the
settlement contract tests, written straight on py_arkworks_bls12381 and eth_abi."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak
from py_arkworks_bls12381 import G1Point, G2Point, Scalar

SIG_DST = b"APICREDITS_BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"APICREDITS_BLS_POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_"
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
DISPUTE_WINDOW = 3600
LINE_TYPES = ["uint64", "address", "bytes32", "uint256", "uint256"]


def _pad(coordinates: bytes) -> bytes:
    """48-byte big-endian coordinates -> EIP-2537 64-byte words."""
    return b"".join(bytes(16) + coordinates[i : i + 48] for i in range(0, len(coordinates), 48))


def g1_bytes(point: G1Point) -> bytes:
    return _pad(point.to_xy_bytes_be())


def g2_bytes(point: G2Point) -> bytes:
    """x.c0, x.c1, y.c0, y.c1 (arkworks' big-endian order is EIP-2537's)."""
    return _pad(point.to_xy_bytes_be())


def hash_to_g1(message: bytes, dst: bytes = SIG_DST) -> bytes:
    return g1_bytes(G1Point.hash_to_curve(message, dst))


@dataclass(frozen=True)
class OracleKey:
    secret: Scalar
    public_key: bytes  # 256-byte G2

    def sign(self, message: bytes, dst: bytes = SIG_DST) -> G1Point:
        return G1Point.hash_to_curve(message, dst) * self.secret

    @property
    def pop(self) -> bytes:
        return g1_bytes(self.sign(self.public_key, POP_DST))


def oracle_key(label: str) -> OracleKey:
    secret = Scalar(int.from_bytes(hashlib.sha256(label.encode()).digest()) % CURVE_ORDER)
    return OracleKey(secret, g2_bytes(G2Point() * secret))


def aggregate_signature(keys: list[OracleKey], message: bytes) -> bytes:
    total = G1Point.identity()
    for key in keys:
        total = total + key.sign(message)
    return g1_bytes(total)


def line_leaf(values: tuple[int, str, bytes, int, int]) -> bytes:
    return keccak(keccak(encode(LINE_TYPES, list(values))))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True)
class LinesTree:
    """A sorted-pair Merkle tree over line leaves (OpenZeppelin ``MerkleProof`` verifies
    its proofs; the shape differs from StandardMerkleTree's, which does not matter here)."""

    layers: tuple[tuple[bytes, ...], ...]

    @classmethod
    def of(cls, lines: list[tuple[int, str, bytes, int, int]]) -> LinesTree:
        layer = tuple(line_leaf(line) for line in lines)
        layers = [layer]
        while len(layer) > 1:
            pairs = [layer[i : i + 2] for i in range(0, len(layer), 2)]
            layer = tuple(_hash_pair(*p) if len(p) == 2 else p[0] for p in pairs)
            layers.append(layer)
        return cls(tuple(layers))

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, index: int) -> list[bytes]:
        siblings = []
        for layer in self.layers[:-1]:
            sibling = index ^ 1
            if sibling < len(layer):
                siblings.append(layer[sibling])
            index //= 2
        return siblings


@dataclass(frozen=True)
class Settled:
    """Usage receipts holding epoch 1 (submitted at session start) and a treasury over them;
    ``record`` is epoch 1's ``EpochRecord`` as its ``EpochSubmitted`` log carries it (events
    root, lines root, line count, total, submitted_at, signers)."""

    receipts: Any
    treasury: Any
    fee_recipient: str
    lines: tuple[tuple[int, str, bytes, int, int], ...]
    tree: LinesTree
    record: tuple[bytes, bytes, int, int, int, int]

    @property
    def submitted_at(self) -> int:
        return self.record[4]
