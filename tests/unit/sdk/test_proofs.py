"""Client assertions and DPoP proofs, checked by the server's own verifiers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from apicredits.auth.assertions import verify_client_assertion
from apicredits.auth.dpop import DPoPError, ath_of, verify_proof
from apicredits.auth.errors import TokenError
from apicredits.sdk import ServiceKey, client_assertion, dpop_proof
from apicredits.sdk.proofs import access_token_hash, htu_of

NOW = 1_750_000_000
TOKEN_URL = "https://gw.example/v1/capabilities"


def part(jws: str, index: int) -> dict[str, Any]:
    segment = jws.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


@pytest.fixture(params=["Ed25519", "P-256"])
def key(request: pytest.FixtureRequest) -> ServiceKey:
    return ServiceKey.generate(request.param)


def test_client_assertion_is_accepted_by_the_server(key: ServiceKey) -> None:
    assertion = client_assertion(key, client_id="svc", audience=TOKEN_URL, now=NOW, jti="j-1")
    kid, verified = verify_client_assertion(
        assertion, {key.kid: key.public_jwk()}, audience=TOKEN_URL, now=NOW, client_id="svc"
    )
    assert kid == key.kid
    assert (verified.client_id, verified.jti, verified.exp - verified.iat) == ("svc", "j-1", 60)
    assert part(assertion, 0) == {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
    assert part(assertion, 1)["sub"] == "svc"


def test_client_assertion_for_another_audience_is_refused(key: ServiceKey) -> None:
    assertion = client_assertion(key, client_id="svc", audience=TOKEN_URL + "/", now=NOW)
    with pytest.raises(TokenError) as caught:
        verify_client_assertion(assertion, {key.kid: key.public_jwk()}, audience=TOKEN_URL, now=NOW)
    assert caught.value.reason == "wrong_audience"


def test_client_assertions_get_fresh_jtis(key: ServiceKey) -> None:
    first, second = (
        part(client_assertion(key, client_id="svc", audience=TOKEN_URL, now=NOW), 1)
        for _ in range(2)
    )
    assert first["jti"] != second["jti"]


def test_dpop_proof_for_a_resource_request_is_accepted(key: ServiceKey) -> None:
    url = "https://gw.example/v1/chat/completions?stream=1#x"
    proof = dpop_proof(key, method="post", url=url, now=NOW, nonce="n-1", access_token="tok.en")
    verified = verify_proof(
        proof, method="POST", url=url, now=NOW, access_token="tok.en",
        expected_jkt=key.thumbprint(), nonce_required=True,
        nonce_check=lambda nonce, now: nonce == "n-1",
    )  # fmt: skip
    assert verified.htu == "https://gw.example/v1/chat/completions"
    assert verified.ath == ath_of("tok.en") == access_token_hash("tok.en")
    header = part(proof, 0)
    assert header == {
        "typ": "dpop+jwt",
        "alg": key.algorithm,
        "jwk": key.public_jwk(with_kid=False),
    }


def test_dpop_proof_without_ath_is_refused_on_resources(key: ServiceKey) -> None:
    proof = dpop_proof(key, method="GET", url=TOKEN_URL, now=NOW)
    assert part(proof, 1).keys() == {"htm", "htu", "iat", "jti"}
    with pytest.raises(DPoPError) as caught:
        verify_proof(
            proof, method="GET", url=TOKEN_URL, now=NOW, access_token="tok",
            expected_jkt=None, nonce_required=False, nonce_check=None,
        )  # fmt: skip
    assert caught.value.reason == "missing_ath"


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://gw.example/v1/x?a=1#f", "https://gw.example/v1/x"),
        ("https://gw.example", "https://gw.example/"),
        ("http://gw.example:8080/p", "http://gw.example:8080/p"),
    ],
)
def test_htu_drops_query_and_fragment(url: str, htu: str) -> None:
    assert htu_of(url) == htu
