"""Ledger values: the hand-written copies agree with the dataclass fields."""

from __future__ import annotations

import dataclasses

from apicredits.ledger.model import BudgetHold, Transfer, TransferKind


def test_numbered_keeps_every_field() -> None:
    # every field set away from its default, so a field numbered() drops or shifts shows
    values = {f.name: f"{f.name}-value" for f in dataclasses.fields(Transfer) if f.type == "str"}
    transfer = Transfer(
        **values,
        kind=TransferKind.CONSUME,
        amount=7,
        released=3,
        pending_id="the-lock",
        timeout_seconds=60,
        expires_at_us=11,
        created_at_us=13,
        holds=(BudgetHold("b", "2026-12"),),
    )
    numbered = transfer.numbered(42)
    assert numbered == dataclasses.replace(transfer, seq=42)
    assert {f.name for f in dataclasses.fields(Transfer)} == set(values) | {
        "kind", "amount", "released", "pending_id", "timeout_seconds", "expires_at_us",
        "created_at_us", "holds", "seq",
    }  # fmt: skip
