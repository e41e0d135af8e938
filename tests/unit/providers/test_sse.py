from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apicredits.providers.sse import EventSplitter, SSEEvent


def split_all(chunks: list[bytes]) -> list[SSEEvent]:
    splitter = EventSplitter()
    events = [event for chunk in chunks for event in splitter.feed(chunk)]
    return events + splitter.flush()


def parsed(events: list[SSEEvent]) -> list[tuple[str | None, str | None]]:
    return [(event.event, event.data) for event in events]


def test_events_names_and_data() -> None:
    stream = b"event: message_start\ndata: {}\n\ndata: one\n\n"
    events = split_all([stream])
    assert events == [
        SSEEvent(b"event: message_start\ndata: {}\n\n", "message_start", "{}"),
        SSEEvent(b"data: one\n\n", None, "one"),
    ]


def test_multiline_data_joins_with_newline() -> None:
    assert parsed(split_all([b'data: {\ndata:  "a": 1\ndata: }\n\n'])) == [(None, '{\n "a": 1\n}')]


def test_comments_and_unknown_fields_are_ignored_but_forwarded() -> None:
    stream = b": keep-alive\n\nid: 7\nretry: 10\ndata: x\n\n"
    events = split_all([stream])
    assert parsed(events) == [(None, None), (None, "x")]
    assert b"".join(event.raw for event in events) == stream


def test_field_without_colon_and_without_space() -> None:
    assert parsed(split_all([b"data\n\ndata:x\n\nevent\ndata:\n\n"])) == [
        (None, ""),
        (None, "x"),
        ("", ""),
    ]


def test_crlf_and_cr_line_endings() -> None:
    stream = b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\n"
    assert parsed(split_all([stream])) == [(None, "a"), (None, "b"), (None, "c")]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    events = split_all([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert parsed(events) == [(None, "a"), (None, "b")]


def test_leading_bom_is_skipped() -> None:
    assert parsed(split_all([b"\xef\xbb\xbfdata: a\n\n"])) == [(None, "a")]


def test_utf8_split_inside_a_character() -> None:
    stream = "data: héllo ✓\n\n".encode()
    cut = stream.index("✓".encode()) + 1
    assert parsed(split_all([stream[:cut], stream[cut:]])) == [(None, "héllo ✓")]


def test_incomplete_event_is_held_until_its_blank_line() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\n") == []
    assert splitter.pending == len(b"data: a\n")
    assert splitter.feed(b"\n") == [SSEEvent(b"data: a\n\n", None, "a")]
    assert splitter.pending == 0


def test_flush_parses_terminated_lines_but_not_a_cut_off_line() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\n\nevent: x\ndata: b\ndata: cut-o") == [
        SSEEvent(b"data: a\n\n", None, "a")
    ]
    assert splitter.flush() == [SSEEvent(b"event: x\ndata: b\ndata: cut-o", "x", "b")]
    assert splitter.flush() == []


def test_flush_treats_a_final_cr_as_a_line_end() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.flush() == [SSEEvent(b"data: a\r", None, "a")]


def test_splitter_is_reusable_after_flush() -> None:
    splitter = EventSplitter()
    splitter.feed(b"event: e\ndata: a")
    splitter.flush()
    assert splitter.feed(b"data: b\n\n") == [SSEEvent(b"data: b\n\n", None, "b")]


_line = st.sampled_from(
    ['data: {"a": 1}', "data: ünï ✓", "event: x", ": ping", "data", "id: 1", "data:", ""]
)
_newline = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_line, _newline), max_size=30))
    return "".join(line + end for line, end in lines).encode()


@given(streams(), st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    points = sorted({cut % (len(stream) + 1) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    whole = split_all([stream])
    assert split_all(chunks) == whole
    assert b"".join(event.raw for event in whole) == stream
