"""Sign-In with Ethereum: the EIP-4361 text, strict parsing, and every verification refusal."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.auth.errors import TokenError
from apicredits.auth.siwe import (
    SiweError,
    SiweMessage,
    parse_rfc3339,
    parse_siwe,
    rfc3339,
    verify_siwe,
)
from apicredits.errors import Unauthorized

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-01T12:00:00Z"
DOMAIN = "control.apicredits.example"
WALLET = Account.create()
OTHER = Account.create()

# The example message of ERC-4361 (with its statement, expiry and resources), byte for byte.
SPEC_EXAMPLE = (
    "example.com wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
    "\n"
    "I accept the ExampleOrg Terms of Service: https://example.com/tos\n"
    "\n"
    "URI: https://example.com/login\n"
    "Version: 1\n"
    "Chain ID: 1\n"
    "Nonce: 32891756\n"
    "Issued At: 2021-09-30T16:25:24Z\n"
    "Resources:\n"
    "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
    "- https://example.com/my-web2-claim.json"
)


def message(**overrides: Any) -> SiweMessage:
    fields: dict[str, Any] = {
        "domain": DOMAIN,
        "address": WALLET.address,
        "statement": "Sign in to the apicredits control plane.",
        "uri": f"https://{DOMAIN}/login",
        "chain_id": 8453,
        "nonce": "k3Nq8ZpA1xYv",
        "issued_at": rfc3339(NOW - timedelta(minutes=1)),
        "expiration_time": rfc3339(NOW + timedelta(minutes=10)),
    } | overrides
    return SiweMessage(**fields)


def sign(text: str, account: Any = WALLET) -> str:
    return str(account.sign_message(encode_defunct(text=text)).signature.hex())


class Nonces:
    """What the control plane keeps: issued nonces, each accepted once."""

    def __init__(self, *issued: str) -> None:
        self.issued = set(issued)

    def __call__(self, nonce: str) -> bool:
        if nonce in self.issued:
            self.issued.remove(nonce)
            return True
        return False


def verify(text: str, signature: str, **options: Any) -> SiweMessage:
    kwargs: dict[str, Any] = {
        "domain": DOMAIN,
        "now": NOW,
        "nonce_check": Nonces("k3Nq8ZpA1xYv"),
    } | options
    return verify_siwe(text, signature, **kwargs)


def refusal(action: Callable[[], object]) -> SiweError:
    with pytest.raises(SiweError) as caught:
        action()
    return caught.value


def test_the_spec_example_round_trips() -> None:
    parsed = parse_siwe(SPEC_EXAMPLE)
    assert parsed.domain == "example.com"
    assert parsed.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert parsed.nonce == "32891756"
    assert parsed.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )
    assert parsed.expiration_time is None
    assert parsed.to_text() == SPEC_EXAMPLE


def test_to_text_is_the_eip_layout() -> None:
    full = message(
        scheme="https", not_before=rfc3339(NOW - timedelta(minutes=2)), request_id="req-1",
        resources=("https://control.apicredits.example/tenants/acme",),
    )  # fmt: skip
    assert full.to_text().split("\n") == [
        f"https://{DOMAIN} wants you to sign in with your Ethereum account:",
        WALLET.address,
        "",
        "Sign in to the apicredits control plane.",
        "",
        f"URI: https://{DOMAIN}/login",
        "Version: 1",
        "Chain ID: 8453",
        "Nonce: k3Nq8ZpA1xYv",
        "Issued At: 2026-03-01T11:59:00Z",
        "Expiration Time: 2026-03-01T12:10:00Z",
        "Not Before: 2026-03-01T11:58:00Z",
        "Request ID: req-1",
        "Resources:",
        "- https://control.apicredits.example/tenants/acme",
    ]
    assert parse_siwe(full.to_text()) == full


def test_without_a_statement_two_blank_lines_follow_the_address() -> None:
    bare = message(statement=None, expiration_time=None)
    lines = bare.to_text().split("\n")
    assert lines[1:5] == [WALLET.address, "", "", f"URI: https://{DOMAIN}/login"]
    assert lines[-1] == "Issued At: 2026-03-01T11:59:00Z"
    assert parse_siwe(bare.to_text()) == bare


def test_a_message_signed_by_a_fresh_wallet_verifies() -> None:
    text = message().to_text()
    verified = verify(text, sign(text), uri=f"https://{DOMAIN}/login", chain_id=8453)
    assert verified.address == WALLET.address
    assert verify(text, "0x" + sign(text), nonce_check=lambda nonce: True) == verified


def test_wrong_signer_is_refused() -> None:
    text = message().to_text()
    error = refusal(lambda: verify(text, sign(text, OTHER)))
    assert (error.reason, error.field) == ("bad_signature", "address")
    error = refusal(lambda: verify(text, sign(text + " ")))  # signed another text
    assert error.reason == "bad_signature"


@pytest.mark.parametrize(
    "signature",
    ["", "0x", "zz" * 65, "00" * 64, "00" * 66, "00" * 65, "11" * 64 + "05", None, 7],
)
def test_unusable_signatures_are_refused(signature: Any) -> None:
    text = message().to_text()
    error = refusal(lambda: verify(text, signature))
    assert error.reason in ("malformed", "bad_signature")
    assert error.field in ("signature", "address")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"domain": "evil.example"}, "domain"),
        ({"uri": "https://evil.example/login"}, "uri"),
        ({"chain_id": 1}, "chain_id"),
    ],
)
def test_wrong_audience_is_refused(options: dict[str, Any], field: str) -> None:
    text = message().to_text()
    error = refusal(lambda: verify(text, sign(text), **options))
    assert (error.reason, error.field) == ("wrong_audience", field)


def test_a_scheme_in_the_message_must_be_the_expected_one() -> None:
    text = message(scheme="http").to_text()
    error = refusal(lambda: verify(text, sign(text)))
    assert (error.reason, error.field) == ("wrong_audience", "scheme")
    assert verify(text, sign(text), scheme="http").scheme == "http"


def test_expired_is_refused() -> None:
    text = message(expiration_time=rfc3339(NOW - timedelta(seconds=31))).to_text()
    error = refusal(lambda: verify(text, sign(text)))
    assert (error.reason, error.field) == ("expired", "expiration_time")
    assert verify(text, sign(text), leeway=60).nonce == "k3Nq8ZpA1xYv"
    unix = int(NOW.timestamp())
    assert refusal(lambda: verify(text, sign(text), now=unix)).reason == "expired"


def test_not_yet_valid_is_refused() -> None:
    text = message(not_before=rfc3339(NOW + timedelta(minutes=5))).to_text()
    error = refusal(lambda: verify(text, sign(text)))
    assert (error.reason, error.field) == ("not_yet_valid", "not_before")
    later = NOW + timedelta(minutes=5)
    assert verify(text, sign(text), now=later).not_before == "2026-03-01T12:05:00Z"
    future = message(issued_at=rfc3339(NOW + timedelta(minutes=5))).to_text()
    error = refusal(lambda: verify(future, sign(future)))
    assert (error.reason, error.field) == ("not_yet_valid", "issued_at")


def test_times_with_offsets_are_compared_as_instants() -> None:
    text = message(expiration_time="2026-03-01T13:00:00+02:00").to_text()  # 11:00Z: over
    assert refusal(lambda: verify(text, sign(text))).reason == "expired"
    text = message(expiration_time="2026-03-01T07:10:00.5-05:00").to_text()  # 12:10:00.5Z
    assert verify(text, sign(text)).expiration_time == "2026-03-01T07:10:00.5-05:00"


def test_a_nonce_is_accepted_once() -> None:
    nonces = Nonces("k3Nq8ZpA1xYv")
    text = message().to_text()
    verify(text, sign(text), nonce_check=nonces)
    error = refusal(lambda: verify(text, sign(text), nonce_check=nonces))
    assert (error.reason, error.field) == ("replayed", "nonce")
    assert refusal(lambda: verify(text, sign(text), nonce_check=Nonces())).field == "nonce"


def test_the_nonce_is_only_spent_by_an_otherwise_valid_message() -> None:
    nonces = Nonces("k3Nq8ZpA1xYv")
    text = message().to_text()
    refusal(lambda: verify(text, sign(text, OTHER), nonce_check=nonces))
    refusal(lambda: verify(text, sign(text), domain="evil.example", nonce_check=nonces))
    assert nonces.issued == {"k3Nq8ZpA1xYv"}


def test_a_checksummed_address_is_required() -> None:
    lower = WALLET.address.lower()
    text = message().to_text().replace(WALLET.address, lower)
    error = refusal(lambda: parse_siwe(text))
    assert (error.reason, error.field) == ("malformed", "address")
    assert refusal(lambda: message(address=lower)).field == "address"
    assert refusal(lambda: message(address=WALLET.address[:-1])).field == "address"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t + "\n",
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("Version: 1", "Version: 2"),
        lambda t: t.replace("Chain ID: 8453", "Chain ID: 08453"),
        lambda t: t.replace("Chain ID: 8453", "Chain ID: 0x2105"),
        lambda t: t.replace("Nonce: k3Nq8ZpA1xYv", "Nonce: short1"),
        lambda t: t.replace("Nonce: k3Nq8ZpA1xYv", "Nonce: k3Nq8ZpA-xYv"),
        lambda t: t.replace("Issued At: 2026-03-01T11:59:00Z", "Issued At: 2026-02-30T11:59:00Z"),
        lambda t: t.replace("Issued At: 2026-03-01T11:59:00Z", "Issued At: 2026-03-01 11:59:00Z"),
        lambda t: t.replace("Issued At: 2026-03-01T11:59:00Z", "Issued At: 2026-03-01T11:59:00"),
        lambda t: t.replace("URI: ", "Uri: "),
        lambda t: t.replace("URI: https://", "URI: not a uri "),
        lambda t: t.replace(" wants you", "  wants you"),
        lambda t: t.replace("Ethereum account:", "Ethereum account"),
        lambda t: t.replace("control plane.", 'control "plane".'),
        lambda t: t.replace("\n\nURI", "\nURI"),
        lambda t: t.replace("\n\nSign in", "\nSign in"),
        lambda t: t.replace("Expiration Time", "Expiry Time"),
        lambda t: t.replace("Expiration Time", "Not Before") + "\nExpiration Time: " + NOW_TEXT,
        lambda t: t + "\nResources:",
        lambda t: t + "\nResources:\n-https://x.example",
        lambda t: t.replace(DOMAIN, f"ftp:/{DOMAIN}", 1),
        lambda t: t.replace(DOMAIN, f"://{DOMAIN}", 1),
        lambda t: t.replace(DOMAIN, "bad domain", 1),
        lambda t: t.replace(DOMAIN, f"{DOMAIN}:99999", 1),
        lambda t: "",
    ],
)
def test_malformed_messages_are_refused(mutate: Callable[[str], str]) -> None:
    text = mutate(message().to_text())
    error = refusal(lambda: parse_siwe(text))
    assert error.reason == "malformed"
    assert isinstance(error, TokenError)
    assert isinstance(error, Unauthorized)
    assert error.to_dict()["error"]["field"] == error.field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nonce", "abc"), ("chain_id", 0), ("chain_id", True), ("version", "2"),
        ("statement", "two\nlines"), ("statement", ""), ("uri", "/relative"),
        ("issued_at", "yesterday"), ("request_id", "a b"), ("resources", ["https://x"]),
        ("scheme", "1http"), ("not_before", "2026-03-01T11:58:00+24:00"),
    ],
)  # fmt: skip
def test_construction_validates_every_field(field: str, value: object) -> None:
    assert refusal(lambda: message(**{field: value})).field == field


def test_rfc3339_helpers() -> None:
    assert rfc3339(NOW) == "2026-03-01T12:00:00Z"
    assert rfc3339(NOW.replace(microsecond=5)) == "2026-03-01T12:00:00.000005Z"
    assert parse_rfc3339("2026-03-01t12:00:00z") == NOW
    assert parse_rfc3339("2026-03-01T14:00:00.000000001+02:00") == NOW
    with pytest.raises(ValueError, match="timezone"):
        rfc3339(NOW.replace(tzinfo=None))
    with pytest.raises(SiweError):
        parse_rfc3339("2026-03-01T23:59:60Z")  # leap seconds are not representable


def test_replace_keeps_validation() -> None:
    with pytest.raises(SiweError):
        dataclasses.replace(message(), nonce="x")


# Hypothesis: whatever arrives, the only exception is a TokenError.

LINE_PARTS = st.sampled_from(
    [
        f"{DOMAIN} wants you to sign in with your Ethereum account:", WALLET.address, "",
        "URI: https://a.example", "Version: 1", "Chain ID: 1", "Nonce: abcdefgh12",
        "Issued At: 2026-03-01T11:59:00Z", "Expiration Time: 2026-03-01T11:59:00Z",
        "Not Before: 9999-99-99T99:99:99Z", "Request ID: %zz", "Resources:", "- https://b",
        "- ", "Statement with: colons", "Chain ID: 99999999999999999999999",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.lists(LINE_PARTS | st.text(max_size=30)).map("\n".join)))
def test_random_text_raises_only_token_errors(text: str) -> None:
    try:
        parsed = parse_siwe(text)
    except TokenError:
        return
    assert parsed.to_text() == text


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=10_000),
    replacement=st.text(max_size=5),
    signature=st.one_of(st.text(max_size=140), st.binary(min_size=65, max_size=65).map(bytes.hex)),
)
def test_mutated_messages_and_signatures_raise_only_token_errors(
    index: int, replacement: str, signature: str
) -> None:
    text = message().to_text()
    index %= len(text)
    mutated = text[:index] + replacement + text[index + 1 :]
    with contextlib.suppress(TokenError):
        verify(mutated, signature)


@settings(max_examples=100, deadline=None)
@given(
    statement=st.none() | st.text("abcXYZ019 -._~:/?#[]@!$&'()*+,;=", min_size=1, max_size=60),
    nonce=st.text(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=40
    ),
    chain_id=st.integers(min_value=1, max_value=2**64),
    seconds=st.integers(min_value=0, max_value=2**33),
    resources=st.lists(
        st.sampled_from(["https://a.example/x", "ipfs://cid", "urn:x:y"]), max_size=3
    ),
)
def test_generated_messages_round_trip(
    statement: str | None, nonce: str, chain_id: int, seconds: int, resources: list[str]
) -> None:
    issued = rfc3339(datetime.fromtimestamp(seconds, UTC))
    original = message(
        statement=statement, nonce=nonce, chain_id=chain_id, issued_at=issued,
        expiration_time=None, resources=tuple(resources),
    )  # fmt: skip
    assert parse_siwe(original.to_text()) == original
