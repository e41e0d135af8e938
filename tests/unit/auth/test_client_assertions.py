from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicredits.auth.assertions import (
    ClientAssertion,
    jwk_thumbprint,
    parse_client_jwk,
    verify_client_assertion,
)
from apicredits.auth.errors import TokenError
from apicredits.errors import InvalidInput

NOW = 1_700_000_000
TOKEN_URL = "https://gateway.example/v1/auth/token"
ED_KEY = Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _to_jwk(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key())
    return jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())


ED_JWK = json.loads(_to_jwk(ED_KEY))
EC_JWK = json.loads(_to_jwk(EC_KEY))
REGISTERED = {"ed": ED_JWK, "ec": EC_JWK}


def assertion(key: Any = ED_KEY, kid: str = "ed", alg: str = "EdDSA", **overrides: Any) -> str:
    claims = {"iss": "svc-search", "sub": "svc-search", "aud": TOKEN_URL, "iat": NOW,
              "exp": NOW + 120, "jti": "a-1"} | overrides  # fmt: skip
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def check(token: object, **kwargs: Any) -> tuple[str, ClientAssertion]:
    options: dict[str, Any] = {"audience": TOKEN_URL, "now": NOW + 1} | kwargs
    return verify_client_assertion(token, REGISTERED, **options)


def reason(token: object, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as caught:
        check(token, **kwargs)
    return caught.value.reason


def test_parse_accepts_ed25519_and_p256_public_jwks() -> None:
    assert isinstance(parse_client_jwk(ED_JWK), Ed25519PublicKey)
    parsed = parse_client_jwk(EC_JWK | {"kid": "k", "use": "sig", "alg": "ES256"})
    assert isinstance(parsed, ec.EllipticCurvePublicKey)
    assert parsed.public_numbers() == EC_KEY.public_key().public_numbers()


@pytest.mark.parametrize(
    "change",
    [{"d": "AAAA"}, {"kty": "RSA"}, {"kty": "oct", "k": "c2VjcmV0"}, {"crv": "Ed448"},
     {"crv": "P-384"}, {"x": "short"}, {"x": None}, {"alg": "ES256"}, {"use": "enc"},
     {"y": "AAAA"}, {"key_ops": ["sign"]}, {"x5u": "https://evil"}, {"kty": None}],
)  # fmt: skip
def test_parse_rejects_everything_else(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_client_jwk({**ED_JWK, **change})


def test_parse_rejects_bad_ec_points_and_non_objects() -> None:
    off_curve = EC_JWK | {"y": b64((int.from_bytes(base64.urlsafe_b64decode(EC_JWK["y"] + "=="),
                                                   "big") ^ 1).to_bytes(32, "big"))}  # fmt: skip
    no_y = {k: v for k, v in EC_JWK.items() if k != "y"}
    docs: tuple[object, ...] = (off_curve, EC_JWK | {"d": "x"}, no_y, [], "jwk", None, {1: 2})
    for doc in docs:
        with pytest.raises(InvalidInput):
            parse_client_jwk(doc)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidInput):
        parse_client_jwk(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())))


def test_thumbprint_matches_rfc8037_vector() -> None:
    # RFC 8037 appendix A.3
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk_thumbprint(jwk | {"kid": "x", "use": "sig"}) == jwk_thumbprint(jwk)
    assert len(jwk_thumbprint(EC_JWK)) == 43
    with pytest.raises(InvalidInput):
        jwk_thumbprint(jwk | {"d": "secret"})


@pytest.mark.parametrize(("key", "kid", "alg"), [(ED_KEY, "ed", "EdDSA"), (EC_KEY, "ec", "ES256")])
def test_valid_assertions(key: Any, kid: str, alg: str) -> None:
    found, claims = check(assertion(key, kid, alg))
    assert found == kid
    assert claims == ClientAssertion("svc-search", TOKEN_URL, NOW + 120, NOW, "a-1")
    assert check(assertion(key, kid, alg, aud=["x", TOKEN_URL]), client_id="svc-search")[0] == kid


def test_reasons() -> None:
    assert reason(assertion(kid="nope")) == "unknown_key"
    assert reason(assertion(EC_KEY, "ed", "ES256")) == "bad_signature"  # alg/key mismatch
    assert reason(assertion(Ed25519PrivateKey.generate())) == "bad_signature"
    _head, payload, signature = assertion(EC_KEY, "ec", "ES256").split(".")
    es384 = b64(b'{"alg":"ES384","kid":"ec"}')
    assert reason(f"{es384}.{payload}.{signature}") == "bad_signature"
    assert reason(assertion(sub="other")) == "wrong_issuer"
    assert reason(assertion(), client_id="another-client") == "wrong_issuer"
    assert reason(assertion(aud="https://elsewhere/token")) == "wrong_audience"
    assert reason(assertion(), now=NOW + 150) == "expired"
    assert reason(assertion(iat=NOW + 100)) == "not_yet_valid"
    assert reason(assertion(nbf=NOW + 100)) == "not_yet_valid"
    assert reason(assertion(exp=NOW + 3600)) == "lifetime_too_long"
    assert reason(assertion(exp=NOW + 200), max_age=100) == "lifetime_too_long"
    for missing in ("exp", "iat", "jti", "iss", "sub", "aud"):
        omitted: dict[str, Any] = {missing: None}
        assert reason(assertion(**omitted)) == "malformed", missing
    assert reason(assertion(exp=float(NOW + 10))) == "malformed"
    assert reason(assertion(iat=True)) == "malformed"
    assert reason(assertion(scope="admin")) == "malformed"


def test_header_rules() -> None:
    token = jwt.encode({"iss": "a"}, ED_KEY, algorithm="EdDSA", headers={"kid": "ed",
                       "typ": "at+jwt"})  # fmt: skip
    assert reason(token) == "malformed"
    token = jwt.encode({"iss": "a"}, ED_KEY, algorithm="EdDSA", headers={"jwk": ED_JWK})
    assert reason(token) == "malformed"
    none = b64(b'{"alg":"none","kid":"ed"}') + "." + b64(b'{"iss":"a"}') + "."
    assert reason(none) == "bad_signature"
    hs = jwt.encode({"iss": "a"}, ED_JWK["x"], algorithm="HS256", headers={"kid": "ed"})
    assert reason(hs) == "bad_signature"


def test_invalid_registered_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        verify_client_assertion(assertion(), {"ed": ED_JWK | {"d": "x"}}, audience=TOKEN_URL,
                                now=NOW)  # fmt: skip


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = assertion()


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100), st.none()))
def test_fuzz_random_assertions(token: object) -> None:
    with pytest.raises(TokenError):
        check(token)


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(1, 8), st.text(max_size=8))
def test_fuzz_mutated_assertions_are_never_accepted(at: int, cut: int, insert: str) -> None:
    mutated = VALID[:at] + insert + VALID[at + cut :]
    if mutated != VALID:
        with pytest.raises(TokenError):
            check(mutated)


JWK_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=50),
                       st.lists(st.text(max_size=5), max_size=2))  # fmt: skip


@FUZZ
@given(st.one_of(
    st.dictionaries(st.text(max_size=5), JWK_VALUES, max_size=6),
    st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "d", "alg", "use", "kid"]),
                    JWK_VALUES, max_size=8).map(lambda d: ED_JWK | d),
    st.dictionaries(st.sampled_from(["x", "y", "alg", "key_ops"]), JWK_VALUES,
                    max_size=3).map(lambda d: EC_JWK | d),
    JWK_VALUES,
))  # fmt: skip
def test_fuzz_parse_client_jwk_raises_only_invalid_input(doc: object) -> None:
    try:
        key = parse_client_jwk(doc)
    except InvalidInput:
        return
    assert isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey)
    assert isinstance(doc, dict)
    assert "d" not in doc
    assert doc["kty"] in {"OKP", "EC"}
