from __future__ import annotations

import json
import subprocess
import sys

import pytest

from apicredits import json_input
from apicredits.json_input import MAX_DEPTH, TooDeep


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
