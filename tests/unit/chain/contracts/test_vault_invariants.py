"""Random sequences of vault calls by random senders, checked against a model.

The model says, for every call, whether it must succeed or revert; after every step the
contract's per-tenant balances, locks and reservations must equal the model's, so no caller
can ever lock, withdraw or spend credits that are not its own. Global invariants: the credit
supply is total deposits minus burns (consumed and settled) minus withdrawals, and the vault
holds at least as much stablecoin as there are credits."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boa
from contracts_support import MICRO, PROVIDER_ID, WITHDRAW_DELAY, System, job_id, now
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

JOBS = [job_id(f"job-{i}") for i in range(6)]
AMOUNTS = st.integers(0, 60 * MICRO)
PERCENT = st.integers(0, 110)  # of what the model allows; above 100 must revert
# Senders are indexes into [tenant 0, tenant 1, tenant 2, operator, settler, owner]; each rule
# draws its rightful caller about half the time and anybody otherwise.
ANYONE = st.integers(0, 5)
TENANT = st.integers(0, 2)
OPERATOR, SETTLER = 3, 4


def _mostly(index: int) -> st.SearchStrategy[int]:
    return st.one_of(st.just(index), ANYONE)


LOCKED, CONSUMED, REFUNDED = 1, 2, 3


@dataclass
class Job:
    tenant: str
    amount: int
    expires_at: int
    status: int = LOCKED


@dataclass
class Model:
    balance: dict[str, int] = field(default_factory=dict)
    locked: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    available_at: dict[str, int] = field(default_factory=dict)
    jobs: dict[bytes, Job] = field(default_factory=dict)
    deposited: int = 0
    burned: int = 0
    withdrawn: int = 0

    def available(self, who: str) -> int:
        return self.balance.get(who, 0) - self.locked.get(who, 0) - self.pending.get(who, 0)


def _expect(ok: bool) -> AbstractContextManager[Any]:
    return nullcontext() if ok else boa.reverts()


class VaultMachine(RuleBasedStateMachine):
    system: ClassVar[System]
    locked_jobs = Bundle("locked_jobs")
    # Mostly jobs that were locked (open or since closed), sometimes any job id at all.
    some_job = st.one_of(locked_jobs, locked_jobs, locked_jobs, st.sampled_from(JOBS))

    def __init__(self) -> None:
        super().__init__()
        # Each run starts from the session deployment and is rolled back in teardown.
        self._snapshot = boa.env.anchor()
        self._snapshot.__enter__()
        s = self.system
        self.tenants = [str(t.address) for t in s.tenants]
        self.senders = [*self.tenants, str(s.operator), str(s.settler), str(s.owner)]
        self.fee_recipient = str(boa.env.generate_address("fees"))
        self.model = Model()

    def teardown(self) -> None:
        self._snapshot.__exit__(None, None, None)

    @initialize()
    def fund_tenants(self) -> None:
        for tenant in range(len(self.tenants)):
            self.deposit(tenant, tenant, 100 * MICRO)

    def _sender(self, index: int) -> str:
        return self.senders[index % len(self.senders)]

    def _tenant(self, index: int) -> str:
        return self.tenants[index % len(self.tenants)]

    @rule(payer=TENANT, tenant=TENANT, amount=AMOUNTS)
    def deposit(self, payer: int, tenant: int, amount: int) -> None:
        sender, beneficiary = self._tenant(payer), self._tenant(tenant)
        ok = amount > 0
        with boa.env.prank(sender), _expect(ok):
            self.system.vault.deposit(beneficiary, amount)
        if ok:
            m = self.model
            m.balance[beneficiary] = m.balance.get(beneficiary, 0) + amount
            m.deposited += amount

    @rule(
        target=locked_jobs,
        sender=st.one_of(TENANT, ANYONE),
        job=st.sampled_from(JOBS),
        pct=PERCENT,
        ttl=st.integers(1, 900),
    )
    def lock(self, sender: int, job: bytes, pct: int, ttl: int) -> Any:
        who, m = self._sender(sender), self.model
        amount = max(m.available(who), MICRO) * pct // 100
        ok = job not in m.jobs and 0 < amount <= m.available(who)
        expires_at = now() + ttl
        with boa.env.prank(who), _expect(ok):
            self.system.vault.lock(job, amount, expires_at, PROVIDER_ID)
        if ok:
            m.jobs[job] = Job(who, amount, expires_at)
            m.locked[who] = m.locked.get(who, 0) + amount
            return job
        return multiple()

    @rule(sender=_mostly(OPERATOR), job=some_job, pct=PERCENT)
    def consume(self, sender: int, job: bytes, pct: int) -> None:
        who, m = self._sender(sender), self.model
        found = m.jobs.get(job)
        amount = (found.amount if found else MICRO) * pct // 100
        ok = (
            who == self.system.operator
            and found is not None
            and found.status == LOCKED
            and now() < found.expires_at
            and amount <= found.amount
        )
        with boa.env.prank(who), _expect(ok):
            self.system.vault.consume(job, amount)
        if ok:
            assert found is not None
            found.status = CONSUMED
            m.locked[found.tenant] -= found.amount
            m.balance[found.tenant] -= amount
            m.burned += amount

    @rule(
        sender=st.one_of(_mostly(OPERATOR), TENANT),
        job=some_job,
    )
    def refund(self, sender: int, job: bytes) -> None:
        who, m = self._sender(sender), self.model
        found = m.jobs.get(job)
        ok = (
            found is not None
            and found.status == LOCKED
            and (who == self.system.operator or (who == found.tenant and now() >= found.expires_at))
        )
        with boa.env.prank(who), _expect(ok):
            self.system.vault.refund(job)
        if ok:
            assert found is not None
            found.status = REFUNDED
            m.locked[found.tenant] -= found.amount

    @rule(sender=st.one_of(TENANT, ANYONE), pct=PERCENT)
    def request_withdrawal(self, sender: int, pct: int) -> None:
        who, m = self._sender(sender), self.model
        amount = max(m.available(who), MICRO) * pct // 100
        ok = m.pending.get(who, 0) == 0 and 0 < amount <= m.available(who)
        with boa.env.prank(who), _expect(ok):
            self.system.vault.request_withdrawal(amount)
        if ok:
            m.pending[who] = amount
            m.available_at[who] = now() + WITHDRAW_DELAY

    @rule(sender=TENANT)
    def withdraw(self, sender: int) -> None:
        who, m = self._sender(sender), self.model
        amount = m.pending.get(who, 0)
        ok = amount > 0 and now() >= m.available_at[who]
        before = int(self.system.stablecoin.balanceOf(who))
        with boa.env.prank(who), _expect(ok):
            self.system.vault.withdraw()
        if ok:
            m.pending[who] = 0
            m.balance[who] -= amount
            m.withdrawn += amount
            assert self.system.stablecoin.balanceOf(who) == before + amount

    @rule(sender=st.one_of(TENANT, ANYONE))
    def cancel_withdrawal(self, sender: int) -> None:
        who, m = self._sender(sender), self.model
        ok = m.pending.get(who, 0) > 0
        with boa.env.prank(who), _expect(ok):
            self.system.vault.cancel_withdrawal()
        if ok:
            m.pending[who] = 0

    @rule(sender=_mostly(SETTLER), tenant=TENANT, pct=PERCENT, fee_pct=PERCENT)
    def settle(self, sender: int, tenant: int, pct: int, fee_pct: int) -> None:
        who, target, m = self._sender(sender), self._tenant(tenant), self.model
        amount = max(m.available(target) + m.pending.get(target, 0), MICRO) * pct // 100
        fee = amount * fee_pct // 100
        ok = (
            who == self.system.settler
            and 0 < amount <= m.available(target) + m.pending.get(target, 0)
            and fee <= amount
        )
        with boa.env.prank(who), _expect(ok):
            self.system.vault.settle(target, amount, self.system.payout, fee, self.fee_recipient)
        if ok:
            shortfall = max(0, amount - m.available(target))
            m.pending[target] = m.pending.get(target, 0) - shortfall
            m.balance[target] -= amount
            m.burned += amount

    @rule(seconds=st.sampled_from([1, 600, WITHDRAW_DELAY]))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @invariant()
    def tenants_match_the_model(self) -> None:
        vault, credit, m = self.system.vault, self.system.credit, self.model
        for who in self.senders:
            assert credit.balanceOf(who) == m.balance.get(who, 0)
            assert vault.locked(who) == m.locked.get(who, 0)
            assert vault.pending_withdrawal(who) == m.pending.get(who, 0)
            assert vault.available(who) == m.available(who) >= 0

    @invariant()
    def supply_is_deposits_minus_burns_and_withdrawals(self) -> None:
        m = self.model
        supply = self.system.credit.totalSupply()
        assert supply == sum(m.balance.values()) == m.deposited - m.burned - m.withdrawn

    @invariant()
    def vault_is_fully_backed(self) -> None:
        s = self.system
        assert s.stablecoin.balanceOf(s.vault.address) >= s.credit.totalSupply()


def test_vault_matches_its_model(system: System) -> None:
    VaultMachine.system = system
    run_state_machine_as_test(
        VaultMachine, settings=settings(max_examples=25, stateful_step_count=30, deadline=None)
    )
