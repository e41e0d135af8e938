"""Metering a streamed response while forwarding it.

``StreamMeter.feed`` takes upstream bytes as they arrive and returns the bytes to forward: every
complete SSE event, byte-identical, except the usage-only chunk the gateway injected into an
OpenAI chat stream the client did not ask usage for. Bytes of an unfinished event wait for the
rest of it, so the gateway can always stop at an event boundary; ``flush`` releases them at EOF.

``feed`` never raises: a stream the meter cannot read keeps flowing to the client, and the
meter marks itself broken (``usage()`` then raises MalformedUpstream) so billing falls back to
``partial_usage``. Events are parsed by the dialect's tracker (``anthropic.MessagesStream``...).
"""

from __future__ import annotations

from collections.abc import Callable

from apicredits.providers import anthropic, gemini, openai
from apicredits.providers.base import CallPlan, MalformedUpstream, Route, StreamTracker, Usage
from apicredits.providers.sse import EventSplitter, SSEEvent
from apicredits.tariffs.units import Unit

_TRACKERS: dict[Route, Callable[[], StreamTracker]] = {
    Route.OPENAI_CHAT: openai.ChatStream,
    Route.OPENAI_RESPONSES: openai.ResponsesStream,
    Route.ANTHROPIC_MESSAGES: anthropic.MessagesStream,
    Route.GEMINI_STREAM: gemini.GenerateStream,
}


class StreamMeter:
    """Forward one upstream SSE stream and count what it used."""

    __slots__ = ("_plan", "_problem", "_splitter", "_strip", "_tracker")

    def __init__(self, route: Route, plan: CallPlan, *, strip_usage_chunk: bool) -> None:
        if route not in _TRACKERS:
            raise ValueError(f"{route} does not stream")
        if strip_usage_chunk and route is not Route.OPENAI_CHAT:
            raise ValueError("only OpenAI chat streams have a usage chunk to strip")
        self._tracker = _TRACKERS[route]()
        self._plan = plan
        self._strip = strip_usage_chunk
        self._splitter = EventSplitter()
        self._problem: str | None = None

    def feed(self, data: bytes) -> bytes:
        """Upstream bytes in (any chunking); the bytes to forward to the client out."""
        return self._forward(self._splitter.feed(data))

    @property
    def pending(self) -> int:
        """Bytes of an event still in progress, held back until it ends."""
        return self._splitter.pending

    def flush(self) -> bytes:
        """At upstream EOF: whatever is still held back (an unterminated last event)."""
        return self._forward(self._splitter.flush())

    @property
    def complete(self) -> bool:
        """The provider's final usage was seen, and nothing in the stream was garbled."""
        return self._tracker.final and self._problem is None

    def usage(self) -> Usage:
        """The provider's final usage; MalformedUpstream if it was not seen or not readable."""
        if self._problem is not None:
            raise MalformedUpstream(f"unreadable stream: {self._problem}")
        reported = self._tracker.reported
        if not self._tracker.final or reported is None:
            raise MalformedUpstream("the stream ended before the provider reported its usage")
        return dict(reported)

    def partial_usage(self) -> Usage:
        """Best estimate for a stream that ended early (client gone, upstream cut); never raises.

        Input: the prompt tokens the provider reported (Anthropic ``message_start``, Gemini's
        chunks, OpenAI servers that report usage per chunk), else the plan's estimate. Output:
        the larger of the reported output and the content-delta events seen (one delta is
        about one token), the latter capped at the plan's ``max_output_tokens``.
        """
        if self.complete:
            return self.usage()
        reported = self._tracker.reported
        estimated = {Unit.INPUT_TOKENS: self._plan.input_tokens_estimate}
        usage = dict(estimated if reported is None else reported)
        reasoning = usage.get(Unit.REASONING_TOKENS, 0)
        deltas = min(self._tracker.deltas, self._plan.max_output_tokens)
        if deltas > usage.get(Unit.OUTPUT_TOKENS, 0) + reasoning:
            usage[Unit.OUTPUT_TOKENS] = deltas - reasoning
        return {unit: n for unit, n in usage.items() if n}

    def _forward(self, events: list[SSEEvent]) -> bytes:
        if not events:
            return b""
        kept: list[bytes] = []
        for raw, name, data in events:
            usage_only = data is not None and self._track(name, data)
            if not (usage_only and self._strip):
                kept.append(raw)
        return kept[0] if len(kept) == 1 else b"".join(kept)

    def _track(self, name: str | None, data: str) -> bool:
        """Feed the tracker; True if the event is a usage-only chunk (stripped if asked)."""
        try:
            return self._tracker.on_event(name, data)
        except Exception as exc:  # the stream must keep flowing; billing falls back instead
            if self._problem is None:
                self._problem = str(exc) or type(exc).__name__
            return False
