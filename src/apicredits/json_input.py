"""JSON from outside the process (request bodies, headers, tokens, providers' answers),
parsed with its nesting bounded.

The ``json`` module's C decoder recurses once per level of nesting, guarded only by the
interpreter's recursion limit, and py_ecc (which eth-account imports) raises that limit to
100,000 when imported. At that limit ~100 KB of ``[`` overflows the C stack: one request
would kill a worker (a segfault, not an exception). So the bound here is our own, checked
before the decoder runs, and independent of what any library does to the interpreter.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

# Far deeper than any API document (JSON schemas of tools nest a few dozen levels), far
# shallower than the C stack allows.
MAX_DEPTH = 512

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear, no backtracking
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple({ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(b, 0) for b in range(256))


class TooDeep(json.JSONDecodeError):
    """Nesting deeper than ``MAX_DEPTH``: a ``JSONDecodeError`` (so a ``ValueError``), which
    every caller already answers as malformed JSON."""


def loads(payload: bytes | str) -> Any:
    """``json.loads``, refusing nesting deeper than ``MAX_DEPTH`` with ``TooDeep``."""
    check_depth(payload)
    return json.loads(payload)


def check_depth(payload: bytes | str) -> None:
    """Raise ``TooDeep`` if ``payload`` nests deeper than ``MAX_DEPTH``: for a decoder of
    one's own (``json.JSONDecoder(...).decode``)."""
    # A document cannot nest deeper than it is long, nor than it has brackets: the common
    # case costs a length or two counts.
    if len(payload) <= MAX_DEPTH:
        return
    if isinstance(payload, str):
        if payload.count("[") + payload.count("{") > MAX_DEPTH:
            _check_depth(payload.encode("utf-8", "surrogatepass"), payload)
    elif payload.count(b"[") + payload.count(b"{") > MAX_DEPTH:
        _check_depth(bytes(payload), payload)


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, brackets inside strings not
    counted (in C-speed passes: strings cut out, brackets kept, then a running sum)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _check_depth(raw: bytes, payload: bytes | str) -> None:
    if nesting_depth(raw) > MAX_DEPTH:
        doc = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        raise TooDeep(f"JSON nested deeper than {MAX_DEPTH} levels", doc[:64], 0)
