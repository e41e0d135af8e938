"""credit_token.vy: vault-only mint and burn, set-once vault, non-transferability."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from contracts_support import ZERO_ADDRESS, events, load

NON_TRANSFERABLE = "credits are non-transferable"


@pytest.fixture
def vault() -> str:
    return boa.env.generate_address("vault")


@pytest.fixture
def credit(vault: str) -> Any:
    token = load("credit_token")
    token.set_vault(vault)
    return token


def test_metadata(credit: Any) -> None:
    assert (credit.name(), credit.symbol(), credit.decimals()) == ("apicredits Credit", "CREDIT", 6)
    assert credit.owner() == boa.env.eoa


def test_set_vault_once_by_owner(vault: str) -> None:
    token = load("credit_token")
    token.set_vault(vault)
    assert events(token, "VaultSet")[0].vault == vault
    assert token.vault() == vault
    with boa.reverts("credit_token: vault already set"):
        token.set_vault(vault)


def test_set_vault_rejects_stranger_and_zero(stranger: str) -> None:
    token = load("credit_token")
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        token.set_vault(stranger)
    with boa.reverts("credit_token: vault is the zero address"):
        token.set_vault(ZERO_ADDRESS)


def test_vault_mints_and_burns(credit: Any, vault: str, stranger: str) -> None:
    with boa.env.prank(vault):
        credit.mint(stranger, 10)
        [minted] = events(credit, "Transfer")
        assert (minted.sender, minted.receiver, minted.value) == (ZERO_ADDRESS, stranger, 10)
        credit.burn(stranger, 4)
        [burned] = events(credit, "Transfer")
        assert (burned.sender, burned.receiver, burned.value) == (stranger, ZERO_ADDRESS, 4)
    assert credit.balanceOf(stranger) == 6
    assert credit.totalSupply() == 6


def test_only_vault_mints_and_burns(credit: Any, vault: str, stranger: str) -> None:
    with boa.reverts("credit_token: caller is not the vault"):
        credit.mint(stranger, 10)
    with boa.env.prank(vault):
        credit.mint(stranger, 10)
    with boa.env.prank(stranger), boa.reverts("credit_token: caller is not the vault"):
        credit.burn(stranger, 1)


def test_no_vault_means_nobody_mints(stranger: str) -> None:
    token = load("credit_token")
    with boa.reverts("credit_token: caller is not the vault"):
        token.mint(stranger, 1)


def test_burn_beyond_balance_and_mint_to_zero_revert(
    credit: Any, vault: str, stranger: str
) -> None:
    with boa.env.prank(vault):
        credit.mint(stranger, 3)
        with boa.reverts("credit_token: burn amount exceeds balance"):
            credit.burn(stranger, 4)
        with boa.reverts("credit_token: mint to the zero address"):
            credit.mint(ZERO_ADDRESS, 1)


def test_credits_are_non_transferable(credit: Any, vault: str, stranger: str) -> None:
    other = boa.env.generate_address("other")
    with boa.env.prank(vault):
        credit.mint(stranger, 10)
    with boa.env.prank(stranger):
        with boa.reverts(NON_TRANSFERABLE):
            credit.transfer(other, 1)
        with boa.reverts(NON_TRANSFERABLE):
            credit.approve(other, 1)
    with boa.env.prank(other), boa.reverts(NON_TRANSFERABLE):
        credit.transferFrom(stranger, other, 1)
    # Not even the vault moves credits between tenants.
    with boa.env.prank(vault), boa.reverts(NON_TRANSFERABLE):
        credit.transferFrom(stranger, other, 1)
    assert credit.allowance(stranger, other) == 0
    assert credit.balanceOf(stranger) == 10


def test_transfer_ownership(credit: Any, stranger: str) -> None:
    credit.transfer_ownership(stranger)
    assert credit.owner() == stranger
    with (
        boa.env.prank(boa.env.generate_address("x")),
        boa.reverts("ownable: caller is not the owner"),
    ):
        credit.transfer_ownership(stranger)
