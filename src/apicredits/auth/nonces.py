"""Stateless DPoP server nonces (RFC 9449 §8): every worker and replica that shares the
secret issues and accepts the same nonces, with no shared storage.

A nonce is the time window it was issued in and an HMAC-SHA256 of it, base64url encoded.
It is accepted during its own window and the next one, so its lifetime is between one and two
windows. Within a window every worker hands out the same nonce, which keeps clients from
retrying in a loop when requests land on different workers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = ["NonceSource"]

_DOMAIN = b"apicredits/dpop-nonce/v1:"  # a MAC of this secret means nothing elsewhere
_WINDOW_BYTES = 8
_MAC_BYTES = 16  # 128 bits: forging is out of reach, the header stays short
_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")  # 24 bytes: one spelling, no padding


class NonceSource:
    """Issue and check nonces. With several secrets (rotation) the first signs and every
    one verifies: add the new secret in front, drop the old one after two windows."""

    def __init__(self, secret: bytes | Sequence[bytes], *, window_seconds: int = 300) -> None:
        secrets = [secret] if isinstance(secret, bytes) else list(secret)
        if not secrets or any(len(s) < 16 for s in secrets):
            raise ValueError("nonce secrets must be at least 16 bytes")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self._secrets = secrets
        self._window = window_seconds
        self._valid: dict[str, int] = {}  # nonce -> its window, for nonces already checked

    def _mac(self, secret: bytes, window: int) -> bytes:
        message = _DOMAIN + window.to_bytes(_WINDOW_BYTES, "big")
        return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, now: int) -> str:
        window = now // self._window
        raw = window.to_bytes(_WINDOW_BYTES, "big") + self._mac(self._secrets[0], window)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def check(self, nonce: str | None, now: int) -> bool:
        """True if ``nonce`` was issued by a holder of one of the secrets in the current
        or the previous window."""
        if nonce is None:
            return False
        current = now // self._window
        known = self._valid.get(nonce)  # every proof of a client repeats the nonce it was given
        if known is not None:
            return known in (current, current - 1)
        if not _SHAPE.fullmatch(nonce):
            return False
        raw = base64.urlsafe_b64decode(nonce)
        window = int.from_bytes(raw[:_WINDOW_BYTES], "big")
        if window not in (current, current - 1):
            return False
        mac = raw[_WINDOW_BYTES:]
        # Every secret is tried (no early exit), each comparison in constant time.
        valid = False
        for secret in self._secrets:
            valid |= hmac.compare_digest(mac, self._mac(secret, window))
        if valid:  # only MACs that check out are remembered: forgeries cannot fill it
            if len(self._valid) >= 4096:
                self._valid.clear()
            self._valid[nonce] = window
        return valid
