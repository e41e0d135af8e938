"""The ledger state machine, without a database: examples and hypothesis invariants."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apicredits.errors import (
    ApicreditsError,
    BudgetExceeded,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidInput,
    LockClosed,
    LockExceeded,
    NotFound,
)
from apicredits.ledger import (
    Account,
    AccountType,
    Budget,
    Command,
    Consume,
    Deposit,
    Expire,
    Lock,
    Move,
    Refund,
    Transfer,
    TransferKind,
    apply_batch,
    period_key,
)
from apicredits.ledger.model import LedgerView

SECOND = 1_000_000
T0 = 1_790_000_000 * SECOND


class MemoryLedger:
    """The rules applied to dicts: a full view every batch, outcomes written back."""

    def __init__(self, budgets: list[Budget] = ()) -> None:  # type: ignore[assignment]
        self.accounts = {
            "world": Account("world", AccountType.WORLD),
            "platform": Account(
                "platform", AccountType.PLATFORM, debits_must_not_exceed_credits=True
            ),
            "t1": Account("t1", AccountType.TENANT, debits_must_not_exceed_credits=True),
            "t2": Account("t2", AccountType.TENANT, debits_must_not_exceed_credits=True),
        }
        self.transfers: dict[str, Transfer] = {}
        self.closings: dict[str, Transfer] = {}
        self.usage: dict[tuple[str, str], int] = {}
        self.budgets: dict[tuple[str, str], list[Budget]] = {}
        for b in budgets:
            self.budgets.setdefault((b.scope, b.scope_id), []).append(b)
        self.now = T0

    def run(self, *commands: Command) -> list[Transfer | ApicreditsError]:
        view = LedgerView(
            dict(self.accounts),
            dict(self.transfers),
            dict(self.closings),
            self.budgets,
            dict(self.usage),
        )
        out = apply_batch(view, list(commands), self.now)
        for t in out.new_transfers:
            assert t.id not in self.transfers, "a transfer id was written twice"
            self.transfers[t.id] = t
            if t.pending_id is not None:
                assert t.pending_id not in self.closings, "a lock was closed twice"
                self.closings[t.pending_id] = t
        self.accounts.update(out.accounts)
        self.usage.update(out.budget_usage)
        return out.results

    def one(self, command: Command) -> Transfer:
        (result,) = self.run(command)
        if isinstance(result, ApicreditsError):
            raise result
        return result

    def check_invariants(self) -> None:
        accs = self.accounts.values()
        assert sum(a.credits_posted - a.debits_posted for a in accs) == 0
        assert sum(a.credits_pending - a.debits_pending for a in accs) == 0
        for a in accs:
            if a.debits_must_not_exceed_credits:
                assert a.available >= 0, a
            assert min(a.debits_pending, a.credits_pending) >= 0
        for lock_id, closing in self.closings.items():
            lock = self.transfers[lock_id]
            assert closing.amount + closing.released == lock.amount
            assert 0 <= closing.amount <= lock.amount
        for key, used in self.usage.items():
            assert used >= 0, key


def funded(amount: int = 1000, budgets: list[Budget] = ()) -> MemoryLedger:  # type: ignore[assignment]
    m = MemoryLedger(budgets)
    m.one(Deposit("d", "t1", amount))
    return m


def test_lock_consume_releases_the_remainder() -> None:
    m = funded()
    m.one(Lock("l", "t1", "platform", 300, 60))
    assert m.accounts["t1"].available == 700
    assert m.accounts["t1"].locked == 300
    c = m.one(Consume("c", "l", 120))
    assert (c.amount, c.released, c.kind) == (120, 180, TransferKind.CONSUME)
    assert m.accounts["t1"].available == 880
    assert m.accounts["t1"].locked == 0
    assert m.accounts["platform"].credits_posted == 120
    m.check_invariants()


def test_refund_releases_everything() -> None:
    m = funded()
    m.one(Lock("l", "t1", "platform", 300, 60))
    r = m.one(Refund("r", "l"))
    assert (r.amount, r.released) == (0, 300)
    assert m.accounts["t1"].available == 1000


def test_lock_needs_available_credits() -> None:
    m = funded(100)
    with pytest.raises(InsufficientCredits) as err:
        m.one(Lock("l", "t1", "platform", 101, 60))
    assert err.value.details == {"account_id": "t1", "needed_micro": 101, "available_micro": 100}
    assert m.accounts["t1"].locked == 0
    assert "l" not in m.transfers


def test_consume_cannot_exceed_its_lock() -> None:
    m = funded()
    m.one(Lock("l", "t1", "platform", 10, 60))
    with pytest.raises(LockExceeded):
        m.one(Consume("c", "l", 11))
    assert "l" not in m.closings


def test_a_lock_closes_exactly_once() -> None:
    m = funded()
    m.one(Lock("l", "t1", "platform", 10, 60))
    m.one(Consume("c", "l", 5))
    for again in (Consume("c2", "l", 1), Refund("r", "l")):
        with pytest.raises(LockClosed):
            m.one(again)
    m.now += 61 * SECOND
    with pytest.raises(LockClosed):
        m.one(Expire("l"))


def test_same_id_same_content_returns_the_original() -> None:
    m = funded()
    first = m.one(Lock("l", "t1", "platform", 10, 60))
    m.now += SECOND
    assert m.one(Lock("l", "t1", "platform", 10, 60)) == first
    c = m.one(Consume("c", "l", 7))
    assert m.one(Consume("c", "l", 7)) == c
    assert m.accounts["t1"].available == 993


@pytest.mark.parametrize(
    "retry",
    [
        Lock("l", "t1", "platform", 11, 60),
        Lock("l", "t2", "platform", 10, 60),
        Lock("l", "t1", "platform", 10, 61),
        Consume("l", "l", 1),
        Deposit("l", "t1", 10),
    ],
)
def test_same_id_different_content_is_a_conflict(retry: Command) -> None:
    m = funded()
    m.one(Deposit("d2", "t2", 100))
    m.one(Lock("l", "t1", "platform", 10, 60))
    with pytest.raises(IdempotencyConflict):
        m.one(retry)


def test_duplicates_inside_one_batch() -> None:
    m = funded()
    a, b, c = m.run(
        Lock("l", "t1", "platform", 10, 60),
        Lock("l", "t1", "platform", 10, 60),
        Lock("l", "t1", "platform", 12, 60),
    )
    assert a == b
    assert isinstance(c, IdempotencyConflict)
    assert m.accounts["t1"].locked == 10


def test_a_failed_command_does_not_spoil_its_batch() -> None:
    m = funded(100)
    ok, bad, ok2 = m.run(
        Lock("a", "t1", "platform", 60, 60),
        Lock("b", "t1", "platform", 60, 60),
        Lock("c", "t1", "platform", 40, 60),
    )
    assert isinstance(ok, Transfer)
    assert isinstance(bad, InsufficientCredits)
    assert isinstance(ok2, Transfer)
    assert m.accounts["t1"].available == 0


def test_expiry_only_after_the_timeout() -> None:
    m = funded()
    m.one(Lock("l", "t1", "platform", 10, 60))
    with pytest.raises(LockClosed):
        m.one(Expire("l"))
    m.now += 60 * SECOND
    e = m.one(Expire("l"))
    assert (e.kind, e.released, e.id) == (TransferKind.EXPIRE, 10, "l:expire")
    assert m.one(Expire("l")) == e  # the sweeper in another worker: same answer


def test_consuming_an_expired_lock_expires_it_and_refuses() -> None:
    m = funded()
    m.one(Lock("l", "t1", "platform", 10, 60))
    m.now += 61 * SECOND
    with pytest.raises(LockClosed) as err:
        m.one(Consume("c", "l", 5))
    assert err.value.details["state"] == "expired"
    assert m.closings["l"].kind == TransferKind.EXPIRE
    assert m.accounts["t1"].available == 1000


@pytest.mark.parametrize("bad", [0, -5, True, 2**63])
def test_amounts_must_be_positive_integers(bad: int) -> None:
    m = funded()
    with pytest.raises(InvalidInput):
        m.one(Lock("l", "t1", "platform", bad, 60))
    with pytest.raises(InvalidInput):
        m.one(Deposit("x", "t1", bad))


def test_unknown_accounts_and_locks() -> None:
    m = funded()
    with pytest.raises(NotFound):
        m.one(Lock("l", "nobody", "platform", 1, 60))
    with pytest.raises(NotFound):
        m.one(Consume("c", "no-such-lock", 1))
    with pytest.raises(InvalidInput):
        m.one(Move("m", "t1", "t1", 1))
    with pytest.raises(InvalidInput):
        m.one(Lock("l0", "t1", "platform", 1, 0))


def test_budget_caps_locks_and_releases_on_close() -> None:
    cap = Budget("b", "project", "p1", "day", 100)
    m = funded(budgets=[cap])
    scopes = (("tenant", "t1"), ("project", "p1"))
    m.one(Lock("a", "t1", "platform", 60, 60, scopes))
    with pytest.raises(BudgetExceeded) as err:
        m.one(Lock("b", "t1", "platform", 41, 60, scopes))
    assert err.value.details["used_micro"] == 60
    m.one(Consume("ca", "a", 25))  # 35 released back to the budget
    m.one(Lock("b", "t1", "platform", 75, 60, scopes))
    key = ("b", period_key("day", m.now))
    assert m.usage[key] == 100
    m.one(Refund("rb", "b"))
    assert m.usage[key] == 25
    m.check_invariants()


def test_budget_periods_roll_over() -> None:
    m = funded(budgets=[Budget("b", "tenant", "t1", "day", 50)])
    m.one(Lock("a", "t1", "platform", 50, 60, (("tenant", "t1"),)))
    m.one(Consume("ca", "a", 50))
    with pytest.raises(BudgetExceeded):
        m.one(Lock("b", "t1", "platform", 1, 60, (("tenant", "t1"),)))
    m.now += 86_400 * SECOND
    m.one(Lock("b", "t1", "platform", 50, 60, (("tenant", "t1"),)))


def test_period_keys() -> None:
    at = 1_795_392_000 * SECOND  # 2026-11-23T00:00:00Z
    assert period_key("day", at) == "d2026-11-23"
    assert period_key("month", at) == "m2026-11"
    assert period_key("none", at) == "all"
    with pytest.raises(InvalidInput):
        period_key("week", at)


# ------------------------------------------------------------------ property tests

ids = st.sampled_from([f"x{i}" for i in range(12)])
accounts = st.sampled_from(["t1", "t2"])
amounts = st.integers(min_value=0, max_value=400)
command = st.one_of(
    st.builds(Deposit, ids, accounts, amounts),
    st.builds(
        Lock,
        ids,
        accounts,
        st.just("platform"),
        amounts,
        st.integers(1, 5),
        st.just((("tenant", "t1"), ("tenant", "t2"))),
    ),
    st.builds(Consume, ids, ids, amounts),
    st.builds(Refund, ids, ids),
    st.builds(Expire, ids),
    st.builds(Move, ids, accounts, st.sampled_from(["platform", "t1", "t2"]), amounts),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(command, max_size=6), st.integers(0, 3)), max_size=12))
def test_invariants_hold_for_any_command_sequence(
    batches: list[tuple[list[Command], int]],
) -> None:
    budgets = [Budget("b1", "tenant", "t1", "none", 500), Budget("b2", "tenant", "t2", "day", 300)]
    m = MemoryLedger(budgets)
    for commands, wait in batches:
        results = m.run(*commands)
        assert len(results) == len(commands)
        m.check_invariants()
        for (budget_id, _), used in m.usage.items():
            cap = next(b.cap_micro for b in budgets if b.id == budget_id)
            assert used <= cap
        m.now += wait * SECOND
    # Past every timeout each lock ends exactly once: consumed, refunded or expired.
    m.now += 10 * SECOND
    open_locks = [
        t.id for t in m.transfers.values() if t.kind == TransferKind.LOCK and t.id not in m.closings
    ]
    for result in m.run(*(Expire(i) for i in open_locks)):
        assert isinstance(result, Transfer)
        assert result.kind == TransferKind.EXPIRE
    locks = [t for t in m.transfers.values() if t.kind == TransferKind.LOCK]
    assert all(lock.id in m.closings for lock in locks)
    assert all(a.debits_pending == 0 == a.credits_pending for a in m.accounts.values())
    # With every lock closed, a budget bucket holds exactly what was consumed against it.
    consumed: dict[tuple[str, str], int] = {}
    for lock in locks:
        for hold in lock.holds:
            key = (hold.budget_id, hold.period_key)
            consumed[key] = consumed.get(key, 0) + m.closings[lock.id].amount
    assert {k: v for k, v in m.usage.items() if v} == {k: v for k, v in consumed.items() if v}
    m.check_invariants()


def test_transfers_are_values() -> None:
    t = funded().transfers["d"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.amount = 5  # type: ignore[misc]
