"""Tenant owners sign in to the control plane with an Ethereum wallet (EIP-4361, SIWE).

    GET  /admin/v1/siwe/nonce                 a one-time nonce (stateless: MAC'd, 10 minutes)
    POST /admin/v1/siwe/login                 {message, signature, tenant_id} -> session token

The tenant's ``owner_address`` setting names the wallet. The session token is a JWT signed by
the gateway's signing key ring (``typ`` session+jwt, audience ``<issuer>/admin``), at most an
hour long; ``Authorization: Bearer <session>`` then opens the control-plane routes of that
tenant only (``/admin/v1/tenants/{tenant_id}/...``), never deposits or raw ledger locks, which
stay with the operator's admin token. Changing ``owner_address`` ends every session at once:
each use re-checks the owner.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Request
from pydantic import Field, StrictStr

from apicredits.auth.errors import TokenError
from apicredits.auth.siwe import verify_siwe
from apicredits.gateway.headers import request_headers
from apicredits.gateway.schemas import Body, BoundedJsonRoute, Id
from apicredits.runtime import Runtime

NONCE_SECONDS = 600
SESSION_SECONDS = 3600
SESSION_TYP = "session+jwt"
# Ours are ~500 characters. The bound also keeps PyJWT's parse of an unverified header
# shallow (see ``apicredits.json_input``).
MAX_SESSION_TOKEN_CHARS = 4096
# Routes a tenant owner may not use even for their own tenant: money in and raw ledger locks.
OPERATOR_ONLY = ("/deposits", "/locks")

router = APIRouter(prefix="/admin/v1/siwe", tags=["sign-in"], route_class=BoundedJsonRoute)


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RT = Annotated[Runtime, Depends(_runtime)]


class Login(Body):
    message: Annotated[StrictStr, Field(max_length=8192)]
    signature: Annotated[StrictStr, Field(max_length=200)]
    tenant_id: Id


def _secret(rt: Runtime) -> bytes:
    key = rt.authority.key_ring.current.private_key.private_bytes_raw()
    return hmac.new(key, b"apicredits/siwe-nonce", hashlib.sha256).digest()


def _mac(rt: Runtime, body: str) -> str:
    return hmac.new(_secret(rt), body.encode(), hashlib.sha256).hexdigest()[:24]


def issue_nonce(rt: Runtime, now: int) -> str:
    body = f"{secrets.token_hex(8)}{now:x}"
    return body + _mac(rt, body)


def nonce_is_fresh(rt: Runtime, nonce: str, now: int) -> bool:
    body, mac = nonce[:-24], nonce[-24:]
    if len(body) <= 16 or not hmac.compare_digest(mac, _mac(rt, body)):
        return False
    try:
        issued = int(body[16:], 16)
    except ValueError:
        return False
    return now - NONCE_SECONDS <= issued <= now + 30


def expected_domain(rt: Runtime, request: Request) -> str:
    base = rt.settings.public_url
    if base:
        return base.split("://", 1)[-1].split("/", 1)[0]
    return request_headers(request).get("host", "")


@router.get("/nonce")
async def nonce(request: Request, rt: RT) -> dict[str, Any]:
    """A nonce for the sign-in message, and the domain the message must name."""
    return {
        "nonce": issue_nonce(rt, int(time.time())),
        "domain": expected_domain(rt, request),
        "expires_in": NONCE_SECONDS,
    }


@router.post("/login")
async def login(body: Login, request: Request, rt: RT) -> dict[str, Any]:
    """Trade a signed sign-in message for a session on one tenant the wallet owns."""
    now = int(time.time())
    message = verify_siwe(
        body.message, body.signature, domain=expected_domain(rt, request), now=now,
        nonce_check=lambda n: nonce_is_fresh(rt, n, now), scheme=request.url.scheme,
    )  # fmt: skip
    if not await rt.authority.replay.remember(f"siwe:{message.nonce}", NONCE_SECONDS + 60):
        raise TokenError("replayed", "this sign-in nonce was already used")
    tenant = await rt.directory.tenant(body.tenant_id)
    if str(tenant.settings.get("owner_address", "")).lower() != message.address.lower():
        raise TokenError("unknown_client", "this wallet does not own the tenant")
    key = rt.authority.key_ring.current
    claims = {
        "iss": rt.authority.issuer, "aud": f"{rt.authority.issuer}/admin", "sub": message.address,
        "tenant_id": tenant.id, "iat": now, "exp": now + SESSION_SECONDS,
        "jti": secrets.token_urlsafe(12),
    }  # fmt: skip
    token = jwt.encode(
        claims, key.private_key, algorithm="EdDSA", headers={"typ": SESSION_TYP, "kid": key.kid}
    )
    return {"session_token": token, "token_type": "Bearer", "expires_in": SESSION_SECONDS,
            "tenant_id": tenant.id, "address": message.address}  # fmt: skip


async def session_tenant(rt: Runtime, token: str, request: Request) -> str:
    """The tenant a session token opens, if it opens this request; else ``TokenError``."""
    now = int(time.time())
    if len(token) > MAX_SESSION_TOKEN_CHARS:
        raise TokenError("malformed", "not a session token")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != SESSION_TYP:
            raise TokenError("malformed", "not a session token")
        key = rt.authority.key_ring.verification_key(header.get("kid"), now)
        claims = jwt.decode(
            token, key.public_key, algorithms=["EdDSA"], audience=f"{rt.authority.issuer}/admin",
            issuer=rt.authority.issuer, options={"require": ["exp", "iat", "sub", "aud"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.PyJWTError:
        raise TokenError("bad_signature") from None
    tenant_id = claims.get("tenant_id")
    path_tenant = request.path_params.get("tenant_id")
    if path_tenant != tenant_id or any(p in request.url.path for p in OPERATOR_ONLY):
        raise TokenError("wrong_audience", "a tenant session opens only its own tenant's routes")
    tenant = await rt.directory.tenant(str(tenant_id))
    if str(tenant.settings.get("owner_address", "")).lower() != str(claims["sub"]).lower():
        raise TokenError("revoked", "the tenant's owner has changed")
    return str(tenant_id)
