"""Errors of the chain layer.

ApicreditsError
└── ChainError                  502 chain_error
    ├── ChainUnavailable        503 chain_unavailable   (node unreachable, anvil missing)
    ├── TransactionReverted     502 transaction_reverted (carries the revert reason)
    ├── WrongChain              502 wrong_chain          (node's chain id != configured)
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
