"""Reading a request's headers once: names folded to lower case, repeats joined."""

from __future__ import annotations

from starlette.requests import Request

from apicredits.gateway.headers import bearer_token, media_type, request_headers


def request(*headers: tuple[bytes, bytes]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": list(headers)})


def test_names_are_lower_case_and_values_kept() -> None:
    r = request((b"Content-Type", b"application/json"), (b"x-api-key", b"ak_1"))
    assert request_headers(r) == {"content-type": "application/json", "x-api-key": "ak_1"}


def test_a_repeated_name_joins_its_values_in_order() -> None:
    r = request((b"dpop", b"first"), (b"accept", b"*/*"), (b"DPoP", b"second"))
    assert request_headers(r)["dpop"] == "first, second"


def test_read_once_per_request() -> None:
    r = request((b"host", b"a"))
    assert request_headers(r) is request_headers(r)
    r.scope["headers"].append((b"host", b"b"))  # the raw list is not read again
    assert request_headers(r)["host"] == "a"


def test_bearer_token() -> None:
    assert bearer_token(request((b"authorization", b"Bearer  tok "))) == "tok"
    assert bearer_token(request((b"authorization", b"bearer tok"))) == "tok"
    assert bearer_token(request((b"authorization", b"Basic dG9r"))) == ""
    assert bearer_token(request()) == ""
    doubled = request((b"authorization", b"Bearer tok"), (b"authorization", b"Bearer tok"))
    assert bearer_token(doubled) == "tok, Bearer tok"  # never equal to the one token


def test_media_type() -> None:
    assert media_type(request((b"content-type", b"Application/JSON; charset=utf-8"))) == (
        "application/json"
    )
    assert media_type(request()) == ""
