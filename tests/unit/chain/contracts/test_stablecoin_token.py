"""test_stablecoin.vy: ERC-20 basics, owner-only mint, EIP-2612 permit and EIP-3009."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from chain_signing import account, sign_authorization, sign_cancel, sign_permit
from contracts_support import MICRO, events, now
from eth_utils import keccak

# The constants deployed in USDC's FiatTokenV2 (EIP-3009).
USDC_TRANSFER_TYPEHASH = "7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
USDC_RECEIVE_TYPEHASH = "d099cc98ef71107a616c4f0f941f04c322d8e254fe26b3c6668db87aae413de8"
USDC_CANCEL_TYPEHASH = "158b0a9edf7a828aad02f63cd515c68ef2f50ba807396f6d12842833a1597429"

PAYER = account("payer")
OTHER = account("someone-else")
NONCE = keccak(text="nonce-1")


@pytest.fixture
def token(system: Any) -> Any:
    system.stablecoin.mint(PAYER.address, 100 * MICRO)
    return system.stablecoin


def test_metadata_matches_usdc(token: Any) -> None:
    assert (token.name(), token.symbol(), token.decimals()) == ("USD Coin", "USDC", 6)
    _, name, version, chain_id, contract, _, _ = token.eip712Domain()
    assert (name, version, contract) == ("USD Coin", "2", token.address)
    domain_type = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        domain_type
        + keccak(text="USD Coin")
        + keccak(text="2")
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(token.address[2:]).rjust(32, b"\0")
    )
    assert token.DOMAIN_SEPARATOR() == expected


def test_typehashes_are_eip3009(token: Any) -> None:
    assert token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH().hex() == USDC_TRANSFER_TYPEHASH
    assert token.RECEIVE_WITH_AUTHORIZATION_TYPEHASH().hex() == USDC_RECEIVE_TYPEHASH
    assert token.CANCEL_AUTHORIZATION_TYPEHASH().hex() == USDC_CANCEL_TYPEHASH


def test_owner_mints(token: Any, stranger: str) -> None:
    token.mint(stranger, 5)
    assert events(token, "Transfer")[0].value == 5
    assert token.balanceOf(stranger) == 5


def test_stranger_cannot_mint(token: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        token.mint(stranger, 5)


def test_transfer_ownership(token: Any, stranger: str) -> None:
    token.transfer_ownership(stranger)
    assert token.owner() == stranger
    with boa.reverts("ownable: caller is not the owner"):
        token.mint(stranger, 1)


def test_stranger_cannot_transfer_ownership(token: Any, stranger: str) -> None:
    with boa.env.prank(stranger), boa.reverts("ownable: caller is not the owner"):
        token.transfer_ownership(stranger)


def test_transfer_approve_transfer_from(token: Any, stranger: str) -> None:
    with boa.env.prank(PAYER.address):
        assert token.transfer(stranger, 3 * MICRO)
        assert token.approve(stranger, 2 * MICRO)
    with boa.env.prank(stranger):
        assert token.transferFrom(PAYER.address, stranger, 2 * MICRO)
    assert token.balanceOf(stranger) == 5 * MICRO
    assert token.allowance(PAYER.address, stranger) == 0


def test_transfer_beyond_balance_and_allowance_reverts(token: Any, stranger: str) -> None:
    with boa.env.prank(PAYER.address), boa.reverts("erc20: transfer amount exceeds balance"):
        token.transfer(stranger, 101 * MICRO)
    with boa.env.prank(stranger), boa.reverts("erc20: insufficient allowance"):
        token.transferFrom(PAYER.address, stranger, 1)
    with boa.env.prank(PAYER.address), boa.reverts("erc20: approve to the zero address"):
        token.approve("0x" + "00" * 20, 1)


# EIP-2612 permit


def test_permit_sets_allowance_once(token: Any, stranger: str) -> None:
    deadline = now() + 3600
    v, r, s = sign_permit(PAYER, token, stranger, 7, token.nonces(PAYER.address), deadline)
    token.permit(PAYER.address, stranger, 7, deadline, v, r, s)
    assert token.allowance(PAYER.address, stranger) == 7
    assert token.nonces(PAYER.address) == 1
    with boa.reverts("erc20: invalid signature"):  # replay: the nonce moved on
        token.permit(PAYER.address, stranger, 7, deadline, v, r, s)


def test_expired_permit_reverts(token: Any, stranger: str) -> None:
    deadline = now() - 1
    v, r, s = sign_permit(PAYER, token, stranger, 7, 0, deadline)
    with boa.reverts("erc20: expired deadline"):
        token.permit(PAYER.address, stranger, 7, deadline, v, r, s)


def test_permit_by_wrong_signer_reverts(token: Any, stranger: str) -> None:
    deadline = now() + 3600
    v, r, s = sign_permit(OTHER, token, stranger, 7, 0, deadline)
    with boa.reverts("erc20: invalid signature"):
        token.permit(PAYER.address, stranger, 7, deadline, v, r, s)


# EIP-3009


def _authorize(
    token: Any,
    to: str,
    *,
    signer: Any = PAYER,
    value: int = 10 * MICRO,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: bytes = NONCE,
    receive: bool = False,
) -> tuple[Any, ...]:
    valid_before = now() + 3600 if valid_before is None else valid_before
    v, r, s = sign_authorization(
        signer,
        token,
        to=to,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=nonce,
        receive=receive,
    )
    return (PAYER.address, to, value, valid_after, valid_before, nonce, v, r, s)


def test_transfer_with_authorization(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger)
    assert not token.authorizationState(PAYER.address, NONCE)
    token.transferWithAuthorization(*args)  # submitted by anyone
    [used] = events(token, "AuthorizationUsed")
    assert (used.authorizer, used.nonce) == (PAYER.address, NONCE)
    assert token.balanceOf(stranger) == 10 * MICRO
    assert token.authorizationState(PAYER.address, NONCE)


def test_authorization_replay_reverts(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger)
    token.transferWithAuthorization(*args)
    with boa.reverts("test_stablecoin: authorization is used or canceled"):
        token.transferWithAuthorization(*args)


def test_expired_authorization_reverts(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger, valid_before=now())
    with boa.reverts("test_stablecoin: authorization is expired"):
        token.transferWithAuthorization(*args)


def test_not_yet_valid_authorization_reverts(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger, valid_after=now())
    with boa.reverts("test_stablecoin: authorization is not yet valid"):
        token.transferWithAuthorization(*args)
    boa.env.time_travel(seconds=1)
    token.transferWithAuthorization(*args)
    assert token.balanceOf(stranger) == 10 * MICRO


def test_authorization_by_wrong_signer_reverts(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger, signer=OTHER)
    with boa.reverts("test_stablecoin: invalid signature"):
        token.transferWithAuthorization(*args)


def test_altered_authorization_reverts(token: Any, stranger: str) -> None:
    args = list(_authorize(token, stranger))
    args[2] += 1  # value
    with boa.reverts("test_stablecoin: invalid signature"):
        token.transferWithAuthorization(*args)


def test_transfer_signature_is_not_a_receive_signature(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger)
    with boa.env.prank(stranger), boa.reverts("test_stablecoin: invalid signature"):
        token.receiveWithAuthorization(*args)


def test_receive_with_authorization_by_payee(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger, receive=True)
    with boa.env.prank(stranger):
        token.receiveWithAuthorization(*args)
    assert token.balanceOf(stranger) == 10 * MICRO
    assert token.authorizationState(PAYER.address, NONCE)


def test_receive_with_authorization_by_other_caller_reverts(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger, receive=True)
    with boa.reverts("test_stablecoin: caller must be the payee"):
        token.receiveWithAuthorization(*args)


def test_cancel_authorization(token: Any, stranger: str) -> None:
    args = _authorize(token, stranger)
    v, r, s = sign_cancel(PAYER, token, NONCE)
    token.cancelAuthorization(PAYER.address, NONCE, v, r, s)
    [canceled] = events(token, "AuthorizationCanceled")
    assert (canceled.authorizer, canceled.nonce) == (PAYER.address, NONCE)
    assert token.authorizationState(PAYER.address, NONCE)
    with boa.reverts("test_stablecoin: authorization is used or canceled"):
        token.transferWithAuthorization(*args)
    with boa.reverts("test_stablecoin: authorization is used or canceled"):
        token.cancelAuthorization(PAYER.address, NONCE, v, r, s)


def test_cancel_by_wrong_signer_reverts(token: Any) -> None:
    v, r, s = sign_cancel(OTHER, token, NONCE)
    with boa.reverts("test_stablecoin: invalid signature"):
        token.cancelAuthorization(PAYER.address, NONCE, v, r, s)
    assert not token.authorizationState(PAYER.address, NONCE)


def test_cancel_of_used_authorization_reverts(token: Any, stranger: str) -> None:
    token.transferWithAuthorization(*_authorize(token, stranger))
    v, r, s = sign_cancel(PAYER, token, NONCE)
    with boa.reverts("test_stablecoin: authorization is used or canceled"):
        token.cancelAuthorization(PAYER.address, NONCE, v, r, s)
