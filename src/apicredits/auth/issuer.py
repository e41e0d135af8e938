"""``POST /v1/capabilities``: a service trades a signed client assertion for a capability token.

The request is an OAuth 2.0 token request (RFC 6749 section 4.4) with client authentication
by ``private_key_jwt`` (RFC 7523), form-encoded:

    grant_type=client_credentials
    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<JWT signed by a key registered for the service>
    scope=<optional: space-separated, within the service's scopes>
    ttl=<optional: seconds, at most 3600>

With a ``DPoP`` proof header the token is bound to the proof's key (``token_type`` DPoP);
without one it is bound to the assertion's key and usable as a bearer token, which only a
tenant that turned ``dpop_required`` off accepts.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from typing import Any

from apicredits import json_input
from apicredits.auth.assertions import unb64url, verify_client_assertion
from apicredits.auth.authenticator import CapabilityAuthenticator
from apicredits.auth.authority import SKEW, CapabilityAuthority
from apicredits.auth.capabilities import MAX_TTL_SECONDS, CapabilityClaims, Scope
from apicredits.auth.dpop import DPoPError
from apicredits.auth.errors import TokenError
from apicredits.errors import InvalidInput, NotFound
from apicredits.tenants.services import Services

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPES = ("route:/v1/*", "route:/v1beta/*", "model:*")
ASSERTION_MAX_AGE = 300


def _claimed_client(assertion: str) -> str:
    """The unverified ``iss`` of an assertion: which service's keys to check it against."""
    try:
        claims = json_input.loads(unb64url(assertion.split(".")[1]))
    except (IndexError, ValueError, UnicodeDecodeError):
        raise TokenError("malformed", "client_assertion is not a JWT") from None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(iss, str) or not 0 < len(iss) <= 64:
        raise TokenError("malformed", "client_assertion has no iss")
    return iss


def _covered(requested: str, allowed: tuple[str, ...]) -> bool:
    """A requested scope is within an allowed one if the allowed glob matches its pattern."""
    want = Scope.parse(requested)
    return any(
        have.kind == want.kind and fnmatch.fnmatchcase(want.pattern, have.pattern)
        for have in map(Scope.parse, allowed)
    )


def _scopes(form: Mapping[str, str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    requested = form.get("scope", "").split()
    if not requested:
        return allowed
    try:
        for scope in requested:
            if not _covered(scope, allowed):
                raise InvalidInput(f"scope {scope[:200]!r} is not granted to this service")
    except InvalidInput as error:
        raise InvalidInput(error.message, field="scope") from None
    return tuple(dict.fromkeys(requested))


def _ttl(form: Mapping[str, str], default: int) -> int:
    text = form.get("ttl")
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 60 <= int(text) <= MAX_TTL_SECONDS:
        raise InvalidInput(f"ttl must be an integer from 60 to {MAX_TTL_SECONDS}", field="ttl")
    return int(text)


class TokenIssuer:
    def __init__(
        self,
        authority: CapabilityAuthority,
        authenticator: CapabilityAuthenticator,
        services: Services,
        *,
        default_ttl: int,
    ) -> None:
        self.authority = authority
        self.authenticator = authenticator
        self.services = services
        self.default_ttl = default_ttl

    async def issue(
        self, form: Mapping[str, str], *, dpop: str | None, url: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The token response body and headers, or an ``ApicreditsError``."""
        if form.get("grant_type") != GRANT_TYPE:
            raise InvalidInput(f"grant_type must be {GRANT_TYPE}", field="grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidInput(
                f"client_assertion_type must be {ASSERTION_TYPE}", field="client_assertion_type"
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise InvalidInput("client_assertion is required", field="client_assertion")
        client_id = _claimed_client(assertion)
        try:
            service = await self.services.service(client_id)
        except NotFound:
            raise TokenError("unknown_client") from None
        if service.revoked:
            raise TokenError("unknown_client")
        now = int(time.time())
        kid, checked = verify_client_assertion(
            assertion, await self.services.keys(client_id), audience=url, now=now,
            max_age=ASSERTION_MAX_AGE, leeway=SKEW, client_id=client_id,
        )  # fmt: skip
        scopes = _scopes(form, service.scopes or DEFAULT_SCOPES)
        ttl = _ttl(form, self.default_ttl)
        policy = await self.authenticator.policy(service.tenant_id)
        if dpop is not None:
            proof = await self.authority.check_proof(
                dpop, method="POST", url=url, now=now, access_token=None, expected_jkt=None
            )
            jkt, token_type = proof.jkt, "DPoP"
        elif policy.dpop_required:
            raise DPoPError("missing", nonce=self.authority.fresh_nonce(now))
        else:
            jkt, token_type = kid, "Bearer"
        await self.authority.remember_assertion(
            client_id, checked.jti, ASSERTION_MAX_AGE + 2 * SKEW
        )
        claims = CapabilityClaims.create(
            iss=self.authority.issuer, aud=self.authority.issuer, sub=client_id,
            tenant_id=service.tenant_id, project_id=service.project_id, scopes=scopes, jkt=jkt,
            now=now, ttl=ttl, spend_cap_micro=service.token_spend_cap_micro,
            requests_per_minute=service.requests_per_minute,
            tokens_per_minute=service.tokens_per_minute, max_concurrent=service.max_concurrent,
        )  # fmt: skip
        if claims.spend_cap_micro is not None:
            await self.services.open_token_budget(
                service.tenant_id, claims.jti, claims.spend_cap_micro
            )
        token, usage_auth = self.authority.issue(claims)
        body = {
            "access_token": token, "token_type": token_type, "expires_in": ttl,
            "scope": " ".join(scopes), "usage_auth": usage_auth,
        }  # fmt: skip
        headers = {"Cache-Control": "no-store"}
        nonce = self.authority.fresh_nonce(now)
        if nonce is not None:
            headers["DPoP-Nonce"] = nonce
        return body, headers
