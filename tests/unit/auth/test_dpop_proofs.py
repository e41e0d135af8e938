"""DPoP proofs: RFC vectors, every refusal reason, interop with PyJWT, and fuzzing."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.auth.dpop import (
    DPoPError,
    DPoPProof,
    ath_of,
    check_and_remember,
    jwk_thumbprint,
    normalize_htu,
    verify_proof,
)
from apicredits.auth.nonces import NonceSource
from apicredits.auth.replay import MemoryReplayCache

NOW = 1_750_000_000
URL = "https://api.example.com/v1/execute"
TOKEN = "cap.token.value"

# RFC 9449 §4.1 Figure 2 (proof), §6.1 Figure 9 (jkt), §7.1 (ath).
RFC9449_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoi"
    "UE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-G"
    "xA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC9449_JWK = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
# RFC 8037 Appendix A.1 / A.3: an Ed25519 public key and its thumbprint.
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_JKT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

Key = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: Key) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().public_bytes_raw())}
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }


def sign(key: Key, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(signing_input.encode())
    else:
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64(signature)}"


def make_proof(key: Key, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    full_header: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key)}
    full_header.update(header or {})
    full_claims: dict[str, Any] = {
        "jti": "jti-1",
        "htm": "POST",
        "htu": URL,
        "iat": NOW,
        "ath": ath_of(TOKEN),
    }
    full_claims.update(claims)
    return sign(key, full_header, {k: v for k, v in full_claims.items() if v is not None})


def verify(proof: str | None, **overrides: Any) -> DPoPProof:
    options: dict[str, Any] = {
        "method": "POST",
        "url": URL,
        "now": NOW,
        "access_token": TOKEN,
        "expected_jkt": None,
        "nonce_required": False,
        "nonce_check": None,
    }
    options.update(overrides)
    return verify_proof(proof, **options)


def refused(proof: str | None, **overrides: Any) -> DPoPError:
    with pytest.raises(DPoPError) as err:
        verify(proof, **overrides)
    return err.value


@pytest.fixture(params=["Ed25519", "P-256"])
def key(request: pytest.FixtureRequest) -> Key:
    if request.param == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def test_rfc9449_example_proof_verifies() -> None:
    proof = verify_proof(
        RFC9449_PROOF,
        method="POST",
        url="https://server.example.com/token",
        now=1562262616,
        access_token=None,
        expected_jkt=RFC9449_JKT,
        nonce_required=False,
        nonce_check=None,
    )
    assert proof == DPoPProof(
        RFC9449_JKT, "-BwC3ESc6acc2lTc", "POST", "https://server.example.com/token",
        1562262616, None, None,
    )  # fmt: skip


def test_rfc_vectors_for_thumbprints_and_ath() -> None:
    assert jwk_thumbprint(RFC9449_JWK) == RFC9449_JKT
    assert jwk_thumbprint(RFC8037_JWK) == RFC8037_JKT
    assert ath_of("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == (
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_pinned_thumbprints_agree_with_joserfc() -> None:
    from joserfc.jwk import thumbprint

    ed = public_jwk(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    p256 = public_jwk(ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1()))
    assert jwk_thumbprint(ed) == "1IG2tMH7J2wbJZnOf8LJzQitKf7LMvoAElsuDMVM54Y"
    assert jwk_thumbprint(p256) == "YAcUDLCQ7NaGhBfNsITRnqRslixzXSn4uHKpxkktNdg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags "EdDSA" as deprecated by RFC 9864
        for jwk in (ed, p256, RFC9449_JWK, RFC8037_JWK):
            assert jwk_thumbprint(jwk) == thumbprint(jwk)


@pytest.mark.parametrize(
    "jwk",
    [
        {**RFC8037_JWK, "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"},
        {"kty": "RSA", "n": "0vx7", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": RFC9449_JWK["x"], "y": RFC9449_JWK["y"]},
        {"kty": "EC", "crv": "P-256", "x": RFC9449_JWK["x"]},
        {"kty": "OKP", "crv": "Ed25519", "x": "too-short"},
        {"kty": "OKP", "crv": "Ed25519", "x": 5},
        {**RFC9449_JWK, "y": RFC9449_JWK["x"]},  # not on the curve
    ],
)
def test_thumbprint_refuses_private_unsupported_and_invalid_keys(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"jwk|key|supported"):
        jwk_thumbprint(jwk)


def test_thumbprint_ignores_extra_public_members() -> None:
    assert jwk_thumbprint({**RFC8037_JWK, "kid": "k1", "use": "sig"}) == RFC8037_JKT


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://API.Example.com:443/v1/x?q=1#f", "https://api.example.com/v1/x"),
        ("http://example.com:80", "http://example.com/"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://[::1]:443/%7euser/%2f%2F", "https://[::1]/~user/%2F%2F"),
    ],
)
def test_normalize_htu(url: str, normal: str) -> None:
    assert normalize_htu(url) == normal


@pytest.mark.parametrize("url", ["/relative", "ftp://example.com/", "https://h:99999/"])
def test_normalize_htu_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)url|port"):
        normalize_htu(url)


def test_valid_proof_both_curves(key: Key) -> None:
    jkt = jwk_thumbprint(public_jwk(key))
    proof = verify(make_proof(key, htu="https://API.example.com:443" + URL[23:] + "?ignored=1"))
    assert proof.jkt == jkt
    assert (proof.jti, proof.htm, proof.iat, proof.ath) == ("jti-1", "POST", NOW, ath_of(TOKEN))
    assert verify(make_proof(key, ath=None), access_token=None, expected_jkt=jkt).ath is None


def test_proofs_signed_by_pyjwt_verify(key: Key) -> None:
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    claims = {"jti": "pyjwt", "htm": "POST", "htu": URL, "iat": NOW, "ath": ath_of(TOKEN)}
    headers = {"typ": "dpop+jwt", "jwk": public_jwk(key)}
    assert verify(jwt.encode(claims, key, algorithm=alg, headers=headers)).jti == "pyjwt"


def test_iat_window_edges(key: Key) -> None:
    assert verify(make_proof(key, iat=NOW - 300)).iat == NOW - 300
    assert verify(make_proof(key, iat=NOW + 30)).iat == NOW + 30
    assert refused(make_proof(key, iat=NOW - 301)).reason == "stale"
    assert refused(make_proof(key, iat=NOW + 31)).reason == "future"
    assert refused(make_proof(key, iat=NOW - 61), max_age=60).reason == "stale"


def _signature_flipped(key: Key) -> str:
    head, _, signature = make_proof(key).rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 1
    return f"{head}.{b64(bytes(raw))}"


def _non_canonical(key: Key) -> str:
    # The last character of a 64-byte signature carries 2 unused bits: flip one.
    proof = make_proof(key)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return proof[:-1] + alphabet[alphabet.index(proof[-1]) ^ 1]


def _wrong_alg_for_key(key: Key) -> str:
    other = "ES256" if isinstance(key, ed25519.Ed25519PrivateKey) else "EdDSA"
    return make_proof(key, header={"alg": other})


@pytest.mark.parametrize(
    ("reason", "build", "overrides"),
    [
        ("malformed", lambda k: "a.b", {}),
        ("malformed", lambda k: make_proof(k) + ".x", {}),
        ("malformed", lambda k: "W10." + make_proof(k).split(".", 1)[1], {}),  # header []
        ("malformed", lambda k: "!!!!." + make_proof(k).split(".", 1)[1], {}),
        ("malformed", _non_canonical, {}),
        ("malformed", lambda k: make_proof(k, header={"jwk": None}), {}),
        ("malformed", lambda k: make_proof(k, header={"crit": ["exp"]}), {}),
        ("malformed", lambda k: make_proof(k, header={"jwk": {**public_jwk(k), "d": "AA"}}), {}),
        ("malformed", lambda k: make_proof(k, jti=""), {}),
        ("malformed", lambda k: make_proof(k, jti="j" * 129), {}),
        ("malformed", lambda k: make_proof(k, iat="now"), {}),
        ("malformed", lambda k: make_proof(k, iat=True), {}),
        ("malformed", lambda k: make_proof(k, iat=float("nan")), {}),
        ("future", lambda k: make_proof(k, iat=10**400), {}),
        ("wrong_typ", lambda k: make_proof(k, header={"typ": "JWT"}), {}),
        ("wrong_alg", lambda k: make_proof(k, header={"alg": "none"}), {}),
        ("wrong_alg", lambda k: make_proof(k, header={"alg": "HS256"}), {}),
        ("wrong_alg", lambda k: make_proof(k, header={"alg": ["EdDSA"]}), {}),
        ("wrong_typ", lambda k: make_proof(k, header={"typ": ["dpop+jwt"]}), {}),
        ("wrong_alg", _wrong_alg_for_key, {}),
        ("bad_signature", _signature_flipped, {}),
        ("bad_signature", lambda k: make_proof(k)[:-86] + "A" * 86, {}),
        ("wrong_htm", lambda k: make_proof(k, htm="post"), {}),
        ("wrong_htm", lambda k: make_proof(k, htm=None), {}),
        ("wrong_htu", lambda k: make_proof(k, htu=URL + "/other"), {}),
        ("wrong_htu", lambda k: make_proof(k, htu="http://api.example.com/v1/execute"), {}),
        ("wrong_htu", lambda k: make_proof(k, htu=7), {}),
        ("stale", lambda k: make_proof(k, iat=NOW - 3600), {}),
        ("future", lambda k: make_proof(k, iat=NOW + 3600), {}),
        ("missing_ath", lambda k: make_proof(k, ath=None), {}),
        ("wrong_ath", lambda k: make_proof(k), {"access_token": "another.token"}),
        ("key_mismatch", lambda k: make_proof(k), {"expected_jkt": RFC9449_JKT}),
    ],
)
def test_refusal_reasons(key: Key, reason: str, build: Any, overrides: dict[str, Any]) -> None:
    err = refused(build(key), **overrides)
    assert err.reason == reason
    assert err.code == "invalid_dpop_proof"
    assert err.status == 401
    assert err.to_dict()["error"]["reason"] == reason
    assert err.www_authenticate.startswith('DPoP error="invalid_dpop_proof", error_description="')
    assert err.www_authenticate.endswith('algs="EdDSA ES256"')
    assert err.headers == {"WWW-Authenticate": err.www_authenticate}


@pytest.mark.parametrize("proof", [None, ""])
def test_missing(proof: str | None) -> None:
    assert refused(proof).reason == "missing"


def test_signed_by_another_key_than_the_embedded_jwk(key: Key) -> None:
    other = public_jwk(ed25519.Ed25519PrivateKey.generate())
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        other = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    assert refused(make_proof(key, header={"jwk": other})).reason == "bad_signature"


def test_nonce_required(key: Key) -> None:
    nonces = NonceSource(b"0123456789abcdef0123456789abcdef", window_seconds=60)
    options: dict[str, Any] = {"nonce_required": True, "nonce_check": nonces.check}
    err = refused(make_proof(key), **options, issue_nonce=nonces.issue)
    assert err.reason == "use_dpop_nonce"
    assert err.www_authenticate.startswith('DPoP error="use_dpop_nonce", ')
    assert err.nonce is not None
    assert err.headers["DPoP-Nonce"] == err.nonce
    assert verify(make_proof(key, nonce=err.nonce), **options).nonce == err.nonce
    stale = nonces.issue(NOW - 120)
    stale_err = refused(make_proof(key, nonce=stale), **options)
    assert stale_err.reason == "use_dpop_nonce"
    assert stale_err.nonce is None
    with pytest.raises(ValueError, match="nonce_check"):
        verify(make_proof(key), nonce_required=True, nonce_check=None)


@pytest.mark.anyio
async def test_replayed_jti_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cache = MemoryReplayCache()
    proof = verify(make_proof(key))
    await check_and_remember(cache, proof)
    with pytest.raises(DPoPError) as err:
        await check_and_remember(cache, verify(make_proof(key)))
    assert err.value.reason == "replayed"
    # The same jti under another key is another proof.
    await check_and_remember(cache, verify(make_proof(ed25519.Ed25519PrivateKey.generate())))


FUZZ_KEYS: list[Key] = [
    ed25519.Ed25519PrivateKey.generate(),
    ec.generate_private_key(ec.SECP256R1()),
]
VALID = [make_proof(k) for k in FUZZ_KEYS]
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=600), st.text(alphabet=B64_CHARS, max_size=600)))
def test_fuzz_random_strings_are_refused(proof: str) -> None:
    with pytest.raises(DPoPError):
        verify(proof)


@settings(max_examples=400, deadline=None)
@given(
    which=st.integers(0, 1),
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(B64_CHARS)), min_size=1, max_size=3
    ),
)
def test_fuzz_mutated_valid_proofs_are_refused(which: int, edits: list[tuple[int, str]]) -> None:
    chars = list(VALID[which])
    for position, char in edits:
        chars[position % len(chars)] = char
    mutated = "".join(chars)
    if mutated == VALID[which]:
        return
    with pytest.raises(DPoPError):
        verify(mutated)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
FIELDS = {"typ", "alg", "jwk", "crit", "jti", "htm", "htu", "iat", "ath", "nonce"}


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, 1),
    header=st.dictionaries(st.sampled_from(sorted(FIELDS)), JSON, max_size=3),
    claims=st.dictionaries(st.sampled_from(sorted(FIELDS)), JSON, max_size=4),
)
def test_fuzz_signed_proofs_with_odd_members_raise_only_dpop_errors(
    which: int, header: dict[str, Any], claims: dict[str, Any]
) -> None:
    proof = make_proof(FUZZ_KEYS[which], header=header, **claims)
    try:
        accepted = verify(proof)
    except DPoPError:
        return
    # Accepted only when every checked member kept a valid value.
    assert accepted.htm == "POST"
    assert accepted.iat == NOW
    assert "crit" not in header
