"""Authentication behind one interface: headers in, ``Principal`` out.

Today a consumer credential is an API key; capability tokens will be another
``Authenticator`` and the gateway will not notice the difference.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

from apicredits.errors import Unauthorized
from apicredits.tenants.directory import Directory
from apicredits.tenants.model import Principal


class Authenticator(abc.ABC):
    @abc.abstractmethod
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Establish the caller from request headers (lower-case names) or raise."""


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The credential where each SDK puts it: Bearer, ``x-api-key``, ``x-goog-api-key``."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or None


class ApiKeyAuthenticator(Authenticator):
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise Unauthorized("no credential presented")
        cred = await self.directory.credential_for_key(key)
        if cred is None or cred.revoked:
            raise Unauthorized("unknown or revoked credential")
        return Principal(
            cred.tenant_id,
            cred.project_id,
            cred.id,
            cred.requests_per_minute,
            cred.tokens_per_minute,
            cred.max_concurrent,
        )
