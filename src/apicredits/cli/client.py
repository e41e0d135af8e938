"""The control-plane HTTP client the CLI uses (errors become one-line ``CliError``s)."""

from __future__ import annotations

from typing import Any

import httpx

from apicredits.errors import ApicreditsError


class CliError(ApicreditsError):
    code = "cli_error"
    status = 1


class AdminClient:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"Content-Type": content_type} if content_type else None
        try:
            response = self._http.request(
                method,
                "/admin/v1" + path,
                json=json,
                content=content,
                headers=headers,
                params=params,
            )
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.url}: {exc}") from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            raise CliError(f"HTTP {response.status_code} with a non-JSON body") from None
        if response.is_error:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            code = error.get("code", f"http_{response.status_code}")
            raise CliError(f"{code}: {error.get('message', response.reason_phrase)}")
        return body

    def close(self) -> None:
        self._http.close()
