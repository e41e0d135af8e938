"""The default way in: capability tokens, DPoP-bound unless the tenant allows bearer.

    Authorization: DPoP <token>  + DPoP: <proof>    always accepted
    Authorization: Bearer <token> (or x-api-key...)  only if the tenant sets dpop_required false
    a static API key                                 only if the tenant sets legacy_keys true

A capability token is told from an API key by its shape (a JWS: three base64url parts).
Tenant policies are read through a short cache, like API keys, so a policy change reaches
every worker within ``cache_seconds``. Every static-key use is counted
(``legacy_key_uses``) and logged once per key per cache window with the count since.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apicredits.auth.assertions import b64url
from apicredits.auth.authority import CapabilityAuthority
from apicredits.auth.capabilities import CapabilityClaims
from apicredits.auth.errors import TokenError
from apicredits.errors import Unauthorized
from apicredits.tenants.auth import ApiKeyAuthenticator, Authenticator, presented_key
from apicredits.tenants.directory import Directory
from apicredits.tenants.model import Principal, Tenant

log = logging.getLogger("apicredits.auth")


class LegacyKeysDisabled(Unauthorized):
    code = "legacy_keys_disabled"


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    dpop_required: bool = True
    legacy_keys: bool = False

    @classmethod
    def of(cls, tenant: Tenant) -> TenantPolicy:
        return cls(
            dpop_required=bool(tenant.settings.get("dpop_required", True)),
            legacy_keys=bool(tenant.settings.get("legacy_keys", False)),
        )


def looks_like_jws(credential: str) -> bool:
    return credential.startswith("eyJ") and credential.count(".") == 2


def pseudo_jkt(credential_id: str) -> str:
    """A stand-in key binding for callers without a key (API keys): usage tokens still bind
    to the credential that locked the job."""
    return b64url(hashlib.sha256(b"credential:" + credential_id.encode()).digest())


def principal_of(claims: CapabilityClaims, method: str) -> Principal:
    return Principal(
        claims.tenant_id, claims.project_id, claims.sub, claims.requests_per_minute,
        claims.tokens_per_minute, claims.max_concurrent, claims.scopes,
        claims.jti if claims.spend_cap_micro is not None else None, method, claims.jkt,
    )  # fmt: skip


class CapabilityAuthenticator(Authenticator):
    def __init__(
        self,
        authority: CapabilityAuthority,
        directory: Directory,
        *,
        cache_seconds: float = 5.0,
        on_legacy_use: Callable[[Principal], None] | None = None,
    ) -> None:
        self.authority = authority
        self.directory = directory
        self.cache_seconds = cache_seconds
        self.api_keys = ApiKeyAuthenticator(directory, cache_seconds=cache_seconds)
        self.on_legacy_use = on_legacy_use
        self._policies: dict[str, tuple[float, TenantPolicy]] = {}
        self._legacy_counts: dict[str, tuple[float, int]] = {}

    async def policy(self, tenant_id: str) -> TenantPolicy:
        now = time.monotonic()
        cached = self._policies.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        policy = TenantPolicy.of(await self.directory.tenant(tenant_id))
        if len(self._policies) > 100_000:
            self._policies.clear()
        self._policies[tenant_id] = (now + self.cache_seconds, policy)
        return policy

    async def authenticate(
        self, headers: Mapping[str, str], *, method: str = "POST", url: str = ""
    ) -> Principal:
        authorization = headers.get("authorization", "")
        now = int(time.time())
        if authorization[:5].lower() == "dpop ":
            token = authorization[5:].strip()
            claims = self.authority.verify(token, now)
            await self.authority.check_proof(
                headers.get("dpop"), method=method, url=url, now=now,
                access_token=token, expected_jkt=claims.jkt,
            )  # fmt: skip
            return principal_of(claims, "dpop")
        credential = presented_key(headers)
        if credential is None:
            raise TokenError("malformed", "no credential: send Authorization: DPoP <token>")
        if looks_like_jws(credential):
            claims = self.authority.verify(credential, now)
            if (await self.policy(claims.tenant_id)).dpop_required:
                raise TokenError("dpop_required")
            return principal_of(claims, "bearer")
        principal = await self.api_keys.authenticate(headers)
        if not (await self.policy(principal.tenant_id)).legacy_keys:
            raise LegacyKeysDisabled(
                "static API keys are off for this tenant: use capability tokens, or set "
                "legacy_keys (PATCH /admin/v1/tenants/{id})",
                tenant_id=principal.tenant_id,
            )
        self._count_legacy_use(principal)
        return principal

    def _count_legacy_use(self, principal: Principal) -> None:
        if self.on_legacy_use is not None:
            self.on_legacy_use(principal)
        now = time.monotonic()
        since, count = self._legacy_counts.get(principal.credential_id, (now, 0))
        if count == 0 or now - since >= self.cache_seconds:
            log.info(
                "static API key used",
                extra={
                    "tenant_id": principal.tenant_id,
                    "credential_id": principal.credential_id,
                    "uses_since_last_log": count + 1,
                },
            )
            self._legacy_counts[principal.credential_id] = (now, 1)
        else:
            self._legacy_counts[principal.credential_id] = (since, count + 1)
