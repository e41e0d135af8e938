"""API keys: shown once, stored as a SHA-256 hash.

A key carries 256 random bits, so a fast hash is enough (nothing to brute-force); the
hash is the lookup index, and the short prefix lets an operator recognise a key in logs.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ak_"


def generate_api_key() -> tuple[str, str, str]:
    """Return ``(key, display_prefix, secret_hash)`` for a new API key."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:11], hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_id(kind: str) -> str:
    """Readable random ids: ``ten_...``, ``prj_...``, ``key_...``, ``bud_...``."""
    return f"{kind}_{secrets.token_hex(8)}"
