"""Errors of the capability authority, shaped for RFC 6750 ``WWW-Authenticate`` challenges.

    Unauthorized (401)
    └── TokenError          invalid_token       reason: one of ``TokenReason``
    Forbidden (403)
    └── ScopeError          insufficient_scope  the token does not allow this route or model

Every ``reason`` is a stable snake code (``details["reason"]`` in the JSON body). The
``www_authenticate`` texts are fixed per reason: nothing a client sent is echoed into a header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, get_args

from apicredits.errors import Forbidden, Unauthorized

__all__ = ["ScopeError", "TokenError", "TokenReason"]

TokenReason = Literal[
    "expired", "not_yet_valid", "wrong_audience", "bad_signature", "unknown_key", "revoked",
    "malformed", "wrong_issuer", "key_retired", "token_bound_to_other_key", "lifetime_too_long",
    "dpop_required", "unknown_client", "replayed", "wrong_job",
]  # fmt: skip

_DESCRIPTIONS: dict[str, str] = {
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "wrong_audience": "the token is not meant for this audience",
    "bad_signature": "the token signature is invalid or uses an unaccepted algorithm",
    "unknown_key": "the token is signed by an unknown key",
    "revoked": "the token has been revoked",
    "malformed": "the token is malformed",
    "wrong_issuer": "the token was issued by another issuer",
    "key_retired": "the token is signed by a retired key",
    "token_bound_to_other_key": "the token is bound to another key",
    "lifetime_too_long": "the token lives longer than allowed",
    "dpop_required": "this tenant requires DPoP-bound tokens: use Authorization: DPoP",
    "unknown_client": "no such client or it has been revoked",
    "replayed": "this one-time value (client assertion or sign-in nonce) was already used",
    "wrong_job": "the usage token is bound to another job",
}
assert set(_DESCRIPTIONS) == set(get_args(TokenReason))

# RFC 6750 section 3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}")


class TokenError(Unauthorized):
    """A bearer token (or client assertion) is not acceptable; ``reason`` says why."""

    code = "invalid_token"

    def __init__(self, reason: TokenReason, message: str | None = None) -> None:
        description = _DESCRIPTIONS[reason]
        super().__init__(message or description, reason=reason)
        self.reason: TokenReason = reason
        scheme = "DPoP" if reason == "dpop_required" else "Bearer"
        self.www_authenticate = f'{scheme} error="invalid_token", error_description="{description}"'

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.www_authenticate}


class ScopeError(Forbidden):
    """The token is valid but its scopes do not allow this route (or model)."""

    code = "insufficient_scope"

    def __init__(self, route: str, model: str | None, required: Iterable[str] = ()) -> None:
        super().__init__(
            f"the token does not allow route {route!r}"
            + (f" with model {model!r}" if model is not None else ""),
            reason="insufficient_scope",
            route=route,
            model=model,
        )
        self.reason = "insufficient_scope"
        needed = " ".join(s for s in required if _SCOPE_TOKEN.fullmatch(s))
        self.www_authenticate = (
            'Bearer error="insufficient_scope", '
            'error_description="the token does not allow this route or model"'
            + (f', scope="{needed}"' if needed else "")
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.www_authenticate}
