"""Constants and helpers shared by the contract tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boa
from eth_account.signers.local import LocalAccount

CONTRACTS = Path(__file__).resolve().parents[4] / "contracts"
MICRO = 10**6
WITHDRAW_DELAY = 3 * 24 * 3600
PROVIDER_ID = b"provider-1".ljust(32, b"\0")
INITIAL_FUNDS = 1_000_000 * MICRO
ZERO_ADDRESS = "0x" + "00" * 20


_deployers: dict[str, Any] = {}


def load(name: str, *args: Any) -> Any:
    """Deploy ``contracts/<name>.vy`` from the current sender (compiled once per session)."""
    if name not in _deployers:
        _deployers[name] = boa.load_partial(str(CONTRACTS / f"{name}.vy"))
    return _deployers[name].deploy(*args)


def now() -> int:
    """The timestamp of the next block."""
    return int(boa.env.timestamp)


def job_id(label: str) -> bytes:
    """A 32-byte job id."""
    return label.encode().ljust(32, b"\0")


def events(contract: Any, name: str) -> list[Any]:
    """The decoded ``name`` events the contract emitted in the last call."""
    return [log for log in contract.get_logs() if type(log).__name__ == name]


@dataclass(frozen=True)
class System:
    """The deployed contracts and the roles around them."""

    owner: str
    operator: str
    settler: str
    provider_admin: str
    provider_signer: str
    payout: str
    tenants: tuple[LocalAccount, ...]
    stablecoin: Any
    credit: Any
    registry: Any
    vault: Any
