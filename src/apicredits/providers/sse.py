"""Incremental Server-Sent Events splitting, byte-exact.

``EventSplitter.feed`` takes upstream bytes in any chunking (lines, CRLFs and UTF-8 sequences
may be split anywhere) and returns the events completed so far. Each ``SSEEvent`` carries its
``raw`` bytes exactly as received, from the end of the previous event up to and including the
blank line that ended it, so the concatenated ``raw`` of everything returned by ``feed`` and
``flush`` is the input, byte for byte: the gateway forwards events untouched and can drop one.

Parsing follows the WHATWG rules: lines end in CRLF, LF or CR; a blank line ends an event;
``:`` lines are comments; ``field: value`` strips one leading space; several ``data`` lines join
with ``\\n``; fields other than ``event`` and ``data`` are ignored; a leading BOM is skipped.
Every blank line ends an event, even an empty one (a keep-alive comment must reach the client
now, not with the next event); such events have ``data`` None.
"""

from __future__ import annotations

from typing import NamedTuple

_LF = 0x0A
_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    raw: bytes  # the bytes as received, terminating blank line included
    event: str | None  # the ``event:`` field, None when absent
    data: str | None  # the joined ``data:`` lines, None when the event had none


def _event(raw: bytes, event: str | None, data: str | None) -> SSEEvent:
    return tuple.__new__(SSEEvent, (raw, event, data))  # skips NamedTuple's Python __new__


class EventSplitter:
    """Split an SSE byte stream into events; keeps the unfinished remainder between calls."""

    __slots__ = ("_buf", "_data", "_event", "_pos", "_started")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes of the event in progress (and unparsed lines after it)
        self._pos = 0  # where the next unparsed line starts in _buf
        self._event: str | None = None
        self._data: list[str] = []
        self._started = False  # the first line (which may carry a BOM) was seen

    @property
    def pending(self) -> int:
        """How many bytes are held back, waiting for the end of their event."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        self._buf += chunk
        return self._split(final=False)

    def flush(self) -> list[SSEEvent]:
        """At end of stream: everything still held, as at most one last event.

        Its complete lines are parsed as if a blank line followed; an unterminated last line is
        forwarded in ``raw`` but not parsed, since it is most likely a cut-off fragment.
        """
        events = self._split(final=True)
        if self._buf:
            events.append(SSEEvent(bytes(self._buf), self._event, self._joined_data()))
        self._buf.clear()
        self._pos = 0
        self._reset()
        return events

    def _split(self, *, final: bool) -> list[SSEEvent]:
        buf = self._buf
        size = len(buf)
        pos = self._pos
        start = 0  # where the event in progress starts
        events: list[SSEEvent] = []
        has_cr = buf.find(b"\r", pos) != -1  # most providers send bare LFs: skip CR handling
        while pos < size:
            nl = buf.find(b"\n", pos)
            cr = buf.find(b"\r", pos, size if nl == -1 else nl) if has_cr else -1
            if cr != -1:
                if cr + 1 == size and not final:
                    break  # a CR at the very end may be the first half of CRLF
                end = cr
                nxt = cr + 2 if cr + 1 < size and buf[cr + 1] == _LF else cr + 1
            elif nl != -1:
                end, nxt = nl, nl + 1
            else:
                break  # unterminated line: wait for more bytes
            if end == pos:
                events.append(_event(bytes(buf[start:nxt]), self._event, self._joined_data()))
                self._event = None
                self._data = []
                start = nxt
            elif self._started and buf.startswith(b"data: ", pos):  # the hot path
                self._data.append(buf[pos + 6 : end].decode("utf-8", "replace"))
            else:
                self._field(buf[pos:end])
            pos = nxt
        if start:
            del buf[:start]  # once per call, not per event: no quadratic copying
        self._pos = pos - start
        return events

    def _field(self, line: bytearray) -> None:
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                line = line[len(_BOM) :]
        colon = line.find(b":")
        if colon == 0:
            return  # comment
        name = line if colon == -1 else line[:colon]
        if name == b"data":
            value = b"" if colon == -1 else line[colon + 1 :]
            if value.startswith(b" "):
                value = value[1:]
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            value = b"" if colon == -1 else line[colon + 1 :]
            if value.startswith(b" "):
                value = value[1:]
            self._event = value.decode("utf-8", "replace")

    def _joined_data(self) -> str | None:
        data = self._data
        if not data:
            return None
        return data[0] if len(data) == 1 else "\n".join(data)

    def _reset(self) -> None:
        self._event = None
        self._data = []
