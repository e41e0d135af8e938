"""Rate limits of a credential (``None`` = unlimited) and the lease an admitted request holds."""

from __future__ import annotations

from dataclasses import dataclass

from apicredits.errors import InvalidInput

WINDOW_SECONDS = 60.0
# Retry hint when every concurrency slot is taken (slots free whenever holders finish).
CONCURRENCY_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RateLimits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise InvalidInput(f"{name} must be a positive integer or unset", field=name)

    @property
    def unlimited(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.max_concurrent is None
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of admission; ``release`` it when the request ends (frees its concurrency slot)."""

    key: str
    lease_id: str
    tokens: int
    concurrent: bool


def check_tokens(limits: RateLimits, tokens: int) -> None:
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise InvalidInput("a token count must be a non-negative integer")
    if limits.tokens_per_minute is not None and tokens > limits.tokens_per_minute:
        # It could never fit, so "retry later" would be a lie.
        raise InvalidInput(
            f"request needs {tokens} tokens but the limit is {limits.tokens_per_minute}/minute",
            field="max_tokens",
        )
