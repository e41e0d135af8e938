"""capability_authority.vy: signing keys with validity windows, and revocations."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from contracts_support import events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KID = b"kid-1".ljust(32, b"\0")
PUBLIC_KEY = bytes(range(32))
HASH = b"\x11" * 32


@pytest.fixture
def authority(capability_authority: Any) -> Any:
    return capability_authority


def test_register_key(authority: Any) -> None:
    authority.register_key(KID, PUBLIC_KEY, 1000)
    [registered] = events(authority, "KeyRegistered")
    assert (registered.kid, registered.public_key, registered.not_before) == (KID, PUBLIC_KEY, 1000)
    assert authority.keys(KID) == (PUBLIC_KEY, 1000, 0)


def test_register_key_rejects_stranger(authority: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        authority.register_key(KID, PUBLIC_KEY, 0)


def test_register_key_rejects_reuse_and_zeroes(authority: Any) -> None:
    authority.register_key(KID, PUBLIC_KEY, 0)
    with boa.reverts("capability_authority: kid already registered"):
        authority.register_key(KID, PUBLIC_KEY, 0)
    with boa.reverts("capability_authority: kid is zero"):
        authority.register_key(b"\0" * 32, PUBLIC_KEY, 0)
    with boa.reverts("capability_authority: public key is zero"):
        authority.register_key(b"kid-2".ljust(32, b"\0"), b"\0" * 32, 0)


def test_retire_key(authority: Any) -> None:
    authority.register_key(KID, PUBLIC_KEY, 1000)
    authority.retire_key(KID, 2000)
    [retired] = events(authority, "KeyRetired")
    assert (retired.kid, retired.not_after) == (KID, 2000)
    assert authority.keys(KID) == (PUBLIC_KEY, 1000, 2000)
    authority.retire_key(KID, 1500)  # shrinking is allowed
    assert authority.keys(KID)[2] == 1500


def test_retire_key_rejects_stranger_unknown_and_widening(authority: Any, stranger: str) -> None:
    authority.register_key(KID, PUBLIC_KEY, 1000)
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        authority.retire_key(KID, 2000)
    with boa.reverts("capability_authority: unknown kid"):
        authority.retire_key(b"kid-2".ljust(32, b"\0"), 2000)
    with boa.reverts("capability_authority: not_after before not_before"):
        authority.retire_key(KID, 1000)
    authority.retire_key(KID, 2000)
    with boa.reverts("capability_authority: window can only shrink"):
        authority.retire_key(KID, 3000)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    not_before=st.integers(0, 10**6),
    length=st.none() | st.integers(1, 10**6),
    at=st.integers(0, 3 * 10**6),
)
def test_key_valid_at_is_the_half_open_window(
    authority: Any, not_before: int, length: int | None, at: int
) -> None:
    # The autouse snapshot is per test, not per example: each example takes its own.
    with boa.env.anchor():
        authority.register_key(KID, PUBLIC_KEY, not_before)
        if length is not None:
            authority.retire_key(KID, not_before + length)
        expected = not_before <= at and (length is None or at < not_before + length)
        assert authority.key_valid_at(KID, at) == expected


def test_unknown_key_is_never_valid(authority: Any) -> None:
    assert not authority.key_valid_at(KID, 0)
    assert authority.keys(KID) == (b"\0" * 32, 0, 0)


def test_revoke_token(authority: Any) -> None:
    assert not authority.token_revoked(HASH)
    authority.revoke_token(HASH)
    assert events(authority, "TokenRevoked")[0].jti_hash == HASH
    assert authority.token_revoked(HASH)
    with boa.reverts("capability_authority: token already revoked"):
        authority.revoke_token(HASH)


@pytest.mark.parametrize(
    ("function", "view", "event"),
    [
        ("revoke_subject", "subject_revoked_before", "SubjectRevoked"),
        ("revoke_tenant", "tenant_revoked_before", "TenantRevoked"),
    ],
)
def test_revoke_before_only_moves_forward(
    authority: Any, function: str, view: str, event: str
) -> None:
    assert getattr(authority, view)(HASH) == 0
    getattr(authority, function)(HASH, 500)
    [logged] = events(authority, event)
    assert (logged[1], logged.before) == (HASH, 500)  # [0] is the emitting address
    assert getattr(authority, view)(HASH) == 500
    for earlier_or_same in (500, 499, 0):
        with boa.reverts("capability_authority: cut-off can only move forward"):
            getattr(authority, function)(HASH, earlier_or_same)
    getattr(authority, function)(HASH, 501)
    assert getattr(authority, view)(HASH) == 501


@pytest.mark.parametrize("function", ["revoke_token", "revoke_subject", "revoke_tenant"])
def test_revocations_reject_stranger(authority: Any, stranger: str, function: str) -> None:
    args = (HASH,) if function == "revoke_token" else (HASH, 1)
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        getattr(authority, function)(*args)


def test_transfer_ownership(authority: Any, stranger: str) -> None:
    authority.transfer_ownership(stranger)
    assert authority.owner() == stranger
    with boa.reverts("ownable: caller is not the owner"):
        authority.revoke_token(HASH)
