"""Errors of the apicredits client SDK.

    SdkError                    root: everything the SDK raises on purpose
    ├── InvalidKey              a private key cannot be loaded or is not Ed25519 / P-256
    └── TokenRequestFailed      the token endpoint refused (``status``, ``code``, ``message``)
        └── InvalidTokenResponse  it answered, but not with a usable token response

Errors raised while sending a request carry that ``request`` (and the ``response`` when there
was one), like httpx's. Transport failures stay httpx's own exceptions; a resource request that
is still refused after the SDK's one retry is returned as the response, never raised.
"""

from __future__ import annotations

import httpx

__all__ = ["InvalidKey", "InvalidTokenResponse", "SdkError", "TokenRequestFailed"]


class SdkError(Exception):
    """Root of every error the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidKey(SdkError):
    """A private key cannot be loaded, or is neither Ed25519 nor P-256."""


class TokenRequestFailed(SdkError):
    """The token endpoint did not issue a capability token.

    ``code``, ``message`` and ``reason`` are the server's ``{"error": {"code", "message",
    "reason"}}`` when it sent one (``reason`` says why, e.g. ``unknown_client``), else
    ``"http_error"``, the status line and None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        request: httpx.Request,
        response: httpx.Response | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message} (HTTP {status})")
        self.message = message
        self.status = status
        self.code = code
        self.reason = reason
        self.request = request
        self.response = response


class InvalidTokenResponse(TokenRequestFailed):
    """The token endpoint answered 200 with something that is not a token response (or a
    token type this client cannot use); ``code`` is ``"invalid_token_response"``."""

    def __init__(
        self, message: str, *, request: httpx.Request, response: httpx.Response | None = None
    ) -> None:
        status = response.status_code if response is not None else 0
        super().__init__(
            message,
            status=status,
            code="invalid_token_response",
            request=request,
            response=response,
        )
