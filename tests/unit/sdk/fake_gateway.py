"""A gateway in an ``httpx.MockTransport`` handler, built from the real ``apicredits.auth`` checks.

The token endpoint verifies the client assertion with ``verify_client_assertion``, the DPoP
proof with ``verify_proof`` + ``check_and_remember`` (nonces from ``NonceSource``), and issues
``issue_token`` + ``encode_cwt`` tokens from a ``KeyRing``. The resource routes verify the
proof (with ``ath``) and the token (``verify_token`` with ``cnf.jkt``) and ``require_scope``.
Errors go out as the project's JSON errors with their ``WWW-Authenticate``/``DPoP-Nonce``
headers. No network: clients get ``gateway.transport``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

from apicredits.auth import (
    CapabilityClaims,
    KeyRing,
    cwt_to_header,
    encode_cwt,
    issue_token,
    jwk_thumbprint,
    require_scope,
    verify_client_assertion,
    verify_token,
)
from apicredits.auth.dpop import DPoPProof, check_and_remember, verify_proof
from apicredits.auth.errors import TokenError
from apicredits.auth.nonces import NonceSource
from apicredits.auth.replay import MemoryReplayCache
from apicredits.errors import ApicreditsError, InvalidInput
from apicredits.sdk import ServiceKey

NOW = 1_750_000_000
BASE_URL = "https://gw.example"
TOKEN_URL = f"{BASE_URL}/v1/capabilities"
ISSUER, AUDIENCE = BASE_URL, "apicredits"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPES = ("route:/v1/*", "model:*")


class Clock:
    """A settable clock shared by the client and the fake gateway."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ready(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that never suspends (``MemoryReplayCache`` never does), so a
    sync MockTransport handler can call the async replay check."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine suspended")


@dataclass
class Call:
    """A resource request the gateway accepted."""

    request: httpx.Request
    claims: CapabilityClaims
    proof: DPoPProof | None


@dataclass
class FakeGateway:
    clock: Clock = field(default_factory=Clock)
    nonce_on_token: bool = False
    nonce_on_resource: bool = False
    ttl: int = 900
    ring: KeyRing = field(default_factory=lambda: KeyRing.create(NOW - 100))
    nonces: NonceSource = field(default_factory=lambda: NonceSource(b"n" * 32))
    revoked: set[str] = field(default_factory=set)  # jti: answered with invalid_token
    clients: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # kid -> ...
    token_responses: list[httpx.Response] = field(default_factory=list)
    resource_responses: list[httpx.Response] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    bearer_jtis: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.replay = MemoryReplayCache(clock=self.clock)
        self.lock = threading.Lock()
        self.transport = httpx.MockTransport(self.handle)

    def register(self, client_id: str, key: ServiceKey) -> None:
        """What a tenant does in the control plane: register the public JWK under its kid."""
        self.clients[key.kid] = (client_id, key.public_jwk())

    @property
    def now(self) -> int:
        return int(self.clock())

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if request.url.path == "/v1/capabilities":
                response = self._respond(request, self._token_endpoint)
                self.token_responses.append(response)
            else:
                response = self._respond(request, self._resource)
                self.resource_responses.append(response)
            return response

    def _respond(self, request: httpx.Request, route: Any) -> httpx.Response:
        try:
            return route(request)  # type: ignore[no-any-return]
        except ApicreditsError as error:
            headers = getattr(error, "headers", None) or {}
            if not headers and hasattr(error, "www_authenticate"):
                headers = {"WWW-Authenticate": error.www_authenticate}
            return httpx.Response(error.status, json=error.to_dict(), headers=headers)

    # POST /v1/capabilities

    def _token_endpoint(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            raise InvalidInput("POST only")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            raise InvalidInput("the token request is form-encoded")
        form = {k: v[0] for k, v in parse_qs(request.content.decode(), strict_parsing=True).items()}
        if form.get("grant_type") != "client_credentials":
            raise InvalidInput("grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidInput("client_assertion_type must be jwt-bearer")
        registered = {kid: jwk for kid, (_, jwk) in self.clients.items()}
        kid, assertion = verify_client_assertion(
            form.get("client_assertion"), registered, audience=TOKEN_URL, now=self.now
        )
        if assertion.client_id != self.clients[kid][0]:
            raise TokenError("wrong_issuer")
        if not ready(self.replay.remember(f"assertion:{assertion.jti}", 600)):
            raise TokenError("malformed", "the client assertion was already used")
        proof_header = request.headers.get("DPoP")
        if proof_header is not None:
            proof = self._proof(request, access_token=None, nonce_required=self.nonce_on_token)
            jkt, token_type = proof.jkt, "DPoP"
        else:
            jkt, token_type = jwk_thumbprint(self.clients[kid][1]), "Bearer"
        scopes = form["scope"].split(" ") if "scope" in form else DEFAULT_SCOPES
        ttl = int(form.get("ttl", self.ttl))
        claims = CapabilityClaims.create(
            iss=ISSUER, aud=AUDIENCE, sub=assertion.client_id, tenant_id="acme",
            scopes=scopes, jkt=jkt, now=self.now, ttl=ttl,
        )  # fmt: skip
        if token_type == "Bearer":
            self.bearer_jtis.add(claims.jti)
        body = {
            "access_token": issue_token(self.ring, claims),
            "token_type": token_type,
            "expires_in": ttl,
            "scope": " ".join(claims.scopes),
            "usage_auth": cwt_to_header(encode_cwt(self.ring, claims)),
        }
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    def _proof(
        self, request: httpx.Request, *, access_token: str | None, nonce_required: bool
    ) -> DPoPProof:
        proof = verify_proof(
            request.headers.get("DPoP"),
            method=request.method,
            url=str(request.url),
            now=self.now,
            access_token=access_token,
            expected_jkt=None,
            nonce_required=nonce_required,
            nonce_check=self.nonces.check,
            issue_nonce=self.nonces.issue,
        )
        ready(check_and_remember(self.replay, proof))
        return proof

    # the resource routes

    def _resource(self, request: httpx.Request) -> httpx.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        proof = None
        if scheme == "DPoP":
            proof = self._proof(request, access_token=token, nonce_required=self.nonce_on_resource)
            claims = self._verify(token, jkt=proof.jkt)
            if claims.jti in self.bearer_jtis:
                raise TokenError("malformed", "a bearer token is not a DPoP token")
        elif scheme == "Bearer":
            claims = self._verify(token, jkt=None)
            if claims.jti not in self.bearer_jtis:
                raise TokenError("token_bound_to_other_key", "a DPoP token needs its proof")
        else:
            raise TokenError("malformed", "no capability token")
        model = None
        if request.method == "POST" and request.content:
            model = json.loads(request.content).get("model")
        require_scope(claims.scopes, request.url.path, model)
        self.calls.append(Call(request, claims, proof))
        if request.url.path == "/v1/chat/completions":
            return httpx.Response(200, json=chat_completion(model or "sim-small"))
        return httpx.Response(200, json={"ok": True, "sub": claims.sub})

    def _verify(self, token: str, *, jkt: str | None) -> CapabilityClaims:
        return verify_token(
            self.ring, token, now=self.now, audience=AUDIENCE, issuer=ISSUER, jkt=jkt,
            is_revoked=lambda claims: claims.jti in self.revoked,
        )  # fmt: skip

    @property
    def token_requests(self) -> int:
        return len(self.token_responses)


def chat_completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": NOW,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello from the gateway"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
