"""Errors of the chain layer.

ApicreditsError
└── ChainError                  502 chain_error
    ├── ChainUnavailable        503 chain_unavailable   (node unreachable, anvil missing)
    ├── TransactionReverted     502 transaction_reverted (carries the revert reason)
    ├── WrongChain              502 wrong_chain          (node's chain id != configured)
    ├── LogRangeTooLarge        502 log_range_too_large  (node refuses an eth_getLogs range)
    └── DeploymentInvalid       502 deployment_invalid   (missing file, ABI mismatch)
"""

from __future__ import annotations

from apicredits.errors import ApicreditsError

HOW_TO_START_ANVIL = (
    "start a local node with `apicredits chain up` (anvil, installed by `make venv`), "
    "or unset APICREDITS_CHAIN_RPC_URL to use the embedded chain"
)


class ChainError(ApicreditsError):
    code = "chain_error"
    status = 502


class ChainUnavailable(ChainError):
    code = "chain_unavailable"
    status = 503


class TransactionReverted(ChainError):
    code = "transaction_reverted"

    def __init__(self, fn: str, reason: str, tx_hash: str | None = None) -> None:
        super().__init__(f"{fn} reverted: {reason or 'no reason given'}", fn=fn, reason=reason)
        self.fn = fn
        self.reason = reason
        self.tx_hash = tx_hash


class WrongChain(ChainError):
    code = "wrong_chain"

    def __init__(self, expected: int, actual: int, where: str) -> None:
        super().__init__(
            f"{where} is chain {actual}, but chain {expected} is configured",
            expected=expected,
            actual=actual,
        )


class DeploymentInvalid(ChainError):
    code = "deployment_invalid"


class LogRangeTooLarge(ChainError):
    """The node refused a log query as too wide or too large (raised per query by a backend;
    ``Chain.raw_logs`` halves the range on it and lets it out only for a single block)."""

    code = "log_range_too_large"

    def __init__(self, from_block: int, to_block: int, reason: str) -> None:
        super().__init__(
            f"the node refuses the logs of blocks {from_block}-{to_block}: {reason}",
            from_block=from_block,
            to_block=to_block,
            reason=reason,
        )
        self.from_block = from_block
        self.to_block = to_block
        self.reason = reason
