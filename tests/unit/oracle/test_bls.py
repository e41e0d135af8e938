"""BLS min-sig signatures: RFC 9380 vectors, EIP-2537 encodings (checked against py_ecc and
against the EIP-2537 precompiles of py-evm's Prague fork), keys, aggregation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boa
import pytest
from py_arkworks_bls12381 import G1Point, G2Point
from py_ecc.bls.hash import expand_message_xmd as reference_expand
from py_ecc.bls.hash_to_curve import hash_to_G1 as reference_hash_to_g1
from py_ecc.optimized_bls12_381 import G2 as REFERENCE_G2
from py_ecc.optimized_bls12_381 import multiply, normalize

from apicredits.oracle.bls import (
    CURVE_ORDER,
    FIELD_MODULUS,
    G2_GENERATOR,
    POP_DST,
    SIGNATURE_DST,
    OracleKey,
    aggregate_public_keys,
    aggregate_signatures,
    expand_message_xmd,
    g1_from_eip2537,
    g1_to_eip2537,
    g2_from_eip2537,
    g2_to_eip2537,
    hash_to_field_g1,
    hash_to_g1,
    pairing_input,
    verify,
    verify_aggregate,
    verify_pop,
)
from apicredits.oracle.errors import BlsEncodingError, OracleKeyError

# RFC 9380 Appendix J.9.1, BLS12381G1_XMD:SHA-256_SSWU_RO_
RFC_DST = b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"
RFC_VECTORS = [
    (
        b"",
        "0ba14bd907ad64a016293ee7c2d276b8eae71f25a4b941eece7b0d89f17f75cb3ae5438a614fb61d6835ad59f29c564f",
        "019b9bd7979f12657976de2884c7cce192b82c177c80e0ec604436a7f538d231552f0d96d9f7babe5fa3b19b3ff25ac9",
        "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1",
        "08ba738453bfed09cb546dbb0783dbb3a5f1f566ed67bb6be0e8c67e2e81a4cc68ee29813bb7994998f3eae0c9c6a265",
    ),
    (
        b"abc",
        "0d921c33f2bad966478a03ca35d05719bdf92d347557ea166e5bba579eea9b83e9afa5c088573c2281410369fbd32951",
        "003574a00b109ada2f26a37a91f9d1e740dffd8d69ec0c35e1e9f4652c7dba61123e9dd2e76c655d956e2b3462611139",
        "03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903",
        "0b9c15f3fe6e5cf4211f346271d7b01c8f3b28be689c8429c85b67af215533311f0b8dfaaa154fa6b88176c229f2885d",
    ),
    (
        b"abcdef0123456789",
        "062d1865eb80ebfa73dcfc45db1ad4266b9f3a93219976a3790ab8d52d3e5f1e62f3b01795e36834b17b70e7b76246d4",
        "0cdc3e2f271f29c4ff75020857ce6c5d36008c9b48385ea2f2bf6f96f428a3deb798aa033cd482d1cdc8b30178b08e3a",
        "11e0b079dea29a68f0383ee94fed1b940995272407e3bb916bbf268c263ddd57a6a27200a784cbc248e84f357ce82d98",
        "03a87ae2caf14e8ee52e51fa2ed8eefe80f02457004ba4d486d6aa1f517c0889501dc7413753f9599b099ebcbbd2d709",
    ),
]

PAD = bytes(16)
MESSAGE = hashlib.sha256(b"epoch 42").digest()


def word(hex48: str) -> bytes:
    return PAD + bytes.fromhex(hex48)


def fp(value: int) -> bytes:
    return value.to_bytes(64, "big")


# --- RFC 9380 -----------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "u0", "u1", "x", "y"), RFC_VECTORS)
def test_hash_to_field_and_curve_match_rfc9380(
    message: bytes, u0: str, u1: str, x: str, y: str
) -> None:
    assert hash_to_field_g1(message, RFC_DST) == (word(u0), word(u1))
    assert hash_to_g1(message, RFC_DST) == word(x) + word(y)


@pytest.mark.parametrize("length", [32, 64, 128, 255])
def test_expand_message_xmd_matches_py_ecc(length: int) -> None:
    for message in (b"", b"abc", bytes(range(200))):
        expected = reference_expand(message, SIGNATURE_DST, length, hashlib.sha256)
        assert expand_message_xmd(message, SIGNATURE_DST, length) == expected


def test_two_mapped_field_elements_add_up_to_the_hash() -> None:
    """What the contract does: G1ADD(MAP_FP_TO_G1(u0), MAP_FP_TO_G1(u1)). arkworks'
    map_from_fp_be, like the precompile, clears the cofactor of each mapped point."""
    for message in (b"", MESSAGE, b"x" * 300):
        u0, u1 = hash_to_field_g1(message)
        assert u0[:16] == PAD
        assert u1[:16] == PAD
        mapped = G1Point.map_from_fp_be(u0[16:]) + G1Point.map_from_fp_be(u1[16:])
        assert g1_to_eip2537(mapped) == hash_to_g1(message)


def test_hash_to_g1_matches_py_ecc_under_our_dst() -> None:
    x, y = normalize(reference_hash_to_g1(MESSAGE, SIGNATURE_DST, hashlib.sha256))
    assert hash_to_g1(MESSAGE) == fp(x.n) + fp(y.n)


# --- EIP-2537 encodings -------------------------------------------------------------------


def test_g2_encoding_is_c0_then_c1_as_eip2537_wants() -> None:
    key = OracleKey.from_bytes((7).to_bytes(32, "big"))
    x, y = normalize(multiply(REFERENCE_G2, 7))
    expected = fp(x.coeffs[0]) + fp(x.coeffs[1]) + fp(y.coeffs[0]) + fp(y.coeffs[1])
    assert key.public_key == expected
    assert G2_GENERATOR[16:64].hex().startswith("024aa2b2f08f0a91")  # the generator's x.c0


def test_signature_matches_py_ecc() -> None:
    key = OracleKey.from_bytes((7).to_bytes(32, "big"))
    x, y = normalize(multiply(reference_hash_to_g1(MESSAGE, SIGNATURE_DST, hashlib.sha256), 7))
    assert key.sign(MESSAGE) == fp(x.n) + fp(y.n)


def test_encodings_round_trip() -> None:
    key = OracleKey.generate()
    signature = key.sign(MESSAGE)
    assert g1_to_eip2537(g1_from_eip2537(signature)) == signature
    assert g2_to_eip2537(g2_from_eip2537(key.public_key)) == key.public_key
    assert g1_from_eip2537(bytes(128)) == G1Point.identity()
    assert g2_from_eip2537(bytes(256)) == G2Point.identity()


def _off_subgroup_g1() -> bytes:
    """A point on y^2 = x^3 + 4 that is not in the prime-order subgroup."""
    for x in range(1, 1000):
        rhs = (x**3 + 4) % FIELD_MODULUS
        y = pow(rhs, (FIELD_MODULUS + 1) // 4, FIELD_MODULUS)
        if y * y % FIELD_MODULUS == rhs:
            return fp(x) + fp(y)
    raise AssertionError("unreachable")


def test_g1_decoding_rejects_bad_points() -> None:
    good = OracleKey.generate().sign(MESSAGE)
    x = int.from_bytes(good[:64], "big")
    y = int.from_bytes(good[64:], "big")
    bad = {
        "short": good[:-1],
        "long": good + b"\0",
        "padding": b"\x01" + good[1:],
        "x >= p": fp(x + FIELD_MODULUS) + good[64:],
        "off curve": good[:64] + fp(y ^ 1),
        "off subgroup": _off_subgroup_g1(),
    }
    for name, data in bad.items():
        with pytest.raises(BlsEncodingError):
            g1_from_eip2537(data)
        assert not verify(OracleKey.generate().public_key, MESSAGE, data), name


def test_g2_decoding_rejects_bad_points() -> None:
    good = OracleKey.generate().public_key
    off_curve = good[:-1] + bytes([good[-1] ^ 1])  # flipped: writing 1 was no change 1 run in 256
    for data in (good[:-1], b"\x01" + good[1:], good[:192] + fp(FIELD_MODULUS), off_curve):
        with pytest.raises(BlsEncodingError):
            g2_from_eip2537(data)


# --- keys and signatures ------------------------------------------------------------------


def test_secret_key_bytes_round_trip_and_bounds() -> None:
    key = OracleKey.generate()
    assert OracleKey.from_bytes(key.to_bytes()) == key
    assert len(key.to_bytes()) == 32
    assert len(key.public_key) == 256
    assert OracleKey.from_bytes((CURVE_ORDER - 1).to_bytes(32, "big"))
    for data in (bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\xff" * 32, bytes(31) + b"\1" * 2):
        with pytest.raises(OracleKeyError):
            OracleKey.from_bytes(data)


def test_repr_hides_the_secret() -> None:
    key = OracleKey.from_bytes((123456789).to_bytes(32, "big"))
    assert "123456789" not in repr(key)
    assert "Scalar" not in repr(key)
    assert repr(key).startswith("OracleKey(public_key=0x")


def test_sign_and_verify() -> None:
    key, other = OracleKey.generate(), OracleKey.generate()
    signature = key.sign(MESSAGE)
    assert len(signature) == 128
    assert verify(key.public_key, MESSAGE, signature)
    assert not verify(key.public_key, MESSAGE[::-1], signature)
    assert not verify(other.public_key, MESSAGE, signature)
    assert not verify(key.public_key, MESSAGE, other.sign(MESSAGE))


def test_identity_key_and_signature_never_verify() -> None:
    assert not verify(bytes(256), MESSAGE, bytes(128))
    assert not verify(OracleKey.generate().public_key, MESSAGE, bytes(128))


def test_signature_is_pinned() -> None:
    key = OracleKey.from_bytes((7).to_bytes(32, "big"))
    assert key.sign(b"apicredits").hex() == (
        "000000000000000000000000000000001999ad5a2ffeb9ba0d5d947f6db81ae54cfb7d39964f4ffe1fa818"
        "3562ecc3dfd48d3d78101cc55e630e937cd54cd5540000000000000000000000000000000011197789d556"
        "9a95c3cd12bb9fccbc0f3758e5ffab0fab60ae73a2466dcb045319bede8985fb56c4aaea4679885feada"
    )


def test_proof_of_possession_is_domain_separated() -> None:
    key, other = OracleKey.generate(), OracleKey.generate()
    pop = key.proof_of_possession()
    assert verify_pop(key.public_key, pop)
    assert not verify_pop(other.public_key, pop)
    assert not verify_pop(key.public_key, key.sign(key.public_key))  # a plain signature
    assert not verify(key.public_key, key.public_key, pop)  # a PoP is no signature
    assert not verify_pop(key.public_key, b"\0" * 5)
    assert POP_DST != SIGNATURE_DST


def test_aggregate_of_all_signers_verifies() -> None:
    keys = [OracleKey.generate() for _ in range(3)]
    public_keys = [k.public_key for k in keys]
    aggregate = aggregate_signatures(k.sign(MESSAGE) for k in keys)
    assert verify_aggregate(public_keys, MESSAGE, aggregate)
    assert verify(aggregate_public_keys(public_keys), MESSAGE, aggregate)
    assert not verify_aggregate(public_keys[:2], MESSAGE, aggregate)
    partial = aggregate_signatures(k.sign(MESSAGE) for k in keys[:2])
    assert not verify_aggregate(public_keys, MESSAGE, partial)
    assert verify_aggregate(public_keys[:2], MESSAGE, partial)
    assert not verify_aggregate([*public_keys[:2], b"junk"], MESSAGE, partial)
    assert not verify_aggregate([], MESSAGE, partial)


def test_aggregating_nothing_or_junk_raises() -> None:
    with pytest.raises(BlsEncodingError):
        aggregate_signatures([])
    with pytest.raises(BlsEncodingError):
        aggregate_public_keys([])
    with pytest.raises(BlsEncodingError):
        aggregate_signatures([bytes(127)])
    with pytest.raises(BlsEncodingError):
        aggregate_signatures([_off_subgroup_g1()])


# --- against the EIP-2537 precompiles (py-evm, Prague) ------------------------------------

PRECOMPILES = """
# pragma version ~=0.4.3
MAP_FP_TO_G1: constant(address) = 0x0000000000000000000000000000000000000010
G1ADD: constant(address) = 0x000000000000000000000000000000000000000b
PAIRING: constant(address) = 0x000000000000000000000000000000000000000F

@external
@view
def hash_to_g1(u0: Bytes[64], u1: Bytes[64]) -> Bytes[128]:
    a: Bytes[128] = raw_call(MAP_FP_TO_G1, u0, max_outsize=128, is_static_call=True)
    b: Bytes[128] = raw_call(MAP_FP_TO_G1, u1, max_outsize=128, is_static_call=True)
    return raw_call(G1ADD, concat(a, b), max_outsize=128, is_static_call=True)

@external
@view
def pairing(data: Bytes[768]) -> uint256:
    return convert(raw_call(PAIRING, data, max_outsize=32, is_static_call=True), uint256)
"""


@pytest.fixture(scope="module")
def precompiles() -> Iterator[Any]:
    with boa.swap_env(boa.Env()):
        yield boa.loads(PRECOMPILES)


def test_precompiles_hash_to_g1_like_we_do(precompiles: Any) -> None:
    for message in (b"", MESSAGE, G2_GENERATOR):
        for dst in (SIGNATURE_DST, POP_DST):
            assert precompiles.hash_to_g1(*hash_to_field_g1(message, dst)) == hash_to_g1(
                message, dst
            )


def test_precompile_pairing_accepts_an_aggregate_signature(precompiles: Any) -> None:
    """One pairing check only: it costs about a second in py-evm."""
    keys = [OracleKey.generate() for _ in range(3)]
    public_key = aggregate_public_keys(k.public_key for k in keys)
    signature = aggregate_signatures(k.sign(MESSAGE) for k in keys)
    assert len(pairing_input(public_key, MESSAGE, signature)) == 768
    assert precompiles.pairing(pairing_input(public_key, MESSAGE, signature)) == 1
