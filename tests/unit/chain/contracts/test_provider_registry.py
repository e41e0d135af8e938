"""provider_registry.vy: registration, admin and governance rights, history events."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from contracts_support import ZERO_ADDRESS, events, load, now

PID = b"acme".ljust(32, b"\0")
ACTIVE, SUSPENDED, RETIRED = 1, 2, 3


@pytest.fixture(scope="module")
def registry() -> Any:
    return load("provider_registry")


@pytest.fixture
def admin() -> str:
    return boa.env.generate_address("admin")


@pytest.fixture
def signer() -> str:
    return boa.env.generate_address("signer")


@pytest.fixture
def payout() -> str:
    return boa.env.generate_address("payout")


@pytest.fixture
def registered(registry: Any, admin: str, signer: str, payout: str) -> Any:
    with boa.env.prank(admin):
        registry.register(PID, signer, payout)
    return registry


def test_register_makes_caller_admin(registry: Any, admin: str, signer: str, payout: str) -> None:
    with boa.env.prank(admin):
        registry.register(PID, signer, payout)
    [registered] = events(registry, "ProviderRegistered")
    assert (registered.provider_id, registered.admin, registered.signer) == (PID, admin, signer)
    assert registered.payout == payout
    assert events(registry, "SignerChanged")[0].signer == signer
    assert events(registry, "StatusChanged")[0].status == ACTIVE
    assert registry.providers(PID) == (admin, signer, payout, ACTIVE, now())
    assert registry.is_active(PID)
    assert registry.payout_of(PID) == payout
    assert registry.signer_of(PID) == signer


def test_register_rejects_duplicates_and_zeroes(
    registered: Any, admin: str, signer: str, payout: str
) -> None:
    with boa.reverts("provider_registry: provider already registered"):
        registered.register(PID, signer, payout)
    other = b"other".ljust(32, b"\0")
    with boa.reverts("provider_registry: provider id is zero"):
        registered.register(b"\0" * 32, signer, payout)
    with boa.reverts("provider_registry: signer is the zero address"):
        registered.register(other, ZERO_ADDRESS, payout)
    with boa.reverts("provider_registry: payout is the zero address"):
        registered.register(other, signer, ZERO_ADDRESS)


def test_unknown_provider_reads_empty(registry: Any) -> None:
    assert not registry.is_active(PID)
    assert registry.payout_of(PID) == ZERO_ADDRESS
    assert registry.signer_of(PID) == ZERO_ADDRESS
    assert registry.providers(PID)[3] == 0


def test_owner_registers_on_behalf(registry: Any, admin: str, signer: str, payout: str) -> None:
    registry.register_for(PID, admin, signer, payout)
    assert registry.providers(PID)[0] == admin
    with boa.reverts("provider_registry: admin is the zero address"):
        registry.register_for(b"x".ljust(32, b"\0"), ZERO_ADDRESS, signer, payout)


def test_stranger_cannot_register_on_behalf(
    registry: Any, admin: str, signer: str, payout: str, stranger: str
) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        registry.register_for(PID, admin, signer, payout)


@pytest.mark.parametrize("caller", ["admin", "owner"])
def test_admin_or_owner_rotates_signer(registered: Any, admin: str, caller: str) -> None:
    new_signer = boa.env.generate_address("new-signer")
    boa.env.time_travel(seconds=100)
    with boa.env.prank(admin if caller == "admin" else boa.env.eoa):
        registered.set_signer(PID, new_signer)
    [changed] = events(registered, "SignerChanged")
    assert (changed.provider_id, changed.signer, changed.since) == (PID, new_signer, now())
    assert registered.signer_of(PID) == new_signer
    assert registered.providers(PID)[4] == now()


def test_set_signer_rejects_stranger_zero_and_unknown(registered: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("provider_registry: caller is not the admin"):
        registered.set_signer(PID, stranger)
    with boa.reverts("provider_registry: signer is the zero address"):
        registered.set_signer(PID, ZERO_ADDRESS)
    with boa.reverts("provider_registry: unknown provider"):
        registered.set_signer(b"nope".ljust(32, b"\0"), stranger)


@pytest.mark.parametrize("caller", ["admin", "owner"])
def test_admin_or_owner_changes_payout(registered: Any, admin: str, caller: str) -> None:
    new_payout = boa.env.generate_address("new-payout")
    with boa.env.prank(admin if caller == "admin" else boa.env.eoa):
        registered.set_payout(PID, new_payout)
    [changed] = events(registered, "PayoutChanged")
    assert (changed.provider_id, changed.payout) == (PID, new_payout)
    assert registered.payout_of(PID) == new_payout


def test_set_payout_rejects_stranger_and_zero(registered: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("provider_registry: caller is not the admin"):
        registered.set_payout(PID, stranger)
    with boa.reverts("provider_registry: payout is the zero address"):
        registered.set_payout(PID, ZERO_ADDRESS)


def test_admin_hands_over(registered: Any, admin: str, stranger: str) -> None:
    with boa.env.prank(admin):
        registered.set_admin(PID, stranger)
    assert events(registered, "AdminChanged")[0].admin == stranger
    assert registered.providers(PID)[0] == stranger
    with boa.env.prank(admin), boa.reverts("provider_registry: caller is not the admin"):
        registered.set_payout(PID, admin)


def test_set_admin_rejects_stranger_and_zero(registered: Any, admin: str, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("provider_registry: caller is not the admin"):
        registered.set_admin(PID, stranger)
    with boa.env.prank(admin), boa.reverts("provider_registry: admin is the zero address"):
        registered.set_admin(PID, ZERO_ADDRESS)


@pytest.mark.parametrize("status", [SUSPENDED, RETIRED, ACTIVE])
def test_owner_sets_any_status(registered: Any, status: int) -> None:
    registered.set_status(PID, status)
    [changed] = events(registered, "StatusChanged")
    assert (changed.provider_id, changed.status, changed.since) == (PID, status, now())
    assert registered.is_active(PID) == (status == ACTIVE)


def test_set_status_rejects_invalid_and_unknown(registered: Any) -> None:
    for status in (0, 4):
        with boa.reverts("provider_registry: invalid status"):
            registered.set_status(PID, status)
    with boa.reverts("provider_registry: unknown provider"):
        registered.set_status(b"nope".ljust(32, b"\0"), SUSPENDED)


def test_admin_can_retire_itself(registered: Any, admin: str) -> None:
    with boa.env.prank(admin):
        registered.set_status(PID, RETIRED)
    assert registered.providers(PID)[3] == RETIRED
    assert not registered.is_active(PID)


def test_admin_cannot_suspend_or_reactivate(registered: Any, admin: str) -> None:
    registered.set_status(PID, SUSPENDED)
    with boa.env.prank(admin), boa.reverts("provider_registry: admin may only retire"):
        registered.set_status(PID, ACTIVE)


def test_stranger_cannot_set_status(registered: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("provider_registry: caller is not the owner"):
        registered.set_status(PID, RETIRED)


def test_transfer_ownership(registry: Any, stranger: str) -> None:
    registry.transfer_ownership(stranger)
    assert registry.owner() == stranger
    with boa.reverts("ownable: caller is not the owner"):
        registry.transfer_ownership(stranger)
