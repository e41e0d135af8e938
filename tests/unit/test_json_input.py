from __future__ import annotations

import json
import subprocess
import sys

import pytest

from apicredits import json_input
from apicredits.errors import InvalidInput
from apicredits.json_input import MAX_DEPTH, NotText, TooDeep


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"{}", 1),
        (b'[{"a": [1, {"b": []}]}]', 5),
        (b'["[[[[", {"k": "{{"}]', 2),  # brackets inside strings do not nest
        (rb'["\"[[[", "\\", []]', 2),  # nor do escaped quotes end a string
        (b"[]" * 1000, 1),  # many brackets, one level
    ],
)
def test_nesting_depth(document: bytes, depth: int) -> None:
    assert json_input.nesting_depth(document) == depth


@pytest.mark.parametrize("kind", [str, bytes])
def test_the_bound_is_max_depth(kind: type) -> None:
    at_limit, beyond = nested(MAX_DEPTH), nested(MAX_DEPTH + 1)
    encode = (lambda s: s) if kind is str else (lambda s: s.encode())
    assert json_input.loads(encode(at_limit)) == json.loads(at_limit)
    with pytest.raises(TooDeep, match=f"deeper than {MAX_DEPTH} levels"):
        json_input.loads(encode(beyond))


def test_too_deep_is_a_json_decode_error() -> None:
    # so every caller that answers malformed JSON answers this too
    with pytest.raises(json.JSONDecodeError):
        json_input.loads(nested(MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="nested deeper"):
        json_input.check_depth(b"[" * (MAX_DEPTH + 1))


def test_a_wide_document_with_many_brackets_is_parsed() -> None:
    document = json.dumps({"input": [[i, i + 1] for i in range(5000)]})
    assert json_input.loads(document)["input"][4999] == [4999, 5000]


def test_malformed_json_is_still_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        json_input.loads(b'{"a": ')
    with pytest.raises(ValueError, match="Expecting value"):
        json_input.loads(b"\xff\xfe")


def test_a_million_levels_are_refused_in_a_worker_as_it_runs() -> None:
    # With the gateway imported, the recursion limit is py_ecc's 100,000, at which the C
    # decoder overflows the stack before it would raise RecursionError. In a child process,
    # so that a regression kills the child, not the test run.
    script = (
        "import apicredits.gateway.app\n"
        "from apicredits import json_input\n"
        "try:\n"
        "    json_input.loads(b'[' * 1_000_000)\n"
        "except json_input.TooDeep:\n"
        "    print('refused')\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert (child.returncode, child.stdout) == (0, b"refused\n"), child.stderr[-500:]


@pytest.mark.parametrize(
    "document",
    [
        rb'{"content": "hi \ud800 there"}',  # a lone high surrogate, escaped
        rb'{"content": "\uDFFF"}',  # a lone low one, upper case
        rb'{"\ud83d": 1}',  # in a key
        b'{"content": "\xed\xa0\x80"}',  # raw, as UTF-8 would encode it if it could
        '{"content": "\ud800"}',  # a str holding one
    ],
)
def test_a_lone_surrogate_is_not_text(document: bytes | str) -> None:
    with pytest.raises(NotText, match="unpaired surrogate"):
        json_input.loads(document)
    assert isinstance(json_input.loads(document, text=False), dict)  # a provider's answer


@pytest.mark.parametrize(
    ("document", "text"),
    [
        (rb'{"content": "\ud83d\ude00"}', "\U0001f600"),  # a pair: an emoji
        ('{"content": "\ud55c\uad6d\uc5b4"}'.encode(), "\ud55c\uad6d\uc5b4"),  # 0xED bytes
        (rb'{"content": "\\ud800"}', "\\ud800"),  # an escaped backslash: just text
    ],
)
def test_text_that_only_looks_like_a_surrogate_is_accepted(document: bytes, text: str) -> None:
    assert json_input.loads(document)["content"] == text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "request body is not valid JSON"),
        (b"\xff\xfe\x00", "request body is not valid JSON"),
        (b"[" * (MAX_DEPTH + 1), f"request body is nested deeper than {MAX_DEPTH} levels"),
        (rb'["\ud800"]', "request body is not Unicode text: a string holds an unpaired surrogate"),
    ],
)
def test_a_request_body_says_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        json_input.request_body(raw)
    assert str(refused.value) == message
