"""Revoking capability tokens: by ``jti``, by subject (a service of a tenant), by tenant.

``Revocations`` is an immutable snapshot that ``verify_token(is_revoked=...)`` consults in
process. Subjects and tenants carry a ``revoked_before`` time: tokens issued (``iat``) strictly
before it are revoked, tokens issued later are not, so a service can be cut off and then issued
fresh tokens. A revoked ``jti`` is remembered until the token's ``exp`` and then forgotten.

``RevocationStore`` is where revocations are recorded and shared. Each change bumps ``version``,
so a Redis implementation can keep one hash per kind plus a version counter, publish the version
on a channel, and let every worker refresh its snapshot when the version moves.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from apicredits.auth.capabilities import CapabilityClaims
from apicredits.errors import InvalidInput

__all__ = ["MemoryRevocationStore", "RevocationStore", "Revocations"]


@dataclass(frozen=True)
class Revocations:
    """A snapshot: revoked jti -> its exp; (tenant, sub) and tenant -> revoked_before."""

    jtis: Mapping[str, int] = field(default_factory=dict)
    subjects: Mapping[tuple[str, str], int] = field(default_factory=dict)
    tenants: Mapping[str, int] = field(default_factory=dict)
    version: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "jtis", MappingProxyType(dict(self.jtis)))
        object.__setattr__(self, "subjects", MappingProxyType(dict(self.subjects)))
        object.__setattr__(self, "tenants", MappingProxyType(dict(self.tenants)))

    def is_revoked(self, claims: CapabilityClaims) -> bool:
        if claims.jti in self.jtis:
            return True
        before = self.subjects.get((claims.tenant_id, claims.sub))
        if before is not None and claims.iat < before:
            return True
        before = self.tenants.get(claims.tenant_id)
        return before is not None and claims.iat < before

    def without_expired(self, now: int) -> Revocations:
        """The same snapshot minus jtis whose tokens have expired by ``now``."""
        live = {jti: exp for jti, exp in self.jtis.items() if exp > now}
        return Revocations(live, self.subjects, self.tenants, self.version)


def _time(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    return value


class RevocationStore(abc.ABC):
    """Where revocations are recorded. Revoking twice is harmless; a later ``before`` wins."""

    @abc.abstractmethod
    async def revoke_jti(self, jti: str, exp: int) -> None:
        """Revoke one token until its ``exp`` (after which it is expired anyway)."""

    @abc.abstractmethod
    async def revoke_subject(self, tenant_id: str, sub: str, before: int) -> None:
        """Revoke every token of ``sub`` in ``tenant_id`` issued before ``before``."""

    @abc.abstractmethod
    async def revoke_tenant(self, tenant_id: str, before: int) -> None:
        """Revoke every token of ``tenant_id`` issued before ``before``."""

    @abc.abstractmethod
    async def version(self) -> int:
        """A counter that moves whenever the revocations change (cheap to poll)."""

    @abc.abstractmethod
    async def snapshot(self) -> Revocations:
        """Every revocation in force."""


class MemoryRevocationStore(RevocationStore):
    """In-process revocations, for one worker and for tests."""

    def __init__(self) -> None:
        self._jtis: dict[str, int] = {}
        self._subjects: dict[tuple[str, str], int] = {}
        self._tenants: dict[str, int] = {}
        self._version = 0
        self._lock = asyncio.Lock()

    async def revoke_jti(self, jti: str, exp: int) -> None:
        if not isinstance(jti, str) or not jti:
            raise InvalidInput("jti must be a non-empty string", field="jti")
        async with self._lock:
            self._jtis[jti] = max(_time(exp, "exp"), self._jtis.get(jti, 0))
            self._version += 1

    async def revoke_subject(self, tenant_id: str, sub: str, before: int) -> None:
        async with self._lock:
            key = (tenant_id, sub)
            self._subjects[key] = max(_time(before, "before"), self._subjects.get(key, 0))
            self._version += 1

    async def revoke_tenant(self, tenant_id: str, before: int) -> None:
        async with self._lock:
            self._tenants[tenant_id] = max(_time(before, "before"), self._tenants.get(tenant_id, 0))
            self._version += 1

    async def version(self) -> int:
        return self._version

    async def snapshot(self) -> Revocations:
        async with self._lock:
            return Revocations(self._jtis, self._subjects, self._tenants, self._version)

    async def prune(self, now: int) -> None:
        """Forget revoked jtis whose tokens have expired by ``now``."""
        async with self._lock:
            self._jtis = {jti: exp for jti, exp in self._jtis.items() if exp > now}
