"""The one exception hierarchy of apicredits.

Every error a user can cause is an ``ApicreditsError`` carrying a stable ``code`` (the
JSON ``error.code`` at the HTTP edge), the HTTP ``status`` it maps to, and the data that
explains it. They become responses in exactly one place (``apicredits.gateway.errors``)
and one-line messages in the CLI.

    ApicreditsError
    ├── InvalidInput            400 invalid_request
    ├── Unauthorized            401 unauthorized
    ├── Forbidden               403 forbidden
    ├── NotFound                404 not_found
    │   └── UnknownModel        404 unknown_model
    ├── Conflict                409 conflict
    │   ├── IdempotencyConflict 409 idempotency_conflict
    │   └── LockClosed          409 lock_closed
    ├── LockExceeded            409 lock_exceeded
    ├── QuoteInvalid            400 invalid_quote
    ├── PayloadTooLarge         413 payload_too_large
    ├── InsufficientCredits     402 insufficient_credits
    ├── BudgetExceeded          402 budget_exceeded
    ├── RateLimited             429 rate_limited
    └── Unavailable             503 (with Retry-After)
        ├── LimitsUnavailable   503 limits_unavailable
        └── DatabaseUnavailable 503 database_unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApicreditsError(Exception):
    """Root of every error apicredits raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error adds (e.g. ``WWW-Authenticate``)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error: ``{"error": {"code", "message", ...details}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InvalidInput(ApicreditsError):
    code = "invalid_request"
    status = 400


class Unauthorized(ApicreditsError):
    code = "unauthorized"
    status = 401


class Forbidden(ApicreditsError):
    code = "forbidden"
    status = 403


class NotFound(ApicreditsError):
    code = "not_found"
    status = 404


class UnknownModel(NotFound):
    code = "unknown_model"


class Conflict(ApicreditsError):
    code = "conflict"
    status = 409


class IdempotencyConflict(Conflict):
    """A client-chosen id was reused with different content."""

    code = "idempotency_conflict"


class LockClosed(Conflict):
    """The lock was already consumed, refunded or expired."""

    code = "lock_closed"


class LockExceeded(ApicreditsError):
    """A consumption asked for more than its lock holds."""

    code = "lock_exceeded"
    status = 409


class QuoteInvalid(ApicreditsError):
    code = "invalid_quote"
    status = 400


class PayloadTooLarge(ApicreditsError):
    code = "payload_too_large"
    status = 413


class InsufficientCredits(ApicreditsError):
    code = "insufficient_credits"
    status = 402

    def __init__(self, account_id: str, needed_micro: int, available_micro: int) -> None:
        super().__init__(
            f"account {account_id} has {available_micro} micro-credits available, "
            f"{needed_micro} needed",
            account_id=account_id,
            needed_micro=needed_micro,
            available_micro=available_micro,
        )


class BudgetExceeded(ApicreditsError):
    code = "budget_exceeded"
    status = 402

    def __init__(
        self, budget_id: str, scope: str, cap_micro: int, used_micro: int, needed_micro: int
    ) -> None:
        super().__init__(
            f"{scope} budget {budget_id} allows {cap_micro - used_micro} more micro-credits "
            f"this period, {needed_micro} needed",
            budget_id=budget_id,
            scope=scope,
            cap_micro=cap_micro,
            used_micro=used_micro,
            needed_micro=needed_micro,
        )


class RateLimited(ApicreditsError):
    code = "rate_limited"
    status = 429

    def __init__(self, limit: str, retry_after_seconds: float) -> None:
        super().__init__(
            f"{limit} limit reached; retry after {retry_after_seconds:.3f}s",
            limit=limit,
            retry_after_seconds=retry_after_seconds,
        )
        self.retry_after_seconds = retry_after_seconds

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, int(self.retry_after_seconds + 0.999)))}  # whole s


class Unavailable(ApicreditsError):
    """Something the gateway needs cannot be used right now; retrying shortly is the remedy."""

    status = 503

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class LimitsUnavailable(Unavailable):
    """The shared limits store (Redis) cannot be reached: fail closed."""

    code = "limits_unavailable"


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or used right now (down, unreachable, full, busy)."""

    code = "database_unavailable"

    def __init__(self, message: str, *, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause  # the driver's words: for the operator (log, CLI), not the client
