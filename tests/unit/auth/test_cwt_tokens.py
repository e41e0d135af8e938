from __future__ import annotations

import base64
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicredits.auth.capabilities import CapabilityClaims
from apicredits.auth.cwt import cwt_from_header, cwt_to_header, decode_cwt, encode_cwt
from apicredits.auth.errors import TokenError
from apicredits.auth.keys import KeyRing

NOW = 1_700_000_000
ISS, AUD = "https://gateway.example", "apicredits"
JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
RING = KeyRing.create(NOW - 10)


def claims(**overrides: Any) -> CapabilityClaims:
    fields: dict[str, Any] = {
        "iss": ISS, "aud": AUD, "sub": "svc-search", "tenant_id": "acme", "jkt": JKT,
        "scopes": ["route:openai.chat", "model:sim-*"], "now": NOW, "project_id": "p1",
        "spend_cap_micro": 5_000_000, "requests_per_minute": 60, "tokens_per_minute": 10_000,
        "max_concurrent": 4,
    }  # fmt: skip
    return CapabilityClaims.create(**(fields | overrides))


def decode(data: object, ring: KeyRing = RING, **kwargs: Any) -> CapabilityClaims:
    options: dict[str, Any] = {"now": NOW + 1, "audience": AUD, "issuer": ISS} | kwargs
    return decode_cwt(ring, data, **options)


def reason(data: object, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as caught:
        decode(data, **kwargs)
    return caught.value.reason


def sign1(payload: object, protected: dict[int, Any] | None = None, unprotected: object = None,
          key: Ed25519PrivateKey | None = None, tag: int = 18) -> bytes:  # fmt: skip
    """A COSE_Sign1 over arbitrary content, signed per RFC 9052 independently of the module."""
    head = cbor2.dumps(protected or {1: -8, 4: RING.current.kid.encode()})
    body = cbor2.dumps(payload)
    to_sign = cbor2.dumps(["Signature1", head, b"", body])
    signature = (key or RING.current.private_key).sign(to_sign)
    return cbor2.dumps(cbor2.CBORTag(tag, [head, unprotected or {}, body, signature]))


def claim_map(**changes: Any) -> dict[int, Any]:
    document = cbor2.loads(cbor2.loads(encode_cwt(RING, claims())).value[2])
    document.update({int(k.lstrip("_").replace("m", "-")): v for k, v in changes.items()})
    return {k: v for k, v in document.items() if v is not None}


def test_round_trip_and_layout() -> None:
    original = claims()
    data = encode_cwt(RING, original)
    assert decode(data) == original
    assert decode(data) == original
    message = cbor2.loads(data)
    assert message.tag == 18
    protected, unprotected, payload, signature = message.value
    assert cbor2.loads(protected) == {1: -8, 4: RING.current.kid.encode()}
    assert unprotected == {}
    document = cbor2.loads(payload)
    assert document[1] == ISS
    assert document[2] == "svc-search"
    assert document[3] == AUD
    assert (document[4], document[5], document[6]) == (NOW + 900, NOW, NOW)
    assert document[7] == original.jti.encode()
    assert document[8] == {"jkt": base64.urlsafe_b64decode(JKT + "=")}
    assert document[-65537] == "acme"
    assert document[-65539] == list(original.scopes)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    RING.current.public_key.verify(signature, to_sign)  # RFC 9052 Sig_structure exactly
    assert len(data) < len(__import__("apicredits.auth.capabilities", fromlist=["x"])
                           .issue_token(RING, original))  # fmt: skip


def test_optional_claims_omitted() -> None:
    original = claims(project_id=None, spend_cap_micro=None, requests_per_minute=None,
                      tokens_per_minute=None, max_concurrent=None)  # fmt: skip
    data = encode_cwt(RING, original)
    assert set(cbor2.loads(cbor2.loads(data).value[2])) == {1, 2, 3, 4, 5, 6, 7, 8, -65537, -65539}
    assert decode(data) == original
    assert decode(sign1(claim_map(m65538=None, m65540=None))).project_id is None


def test_header_helpers() -> None:
    data = encode_cwt(RING, claims())
    assert cwt_from_header(cwt_to_header(data)) == data
    for bad in ("", "a+b", "abc=", None, "x" * 10000):
        with pytest.raises(TokenError) as caught:
            cwt_from_header(bad)
        assert caught.value.reason == "malformed"


def test_same_reasons_as_jwt() -> None:
    data = encode_cwt(RING, claims())
    assert reason(data, now=NOW + 930) == "expired"
    assert reason(data, now=NOW - 31) == "not_yet_valid"
    assert reason(data, audience="other") == "wrong_audience"
    assert reason(data, issuer="other") == "wrong_issuer"
    assert reason(data, jkt="A" * 43) == "token_bound_to_other_key"
    assert reason(data, is_revoked=lambda c: True) == "revoked"
    assert reason(encode_cwt(KeyRing.create(NOW), claims())) == "unknown_key"
    assert reason(sign1(claim_map(), key=Ed25519PrivateKey.generate())) == "bad_signature"
    assert reason(sign1(claim_map(_4=NOW + 3601))) == "lifetime_too_long"
    assert reason(sign1(claim_map(), protected={1: -7, 4: RING.current.kid.encode()})) == (
        "bad_signature"
    )
    assert reason(sign1(claim_map(), protected={1: -8, 4: b"\xff"})) == "unknown_key"


def test_key_rotation() -> None:
    ring = KeyRing.create(NOW - 100, overlap_seconds=600)
    data = encode_cwt(ring, claims())
    rotated = ring.rotate(NOW)
    assert decode(data, ring=rotated, now=NOW + 599).jti
    assert reason(data, ring=rotated, now=NOW + 600) == "key_retired"


@pytest.mark.parametrize(
    "data",
    [
        sign1(claim_map(), tag=61),
        sign1(claim_map(), unprotected={4: b"kid"}),
        sign1(claim_map(), protected={1: -8, 4: RING.current.kid.encode(), 3: 1}),
        sign1(claim_map(_4=float(NOW + 900))),
        sign1(claim_map(_6=True)),
        sign1(claim_map(_7="text-cti")),
        sign1(claim_map(_8={"jkt": JKT})),
        sign1(claim_map(m65539="route:*")),
        sign1(claim_map(m65539=[])),
        sign1(claim_map(m65540=-5)),
        sign1(claim_map(_9="unknown")),
        sign1(claim_map(_1=None)),
        sign1([1, 2]),
        cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""])),
        cbor2.dumps([b"", {}, b"", b""]),
        b"\xd2\x84",
        b"",
        "not bytes",
        b"\x00" * 5000,
    ],
)
def test_malformed(data: object) -> None:
    assert reason(data) == "malformed"


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = encode_cwt(RING, claims(jti="fuzz-base"))


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    with pytest.raises(TokenError):
        decode(data)


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(0, 8), st.binary(max_size=8))
def test_fuzz_mutated_cwts_are_never_accepted(at: int, cut: int, insert: bytes) -> None:
    mutated = VALID[:at] + insert + VALID[at + cut :]
    if mutated != VALID:
        with pytest.raises(TokenError):
            decode(mutated)


CBOR_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(),
              st.text(max_size=10), st.binary(max_size=40)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.integers(-70000, 10), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(claim_map())), CBOR_VALUES, max_size=4))
def test_fuzz_signed_garbage_claims(changes: dict[int, Any]) -> None:
    document = claim_map() | changes
    try:
        accepted = decode(sign1(document))
    except TokenError:
        return
    assert cbor2.loads(cbor2.loads(encode_cwt(RING, accepted)).value[2]) == document
