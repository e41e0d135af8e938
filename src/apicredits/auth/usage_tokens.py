"""Usage tokens: a job's own short-lived capability, sent as ``Usage-Auth`` to ``/v1/execute``.

``POST /v1/jobs/lock`` returns one bound to the job (``jti`` is the job id), to its locked
amount (``spend_cap_micro``) and to the caller (``sub``, and ``cnf.jkt``: the DPoP key of the
token that locked it, or a stand-in derived from an API key's credential id). It is a CWT, so
it is compact enough for a header; it lives until the lock expires, at most an hour
(``GET /v1/jobs/{id}`` hands out a fresh one). The lock itself still enforces the amount:
the token cannot be used for another job, by another caller, or after it expires.
"""

from __future__ import annotations

from apicredits.auth.authenticator import pseudo_jkt
from apicredits.auth.authority import CapabilityAuthority
from apicredits.auth.capabilities import MAX_TTL_SECONDS, CapabilityClaims
from apicredits.auth.cwt import cwt_to_header, encode_cwt
from apicredits.auth.errors import TokenError
from apicredits.tenants.model import Principal

HEADER = "usage-auth"
ROUTE_SCOPE = "route:/v1/execute"


def _binding(principal: Principal) -> str:
    return principal.jkt or pseudo_jkt(principal.credential_id)


def issue_usage_token(
    authority: CapabilityAuthority,
    principal: Principal,
    *,
    job_id: str,
    locked_micro: int,
    expires_at: int,
    now: int,
) -> str:
    ttl = max(1, min(expires_at - now, MAX_TTL_SECONDS))
    claims = CapabilityClaims.create(
        iss=authority.issuer, aud=authority.issuer, sub=principal.credential_id,
        tenant_id=principal.tenant_id, project_id=principal.project_id,
        scopes=(ROUTE_SCOPE, "model:*"), jkt=_binding(principal), now=now, ttl=ttl,
        spend_cap_micro=locked_micro, jti=job_id,
    )  # fmt: skip
    return cwt_to_header(encode_cwt(authority.key_ring, claims))


def check_usage_token(
    authority: CapabilityAuthority, header: str | None, principal: Principal, *, job_id: str,
    now: int,
) -> CapabilityClaims:  # fmt: skip
    """The usage token's claims if it was issued for this job to this caller."""
    if not header:
        raise TokenError("malformed", "POST /v1/execute needs the job's usage token: Usage-Auth")
    claims = authority.verify_cwt(header, now, jkt=_binding(principal))
    if claims.jti != job_id or ROUTE_SCOPE not in claims.scopes:
        raise TokenError("wrong_job")
    if claims.sub != principal.credential_id or claims.tenant_id != principal.tenant_id:
        raise TokenError("token_bound_to_other_key", "the usage token belongs to another caller")
    return claims
