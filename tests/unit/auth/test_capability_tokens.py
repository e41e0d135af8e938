from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, get_args

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicredits.auth.capabilities import (
    CapabilityClaims,
    Scope,
    allows,
    issue_token,
    require_scope,
    verify_token,
)
from apicredits.auth.errors import ScopeError, TokenError, TokenReason
from apicredits.auth.keys import KeyRing
from apicredits.errors import Forbidden, InvalidInput, Unauthorized

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
    fields.update(overrides)
    return CapabilityClaims.create(**fields)


def verify(token: object, ring: KeyRing = RING, **kwargs: Any) -> CapabilityClaims:
    options: dict[str, Any] = {"now": NOW + 1, "audience": AUD, "issuer": ISS} | kwargs
    return verify_token(ring, token, **options)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: bytes, sign: Any = None) -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(payload)
    signature = sign(head.encode()) if sign else b""
    return head + "." + b64(signature)


def signed(payload: dict[str, Any] | bytes, ring: KeyRing = RING, **header: Any) -> str:
    """A token over arbitrary content, correctly signed with the ring's current key."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = {"alg": "EdDSA", "typ": "at+jwt", "kid": ring.current.kid} | header
    return forge(head, body, ring.current.private_key.sign)


def reason(token: object, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as caught:
        verify(token, **kwargs)
    return caught.value.reason


def test_round_trip_keeps_every_claim() -> None:
    original = claims()
    token = issue_token(RING, original)
    assert verify(token) == original
    assert verify(token) == original  # a second time, from the verified-token memo
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": RING.current.kid}


def test_optional_claims_are_omitted_and_restored_as_none() -> None:
    original = claims(project_id=None, spend_cap_micro=None, requests_per_minute=None,
                      tokens_per_minute=None, max_concurrent=None)  # fmt: skip
    token = issue_token(RING, original)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert "project_id" not in payload
    assert "spend_cap_micro" not in payload
    assert payload["cnf"] == {"jkt": JKT}
    assert payload["client_id"] == "svc-search"
    assert verify(token) == original


def test_issue_refuses_expired_claims() -> None:
    assert issue_token(RING, claims(), NOW + 899)
    with pytest.raises(InvalidInput):
        issue_token(RING, claims(), NOW + 900)


def test_default_ttl_is_fifteen_minutes_and_at_most_an_hour() -> None:
    assert claims().exp - claims().iat == 900
    assert claims(ttl=3600).exp == NOW + 3600
    with pytest.raises(InvalidInput):
        claims(ttl=3601)
    with pytest.raises(InvalidInput):
        CapabilityClaims(**{**claims().__dict__, "exp": NOW + 3601})


@pytest.mark.parametrize(
    "override",
    [{"scopes": []}, {"scopes": ["openai.chat"]}, {"scopes": ["route:a b"]}, {"jkt": "short"},
     {"spend_cap_micro": -1}, {"spend_cap_micro": True}, {"requests_per_minute": 0},
     {"tenant_id": ""}, {"sub": " padded"}, {"now": -1}],
)  # fmt: skip
def test_invalid_claims_are_rejected_at_construction(override: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        claims(**override)


def test_expired_and_not_yet_valid_with_leeway() -> None:
    token = issue_token(RING, claims())
    assert verify(token, now=NOW + 900 + 29).jti
    assert reason(token, now=NOW + 900 + 30) == "expired"
    assert verify(token, now=NOW - 30).jti
    assert reason(token, now=NOW - 31) == "not_yet_valid"
    assert reason(token, now=NOW - 31, leeway=0) == "not_yet_valid"


def test_wrong_audience_and_issuer() -> None:
    token = issue_token(RING, claims())
    assert reason(token, audience="other") == "wrong_audience"
    assert reason(token, issuer="https://evil.example") == "wrong_issuer"


def test_bad_signature() -> None:
    token = issue_token(RING, claims())
    head, _payload, signature = token.split(".")
    other = claims(spend_cap_micro=10**12)
    other_payload = issue_token(RING, other).split(".")[1]
    assert reason(f"{head}.{other_payload}.{signature}") == "bad_signature"
    stranger = Ed25519PrivateKey.generate()
    assert reason(signed(claims().to_jwt_claims()).rsplit(".", 1)[0] + "." +
                  b64(stranger.sign(b"x"))) == "bad_signature"  # fmt: skip


def test_unknown_key() -> None:
    token = issue_token(KeyRing.create(NOW), claims())
    assert reason(token) == "unknown_key"
    assert reason(signed(claims().to_jwt_claims(), kid=42)) == "unknown_key"


def test_token_bound_to_other_key() -> None:
    token = issue_token(RING, claims())
    assert verify(token, jkt=JKT).jkt == JKT
    assert reason(token, jkt="A" * 43) == "token_bound_to_other_key"


def test_revoked() -> None:
    token = issue_token(RING, claims())
    assert reason(token, is_revoked=lambda c: c.sub == "svc-search") == "revoked"
    assert verify(token, is_revoked=lambda c: False).sub == "svc-search"


def test_lifetime_too_long_even_if_signed() -> None:
    payload = claims().to_jwt_claims() | {"exp": NOW + 3601}
    assert reason(signed(payload)) == "lifetime_too_long"


def test_rotation_overlap_then_key_retired_then_unknown() -> None:
    ring = KeyRing.create(NOW - 100, overlap_seconds=1800)
    token = issue_token(ring, claims(ttl=3600))
    rotated = ring.rotate(NOW)
    assert rotated.current.kid != ring.current.kid
    assert verify(token, ring=rotated, now=NOW + 1799).jti  # previous key, inside the overlap
    assert verify(issue_token(rotated, claims()), ring=rotated).jti
    with pytest.raises(TokenError) as caught:
        verify(token, ring=rotated, now=NOW + 1800)
    assert caught.value.reason == "key_retired"
    # after the memo saw it verify, a retired key still fails
    assert reason(token, ring=rotated, now=NOW + 1800) == "key_retired"
    pruned = rotated.rotate(NOW + 3600)
    assert reason(token, ring=pruned, now=NOW + 3600) == "unknown_key"


def test_key_retired_without_a_prior_verification() -> None:
    ring = KeyRing.create(NOW - 100, overlap_seconds=60)
    token = issue_token(ring, claims(jti="never-seen-before"))
    assert reason(token, ring=ring.rotate(NOW - 60)) == "key_retired"


@pytest.mark.parametrize("name", sorted(get_args(TokenReason)))
def test_every_reason_has_a_fixed_challenge(name: TokenReason) -> None:
    error = TokenError(name)
    assert error.reason == name
    assert error.details == {"reason": name}
    scheme = "DPoP" if name == "dpop_required" else "Bearer"
    assert error.www_authenticate.startswith(f'{scheme} error="invalid_token", error_description="')
    assert error.headers == {"WWW-Authenticate": error.www_authenticate}
    assert error.www_authenticate.count('"') == 4


def test_alg_none_is_rejected() -> None:
    token = forge({"alg": "none", "typ": "at+jwt", "kid": RING.current.kid},
                  json.dumps(claims().to_jwt_claims()).encode())  # fmt: skip
    assert reason(token) == "bad_signature"


def test_hs256_with_the_public_key_as_secret_is_rejected() -> None:
    payload = json.dumps(claims().to_jwt_claims()).encode()
    for secret in (RING.current.public_raw, json.dumps(RING.current.public_jwk()).encode(),
                   RING.current.public_jwk()["x"].encode()):  # fmt: skip
        token = forge({"alg": "HS256", "typ": "at+jwt", "kid": RING.current.kid}, payload,
                      lambda m, s=secret: hmac.new(s, m, hashlib.sha256).digest())  # fmt: skip
        assert reason(token) == "bad_signature"


def test_rs256_is_rejected() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims().to_jwt_claims(), rsa_key, algorithm="RS256",
                       headers={"typ": "at+jwt", "kid": RING.current.kid})  # fmt: skip
    assert reason(token) == "bad_signature"


@pytest.mark.parametrize(
    "header",
    [{"typ": "JWT"}, {"typ": "dpop+jwt"}, {"jku": "https://evil"}, {"jwk": {"kty": "OKP"}},
     {"crit": ["exp"]}],
)  # fmt: skip
def test_header_must_be_exactly_alg_typ_kid(header: dict[str, Any]) -> None:
    assert reason(signed(claims().to_jwt_claims(), **header)) == "malformed"


@pytest.mark.parametrize(
    "change",
    [{"exp": float(NOW + 900)}, {"iat": True}, {"aud": [AUD]}, {"scope": ""},
     {"scope": "route:a  model:b"}, {"cnf": {"jkt": JKT, "x5t": "a"}}, {"cnf": JKT},
     {"client_id": "someone-else"}, {"extra": 1}, {"spend_cap_micro": "5"}, {"jti": 7},
     {"nbf": NOW - 1}, {"project_id": None}, {"max_concurrent": None}],
)  # fmt: skip
def test_claims_are_parsed_strictly(change: dict[str, Any]) -> None:
    assert reason(signed(claims().to_jwt_claims() | change)) == "malformed"


def test_missing_claims_and_duplicate_keys_are_malformed() -> None:
    for name in ("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "cnf", "scope", "tenant_id"):
        payload = claims().to_jwt_claims()
        del payload[name]
        assert reason(signed(payload)) == "malformed", name
    body = json.dumps(claims().to_jwt_claims())
    duplicated = body[:-1] + ', "aud": "other"}'
    assert reason(signed(duplicated.encode())) == "malformed"
    assert reason(signed(b"[1, 2]")) == "malformed"
    assert reason(signed(b'{"exp": NaN}')) == "malformed"


@pytest.mark.parametrize(
    "token", [None, b"abc", "", "a.b", "a.b.c.d", "x" * 9000, "a.b.c", "eyJ9.e30.AA", "..", "€.€.€"]
)
def test_malformed_framing(token: object) -> None:
    assert reason(token) == "malformed"


def test_non_canonical_base64_is_malformed() -> None:
    token = issue_token(RING, claims(jti="non-canonical-b64"))
    head, payload, signature = token.split(".")
    assert reason(f"{head}=.{payload}.{signature}") == "malformed"
    assert reason(f"{head}.{payload}.{signature}==") == "malformed"
    assert reason(f"{head}.{payload}+.{signature}") == "malformed"


def test_errors_carry_codes_and_challenges() -> None:
    error = TokenError("expired")
    assert isinstance(error, Unauthorized)
    assert error.status == 401
    assert error.code == "invalid_token"
    assert error.details == {"reason": "expired"}
    assert error.to_dict()["error"]["reason"] == "expired"
    assert error.www_authenticate == (
        'Bearer error="invalid_token", error_description="the token has expired"'
    )


def test_scopes_allow_routes_and_models_by_glob() -> None:
    scopes = ("route:openai.chat", "route:anthropic.*", "model:sim-*", "model:gpt-4o")
    assert allows(scopes, "openai.chat", "sim-small")
    assert allows(scopes, "anthropic.messages", "gpt-4o")
    assert allows(scopes, "openai.chat")
    assert not allows(scopes, "openai.embeddings", "sim-small")
    assert not allows(scopes, "openai.chat", "gpt-4o-mini")
    assert not allows(("route:openai.chat",), "openai.chat", "sim-small")
    assert not allows(("model:*",), "openai.chat", "sim-small")
    assert Scope.parse("model:sim-*") == Scope("model", "sim-*")
    with pytest.raises(InvalidInput):
        Scope.parse("tenant:acme")


def test_require_scope_raises_insufficient_scope() -> None:
    require_scope(("route:openai.chat", "model:*"), "openai.chat", "sim")
    with pytest.raises(ScopeError) as caught:
        require_scope(("route:openai.chat",), "openai.chat", 'bad"model')
    error = caught.value
    assert isinstance(error, Forbidden)
    assert error.status == 403
    assert error.code == "insufficient_scope"
    assert error.details["reason"] == "insufficient_scope"
    assert error.www_authenticate.startswith('Bearer error="insufficient_scope"')
    assert 'scope="route:openai.chat"' in error.www_authenticate
    assert "bad" not in error.www_authenticate


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400), st.none(), st.integers()))
def test_fuzz_random_input_is_only_ever_a_token_error(token: object) -> None:
    with pytest.raises(TokenError):
        verify(token)


VALID = issue_token(RING, claims(jti="fuzz-base-token"))


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(1, 8), st.text(max_size=8))
def test_fuzz_mutated_tokens_are_never_accepted(at: int, cut: int, insert: str) -> None:
    mutated = VALID[:at] + insert + VALID[at + cut :]
    if mutated == VALID:
        return
    with pytest.raises(TokenError):
        verify(mutated)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(sorted(claims().to_jwt_claims())),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=20),
            st.lists(st.integers(), max_size=3),
        ),
    )
)
def test_fuzz_signed_garbage_claims_are_only_ever_token_errors(change: dict[str, Any]) -> None:
    payload = claims().to_jwt_claims() | change
    try:
        accepted = verify(signed(payload))
    except TokenError:
        return
    assert accepted.to_jwt_claims() == payload  # only a genuinely valid claim set passes
