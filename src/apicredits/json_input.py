"""JSON from outside the process (request bodies, headers, tokens, providers' answers),
parsed with its nesting bounded and, where its strings are used, its text checked.

Nesting: the ``json`` module's C decoder recurses once per level, guarded only by the
interpreter's recursion limit, and py_ecc (which eth-account imports) raises that limit to
100,000 when imported. At that limit ~100 KB of ``[`` overflows the C stack: one request
would kill a worker (a segfault, not an exception). So the bound here is our own, checked
before the decoder runs, and independent of what any library does to the interpreter.

Text: JSON may carry an unpaired UTF-16 surrogate (``"\\ud800"``, or its raw bytes, which
the decoder lets through), giving a ``str`` that no UTF-8 encoder accepts: the token
estimate, an error message echoing the model, a database write would each fail on it
later. Requests are refused at the edge instead; a provider's answer is only read for its
numbers and relayed as it came, so it is not checked (``text=False``).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from apicredits.errors import InvalidInput

# Far deeper than any API document (JSON schemas of tools nest a few dozen levels), far
# shallower than the C stack allows.
MAX_DEPTH = 512

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear, no backtracking
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# A surrogate as UTF-8 would encode it (0xED 0xA0-0xBF), or a \uD800-\uDFFF escape.
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]|\\u[dD][89a-fA-F]")
_SURROGATE_TEXT = re.compile("[\ud800-\udfff]|\\\\u[dD][89a-fA-F]")
_STEP = tuple({ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(b, 0) for b in range(256))


class Refused(json.JSONDecodeError):
    """JSON the decoder might take but we do not. A ``JSONDecodeError`` (so a
    ``ValueError``), which every caller already answers as malformed JSON; ``msg`` says
    what is wrong, to follow "<what> is"."""


class TooDeep(Refused):
    """Nesting deeper than ``MAX_DEPTH``."""


class NotText(Refused):
    """A string (or key) holding an unpaired surrogate."""


def loads(payload: bytes | str, *, text: bool = True) -> Any:
    """``json.loads``, refusing nesting deeper than ``MAX_DEPTH`` (``TooDeep``) and, with
    ``text``, strings that are not Unicode text (``NotText``)."""
    if len(payload) > MAX_DEPTH:  # (checked here too: this runs on every call's body)
        check_depth(payload)
    document = json.loads(payload)
    if text and _may_hold_surrogates(payload):
        try:  # exact, and rare: only documents with escapes or bytes that could be one
            json.dumps(document, ensure_ascii=False, check_circular=False).encode("utf-8")
        except UnicodeEncodeError:
            raise NotText(
                "not Unicode text: a string holds an unpaired surrogate", _head(payload), 0
            ) from None
    return document


def request_body(raw: bytes) -> Any:
    """A request's JSON body, or ``InvalidInput`` saying what is wrong with it."""
    try:
        return loads(raw)
    except Refused as exc:
        raise InvalidInput(f"request body is {exc.msg}") from None
    except ValueError:  # JSONDecodeError, and bytes that are no Unicode encoding
        raise InvalidInput("request body is not valid JSON") from None


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
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels", _head(payload), 0)


def _may_hold_surrogates(payload: bytes | str) -> bool:
    """Whether ``payload`` has a surrogate, raw or escaped (an escaped pair, an emoji,
    matches too: the exact check tells); false for most documents, at one regex search."""
    if isinstance(payload, str):
        return _SURROGATE_TEXT.search(payload) is not None
    return _SURROGATE_BYTES.search(payload) is not None


def _head(payload: bytes | str) -> str:
    return payload[:64] if isinstance(payload, str) else payload[:64].decode("utf-8", "replace")
