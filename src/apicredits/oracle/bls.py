"""BLS12-381 signatures of the oracles, in the min-sig variant the contracts verify cheaply.

Signatures live in G1, public keys in G2: hashing a message to G1 costs two ``MAP_FP_TO_G1``
precompile calls on chain (EIP-2537, 5.5k gas each) against two ``MAP_FP2_TO_G2`` calls at
23.8k for the other variant. Every point crosses the API as its EIP-2537 encoding:

- G1: 128 bytes, ``x || y``, each coordinate a 64-byte big-endian integer (top 16 bytes zero);
- G2: 256 bytes, ``x.c0 || x.c1 || y.c0 || y.c1``, the same 64-byte words;
- the point at infinity: all zeros.

Hashing follows RFC 9380 ``BLS12381G1_XMD:SHA-256_SSWU_RO_`` with our own DSTs. On chain,
``H(m) = G1ADD(MAP_FP_TO_G1(u0), MAP_FP_TO_G1(u1))`` with ``(u0, u1) = hash_to_field_g1(m)``
(``MAP_FP_TO_G1`` clears the cofactor itself, and clearing is linear), and a signature verifies
when ``PAIRING([(sig, -G2), (H(m), pk)])`` is one; ``pairing_input`` builds those 768 bytes.

Same-message aggregation is only sound over keys whose proof of possession was checked
(``verify_pop``) when they were registered: that is what stops rogue-key attacks.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from apicredits.oracle.errors import BlsEncodingError, OracleKeyError

__all__ = [
    "CURVE_ORDER",
    "FIELD_MODULUS",
    "G1_SIZE",
    "G2_GENERATOR",
    "G2_SIZE",
    "NEGATED_G2_GENERATOR",
    "POP_DST",
    "SECRET_KEY_SIZE",
    "SIGNATURE_DST",
    "OracleKey",
    "aggregate_public_keys",
    "aggregate_signatures",
    "expand_message_xmd",
    "g1_from_eip2537",
    "g1_to_eip2537",
    "g2_from_eip2537",
    "g2_to_eip2537",
    "hash_to_field_g1",
    "hash_to_g1",
    "pairing_input",
    "verify",
    "verify_aggregate",
    "verify_pop",
]

SIGNATURE_DST = b"APICREDITS_BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"APICREDITS_BLS_POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_"

FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

G1_SIZE = 128
G2_SIZE = 256
SECRET_KEY_SIZE = 32
_FP = 48  # bytes of a base field element
_WORD = 64  # bytes of a base field element in EIP-2537
_PAD = bytes(_WORD - _FP)


def expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-256: ``length`` uniform bytes from ``message``."""
    if len(dst) > 255:
        raise ValueError("a DST longer than 255 bytes must be hashed first (RFC 9380 5.3.3)")
    ell = -(-length // 32)
    if ell > 255 or length > 0xFFFF:
        raise ValueError(f"cannot expand to {length} bytes")
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha256(bytes(64) + message + length.to_bytes(2, "big") + b"\0" + dst_prime)
    b0_digest = b0.digest()
    block = hashlib.sha256(b0_digest + b"\x01" + dst_prime).digest()
    blocks = [block]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0_digest, block, strict=True))
        block = hashlib.sha256(mixed + bytes([i]) + dst_prime).digest()
        blocks.append(block)
    return b"".join(blocks)[:length]


def hash_to_field_g1(message: bytes, dst: bytes = SIGNATURE_DST) -> tuple[bytes, bytes]:
    """The two field elements ``u0, u1`` that hash ``message`` to G1, as 64-byte words.

    Each is the input ``MAP_FP_TO_G1`` expects: a 64-byte chunk of
    ``expand_message_xmd(message, dst, 128)`` reduced modulo p, written back as 64 bytes.
    """
    uniform = expand_message_xmd(message, dst, 2 * _WORD)
    u0 = int.from_bytes(uniform[:_WORD], "big") % FIELD_MODULUS
    u1 = int.from_bytes(uniform[_WORD:], "big") % FIELD_MODULUS
    return u0.to_bytes(_WORD, "big"), u1.to_bytes(_WORD, "big")


def hash_to_g1(message: bytes, dst: bytes = SIGNATURE_DST) -> bytes:
    """RFC 9380 hash_to_curve of ``message`` into G1, EIP-2537 encoded."""
    return g1_to_eip2537(G1Point.hash_to_curve(message, dst))


# --- EIP-2537 encodings -------------------------------------------------------------------


def g1_to_eip2537(point: G1Point) -> bytes:
    xy = point.to_xy_bytes_be()
    return _PAD + xy[:_FP] + _PAD + xy[_FP:]


def g2_to_eip2537(point: G2Point) -> bytes:
    xy = point.to_xy_bytes_be()  # x.c0, x.c1, y.c0, y.c1: the order EIP-2537 uses
    return b"".join(_PAD + xy[i : i + _FP] for i in range(0, 4 * _FP, _FP))


def _coordinates(data: bytes, size: int, name: str) -> bytes:
    if not isinstance(data, bytes | bytearray) or len(data) != size:
        raise BlsEncodingError(f"a {name} point is {size} bytes", group=name)
    out = []
    for i in range(0, size, _WORD):
        word = bytes(data[i : i + _WORD])
        if word[: _WORD - _FP] != _PAD or int.from_bytes(word, "big") >= FIELD_MODULUS:
            raise BlsEncodingError(f"a {name} coordinate is not a field element", group=name)
        out.append(word[_WORD - _FP :])
    return b"".join(out)


def g1_from_eip2537(data: bytes) -> G1Point:
    """Decode a G1 point, checking it is on the curve and in the prime-order subgroup."""
    xy = _coordinates(data, G1_SIZE, "G1")
    try:
        return G1Point.from_xy_bytes_be(xy)
    except ValueError as exc:
        raise BlsEncodingError(f"not a G1 subgroup point: {exc}", group="G1") from None


def g2_from_eip2537(data: bytes) -> G2Point:
    """Decode a G2 point, checking it is on the curve and in the prime-order subgroup."""
    xy = _coordinates(data, G2_SIZE, "G2")
    try:
        return G2Point.from_xy_bytes_be(xy)
    except ValueError as exc:
        raise BlsEncodingError(f"not a G2 subgroup point: {exc}", group="G2") from None


G2_GENERATOR = g2_to_eip2537(G2Point())
NEGATED_G2_GENERATOR = g2_to_eip2537(-G2Point())


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class OracleKey:
    """An oracle's BLS secret key; its ``public_key`` is registered on chain."""

    secret: Scalar = field(repr=False)
    public_key: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.secret.is_zero():
            raise OracleKeyError("a BLS secret key cannot be zero")
        object.__setattr__(self, "public_key", g2_to_eip2537(G2Point() * self.secret))

    @classmethod
    def generate(cls) -> OracleKey:
        return cls(Scalar.from_be_bytes((1 + secrets.randbelow(CURVE_ORDER - 1)).to_bytes(32)))

    @classmethod
    def from_bytes(cls, data: bytes) -> OracleKey:
        """A key from its 32-byte big-endian scalar, which must lie in ``[1, r)``."""
        if len(data) != SECRET_KEY_SIZE:
            raise OracleKeyError(f"a BLS secret key is {SECRET_KEY_SIZE} bytes")
        value = int.from_bytes(data, "big")
        if not 0 < value < CURVE_ORDER:
            raise OracleKeyError("a BLS secret key must lie in [1, r)")
        return cls(Scalar.from_be_bytes(bytes(data)))

    def to_bytes(self) -> bytes:
        return self.secret.to_be_bytes()

    def __repr__(self) -> str:
        return f"OracleKey(public_key=0x{self.public_key[16:28].hex()}…)"

    def sign(self, message: bytes) -> bytes:
        """``sk·H(message)`` in G1, EIP-2537 encoded (128 bytes)."""
        return g1_to_eip2537(G1Point.hash_to_curve(message, SIGNATURE_DST) * self.secret)

    def proof_of_possession(self) -> bytes:
        """The signature of this key's own 256-byte public key under the PoP DST."""
        return g1_to_eip2537(G1Point.hash_to_curve(self.public_key, POP_DST) * self.secret)


# --- verification and aggregation ---------------------------------------------------------


def _check(public_key: G2Point, message: bytes, signature: G1Point, dst: bytes) -> bool:
    if public_key == G2Point.identity() or signature == G1Point.identity():
        return False
    hashed = G1Point.hash_to_curve(message, dst)
    return GT.pairing_check([signature, hashed], [-G2Point(), public_key])


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s signature of ``message``; malformed
    encodings, the identity key and the identity signature all verify as False."""
    try:
        pk, sig = g2_from_eip2537(public_key), g1_from_eip2537(signature)
    except BlsEncodingError:
        return False
    return _check(pk, message, sig, SIGNATURE_DST)


def verify_pop(public_key: bytes, proof: bytes) -> bool:
    """Whether ``proof`` proves possession of the secret key behind ``public_key``."""
    try:
        pk, sig = g2_from_eip2537(public_key), g1_from_eip2537(proof)
    except BlsEncodingError:
        return False
    return _check(pk, bytes(public_key), sig, POP_DST)


def aggregate_signatures(signatures: Iterable[bytes]) -> bytes:
    """The sum of G1 signatures; raises ``BlsEncodingError`` on an empty or malformed input."""
    return g1_to_eip2537(_sum(signatures, G1Point.identity(), g1_from_eip2537, "G1"))


def aggregate_public_keys(public_keys: Iterable[bytes]) -> bytes:
    """The sum of G2 public keys; raises ``BlsEncodingError`` on an empty or malformed input."""
    return g2_to_eip2537(_sum(public_keys, G2Point.identity(), g2_from_eip2537, "G2"))


P = TypeVar("P", G1Point, G2Point)


def _sum(encoded: Iterable[bytes], identity: P, decode: Callable[[bytes], P], group: str) -> P:
    total, count = identity, 0
    for item in encoded:
        total += decode(item)
        count += 1
    if count == 0:
        raise BlsEncodingError("nothing to aggregate", group=group)
    return total


def verify_aggregate(public_keys: Iterable[bytes], message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` aggregates signatures of ``message`` by all ``public_keys``
    (each one's proof of possession must have been checked beforehand)."""
    try:
        aggregate = aggregate_public_keys(public_keys)
    except BlsEncodingError:
        return False
    return verify(aggregate, message, signature)


def pairing_input(public_key: bytes, message: bytes, signature: bytes) -> bytes:
    """The 768 bytes the EIP-2537 pairing precompile checks for this signature:
    ``sig || -G2 || H(message) || public_key``."""
    return bytes(signature) + NEGATED_G2_GENERATOR + hash_to_g1(message) + bytes(public_key)
