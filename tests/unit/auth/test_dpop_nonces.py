"""Stateless DPoP nonces: windows, rotation, and forgeries."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicredits.auth.nonces import NonceSource

SECRET = b"s" * 32
NOW = 1_750_000_000  # a multiple of 100: window boundaries are easy to name


def test_valid_in_current_and_previous_window_only() -> None:
    source = NonceSource(SECRET, window_seconds=100)
    nonce = source.issue(NOW)
    assert source.issue(NOW + 99) == nonce  # one nonce per window, for every worker
    assert source.check(nonce, NOW)
    assert source.check(nonce, NOW + 199)
    assert not source.check(nonce, NOW + 200)
    assert not source.check(nonce, NOW - 1)  # a nonce from the future
    assert NonceSource(SECRET, window_seconds=100).check(nonce, NOW)  # another worker


def test_wrong_secret_and_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32
    issued_old = NonceSource(old).issue(NOW)
    assert not NonceSource(new).check(issued_old, NOW)
    rotated = NonceSource([new, old])
    assert rotated.check(issued_old, NOW)
    assert rotated.issue(NOW) == NonceSource(new).issue(NOW)


def test_tampered_window_is_refused() -> None:
    source = NonceSource(SECRET, window_seconds=100)
    raw = base64.urlsafe_b64decode(source.issue(NOW))
    window = int.from_bytes(raw[:8], "big")
    moved = base64.urlsafe_b64encode((window + 1).to_bytes(8, "big") + raw[8:]).decode()
    assert not source.check(moved, NOW + 100)


@pytest.mark.parametrize("nonce", [None, "", "short", "A" * 32, "+" * 32, "é" * 32])
def test_garbage_is_refused(nonce: str | None) -> None:
    assert not NonceSource(SECRET).check(nonce, NOW)


@given(st.text(max_size=64))
def test_fuzz_never_accepts_or_raises(nonce: str) -> None:
    assert not NonceSource(SECRET).check(nonce, NOW)


@pytest.mark.parametrize(
    ("secret", "window"), [(b"short", 300), ([], 300), ([SECRET, b"x"], 300), (SECRET, 0)]
)
def test_bad_configuration(secret: bytes | list[bytes], window: int) -> None:
    with pytest.raises(ValueError, match=r"secret|window"):
        NonceSource(secret, window_seconds=window)
