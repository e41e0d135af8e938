"""``CapabilityAuth``: an httpx auth that obtains capability tokens and presents them.

On a request to the gateway it makes sure it holds a fresh capability token (fetching one from
``{base_url}/v1/capabilities`` with a client assertion, and a DPoP proof unless in bearer mode),
then sends the request with ``Authorization: DPoP <token>`` and a DPoP proof carrying ``ath``
(or ``Authorization: Bearer <token>`` for a bearer token). It remembers every ``DPoP-Nonce`` the
server sends and puts it in later proofs; a 401 ``use_dpop_nonce`` is retried once with the new
nonce, a 401 ``invalid_token`` once with a new token. A token is renewed once less than
``min(60 s, 20 % of its life)`` remains. Requests to other origins pass through untouched.

The token request is yielded from the auth flow like any request, so the same object works with
``httpx.Client`` and ``httpx.AsyncClient`` and any transport. One lock per flavour (a thread
lock for sync clients, an anyio lock for async ones) makes concurrent requests share one token
fetch.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx

from apicredits.sdk.errors import InvalidTokenResponse, TokenRequestFailed
from apicredits.sdk.keys import ServiceKey
from apicredits.sdk.proofs import client_assertion, dpop_proof

__all__ = ["CAPABILITIES_PATH", "AccessToken", "CapabilityAuth"]

CAPABILITIES_PATH = "/v1/capabilities"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_REFRESH_MARGIN = 60.0  # seconds before expiry, or a fifth of the lifetime if shorter
_CHALLENGE_ERROR = re.compile(r'(?:^|[\s,])error="([^"]*)"')
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,1024}")  # RFC 9449 section 8.1: 1*NQCHAR
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 7235 token68: what fits in Authorization


@dataclass(frozen=True)
class AccessToken:
    """A capability token as issued; times are on the auth's clock (seconds)."""

    value: str = field(repr=False)
    token_type: Literal["DPoP", "Bearer"]
    obtained_at: float
    expires_at: float
    scopes: tuple[str, ...]
    usage_auth: str | None = field(default=None, repr=False)  # the CWT form, base64url

    @property
    def is_dpop(self) -> bool:
        """True if the token is bound to a DPoP key (``token_type`` DPoP)."""
        return self.token_type.lower() == "dpop"

    @property
    def refresh_at(self) -> float:
        life = self.expires_at - self.obtained_at
        return self.expires_at - min(_REFRESH_MARGIN, life / 5)


@dataclass(frozen=True)
class _Send:
    request: httpx.Request
    read_body: bool = False


class _Lock:
    """A step of the flow: acquire (``held=True``) or release the token lock."""

    def __init__(self, held: bool) -> None:
        self.held = held


_ACQUIRE, _RELEASE = _Lock(True), _Lock(False)
_Step = _Send | _Lock
_Flow = Generator[_Step, httpx.Response | None, None]


class CapabilityAuth(httpx.Auth):
    """Authenticates requests to the gateway at ``base_url`` as service ``client_id``.

    ``key`` signs client assertions under ``key.kid`` (the kid it was registered with).
    ``dpop`` is True to bind tokens to ``key`` itself, a separate ``ServiceKey`` (for example
    ``ServiceKey.generate()``, an ephemeral one) to bind them to that, or False for bearer
    tokens. ``scopes`` and ``ttl`` are asked for in the token request; ``clock`` returns Unix
    seconds.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        key: ServiceKey,
        *,
        scopes: Iterable[str] | None = None,
        ttl: int | None = None,
        dpop: bool | ServiceKey = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = httpx.URL(base_url.rstrip("/"))
        if self.base_url.scheme not in ("http", "https") or not self.base_url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        self.token_url = str(self.base_url) + CAPABILITIES_PATH
        self.client_id = client_id
        self.key = key
        self.dpop_key: ServiceKey | None = None
        if isinstance(dpop, ServiceKey):
            self.dpop_key = dpop
        elif dpop:
            self.dpop_key = key
        self.scopes = tuple(scopes) if scopes is not None else None
        self.ttl = ttl
        self._clock = clock
        self._token: AccessToken | None = None
        self._nonces: dict[tuple[str, str, int], str] = {}
        self._thread_lock = threading.Lock()
        self._task_lock = anyio.Lock()

    @property
    def token(self) -> AccessToken | None:
        """The token currently held, if any (it may be due for renewal)."""
        return self._token

    # httpx entry points: small interpreters of ``_flow``'s steps.

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._applies_to(request):
            yield request
            return
        request.read()  # a retried request sends its body again
        flow, reply, held = self._flow(request), None, False
        try:
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                reply = None
                if isinstance(step, _Lock):
                    if step.held:
                        self._thread_lock.acquire()
                    else:
                        self._thread_lock.release()
                    held = step.held
                    continue
                reply = yield step.request
                if step.read_body:
                    reply.read()
        finally:
            flow.close()
            if held:
                self._thread_lock.release()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._applies_to(request):
            yield request
            return
        await request.aread()
        flow, reply, held = self._flow(request), None, False
        try:
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                reply = None
                if isinstance(step, _Lock):
                    if step.held:
                        await self._task_lock.acquire()
                    else:
                        self._task_lock.release()
                    held = step.held
                    continue
                reply = yield step.request
                if step.read_body:
                    await reply.aread()
        finally:
            flow.close()
            if held:
                self._task_lock.release()

    # The protocol, written once for both.

    def _flow(self, request: httpx.Request) -> _Flow:
        token = self._token
        if token is None or self._clock() >= token.refresh_at:
            token = yield from self._renew(request, stale=token)
        nonce_retried = renewed = False
        while True:
            self._authorize(request, token)
            response = yield _Send(request)
            assert response is not None
            self._remember_nonce(request.url, response)
            errors = _challenge_errors(response)
            if (
                "use_dpop_nonce" in errors
                and token.is_dpop
                and "DPoP-Nonce" in response.headers
                and not nonce_retried
            ):
                nonce_retried = True
            elif "invalid_token" in errors and not renewed:
                renewed = True
                token = yield from self._renew(request, stale=token)
            else:
                return

    def _renew(
        self, request: httpx.Request, *, stale: AccessToken | None
    ) -> Generator[_Step, httpx.Response | None, AccessToken]:
        """A fresh token: the one another request just fetched, or a new one."""
        yield _ACQUIRE
        current = self._token
        if current is None or current is stale or self._clock() >= current.refresh_at:
            current = yield from self._fetch(request)
            self._token = current
        yield _RELEASE
        return current

    def _fetch(
        self, original: httpx.Request
    ) -> Generator[_Step, httpx.Response | None, AccessToken]:
        nonce_retried = False
        while True:
            obtained_at = self._clock()
            request = self._token_request(original, int(obtained_at))
            response = yield _Send(request, read_body=True)
            assert response is not None
            self._remember_nonce(request.url, response)
            if (
                self.dpop_key is not None
                and "use_dpop_nonce" in _challenge_errors(response)
                and "DPoP-Nonce" in response.headers
                and not nonce_retried
            ):
                nonce_retried = True
                continue
            return self._parse_token_response(request, response, obtained_at)

    def _token_request(self, original: httpx.Request, now: int) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                self.key, client_id=self.client_id, audience=self.token_url, now=now
            ),
        }
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        if self.ttl is not None:
            form["ttl"] = str(self.ttl)
        headers = {"Accept": "application/json"}
        if self.dpop_key is not None:
            nonce = self._nonces.get(_origin(httpx.URL(self.token_url)))
            headers["DPoP"] = dpop_proof(
                self.dpop_key, method="POST", url=self.token_url, now=now, nonce=nonce
            )
        extensions = {k: v for k, v in original.extensions.items() if k == "timeout"}
        return httpx.Request(
            "POST", self.token_url, data=form, headers=headers, extensions=extensions
        )

    def _parse_token_response(
        self, request: httpx.Request, response: httpx.Response, obtained_at: float
    ) -> AccessToken:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            code, message, reason = _error_of(body, response)
            raise TokenRequestFailed(
                message,
                status=response.status_code,
                code=code,
                reason=reason,
                request=request,
                response=response,
            )

        def invalid(why: str) -> InvalidTokenResponse:
            return InvalidTokenResponse(why, request=request, response=response)

        if not isinstance(body, dict):
            raise invalid("the token response is not a JSON object")
        value, token_type = body.get("access_token"), body.get("token_type")
        expires_in, scope, usage_auth = (
            body.get("expires_in"),
            body.get("scope"),
            body.get("usage_auth"),
        )
        if not isinstance(value, str) or not _TOKEN68.fullmatch(value):
            raise invalid("access_token is missing or not a token68 string")
        if not isinstance(token_type, str) or token_type.lower() not in ("dpop", "bearer"):
            raise invalid(f"token_type must be DPoP or Bearer, not {token_type!r}")
        if token_type.lower() == "dpop" and self.dpop_key is None:
            raise invalid("the server issued a DPoP token but this client has no DPoP key")
        if type(expires_in) is not int or expires_in <= 0:
            raise invalid("expires_in must be a positive integer")
        if scope is not None and not isinstance(scope, str):
            raise invalid("scope must be a string")
        if usage_auth is not None and not isinstance(usage_auth, str):
            raise invalid("usage_auth must be a string")
        return AccessToken(
            value=value,
            token_type="DPoP" if token_type.lower() == "dpop" else "Bearer",
            obtained_at=obtained_at,
            expires_at=obtained_at + expires_in,
            scopes=tuple(scope.split()) if scope else self.scopes or (),
            usage_auth=usage_auth,
        )

    def _authorize(self, request: httpx.Request, token: AccessToken) -> None:
        request.headers["Authorization"] = f"{token.token_type} {token.value}"
        if token.is_dpop:
            assert self.dpop_key is not None  # checked when the token was accepted
            request.headers["DPoP"] = dpop_proof(
                self.dpop_key,
                method=request.method,
                url=str(request.url),
                now=int(self._clock()),
                nonce=self._nonces.get(_origin(request.url)),
                access_token=token.value,
            )
        else:
            request.headers.pop("DPoP", None)

    def _remember_nonce(self, url: httpx.URL, response: httpx.Response) -> None:
        nonce = response.headers.get("DPoP-Nonce")
        if nonce is not None and _NONCE.fullmatch(nonce):
            self._nonces[_origin(url)] = nonce

    def _applies_to(self, request: httpx.Request) -> bool:
        base = self.base_url
        path = base.path.rstrip("/")
        return _origin(request.url) == _origin(base) and (
            not path or request.url.path == path or request.url.path.startswith(path + "/")
        )


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or (443 if scheme == "https" else 80)


def _challenge_errors(response: httpx.Response) -> set[str]:
    """The ``error`` parameters of a 401's ``WWW-Authenticate`` challenges."""
    if response.status_code != 401:
        return set()
    return {
        match.group(1)
        for value in response.headers.get_list("WWW-Authenticate")
        for match in _CHALLENGE_ERROR.finditer(value)
    }


def _error_of(body: object, response: httpx.Response) -> tuple[str, str, str | None]:
    """(code, message, reason) of an error response: ``{"error": {"code", "message",
    "reason"}}``, or RFC 6749's ``{"error", "error_description"}``, or the status line."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            code, message, reason = error["code"], error.get("message"), error.get("reason")
            return (
                code,
                message if isinstance(message, str) else code,
                reason if isinstance(reason, str) else None,
            )
        if isinstance(error, str):
            description = body.get("error_description")
            return error, description if isinstance(description, str) else error, None
    return "http_error", f"{response.status_code} {response.reason_phrase}".strip(), None
