"""Authentication behind one interface: headers in, ``Principal`` out.

API keys live here; capability tokens (the default) are ``auth.CapabilityAuthenticator``,
which falls back to this one for tenants that opt in to static keys.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping

from apicredits.errors import Unauthorized
from apicredits.tenants.directory import Directory
from apicredits.tenants.model import Principal


class Authenticator(abc.ABC):
    @abc.abstractmethod
    async def authenticate(
        self, headers: Mapping[str, str], *, method: str = "POST", url: str = ""
    ) -> Principal:
        """Establish the caller from request headers (lower-case names) or raise. ``method``
        and ``url`` are the request's, for proofs of possession that sign them (DPoP)."""


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The credential where each SDK puts it: Bearer, ``x-api-key``, ``x-goog-api-key``."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or None


class ApiKeyAuthenticator(Authenticator):
    """API keys, with successful look-ups cached for ``cache_seconds`` (so a revocation
    reaches every worker within that time; unknown keys are never cached)."""

    def __init__(self, directory: Directory, *, cache_seconds: float = 5.0) -> None:
        self.directory = directory
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(
        self, headers: Mapping[str, str], *, method: str = "POST", url: str = ""
    ) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise Unauthorized("no credential presented")
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        cred = await self.directory.credential_for_key(key)
        if cred is None or cred.revoked:
            self._cache.pop(key, None)
            raise Unauthorized("unknown or revoked credential")
        if len(self._cache) > 100_000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        principal = Principal(
            cred.tenant_id,
            cred.project_id,
            cred.id,
            cred.requests_per_minute,
            cred.tokens_per_minute,
            cred.max_concurrent,
            cred.scopes,
        )
        if self.cache_seconds > 0:
            self._cache[key] = (now + self.cache_seconds, principal)
        return principal
