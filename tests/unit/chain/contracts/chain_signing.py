"""EIP-712 signatures for the test stablecoin: EIP-2612 permits and EIP-3009 authorisations."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

Signature = tuple[int, bytes, bytes]

_AUTHORIZATION_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]


def account(label: str) -> LocalAccount:
    """A deterministic key pair named by ``label``."""
    return Account.from_key(keccak(text=label))


def _domain(token: Any) -> dict[str, Any]:
    _, name, version, chain_id, verifying_contract, _, _ = token.eip712Domain()
    return {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": str(verifying_contract),
    }


def _sign(
    signer: LocalAccount, token: Any, types: dict[str, Any], message: dict[str, Any]
) -> Signature:
    primary = next(iter(types))
    signed = Account.sign_typed_data(
        signer.key,
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **types,
            },
            "primaryType": primary,
            "domain": _domain(token),
            "message": message,
        },
    )
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def sign_permit(
    signer: LocalAccount, token: Any, spender: str, value: int, nonce: int, deadline: int
) -> Signature:
    """Sign an EIP-2612 ``Permit`` from ``signer`` to ``spender``."""
    types = {
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ]
    }
    message = {
        "owner": signer.address,
        "spender": str(spender),
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    return _sign(signer, token, types, message)


def sign_authorization(
    signer: LocalAccount,
    token: Any,
    *,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes,
    receive: bool = False,
) -> Signature:
    """Sign an EIP-3009 ``TransferWithAuthorization`` (or ``ReceiveWithAuthorization``)."""
    primary = "ReceiveWithAuthorization" if receive else "TransferWithAuthorization"
    message = {
        "from": signer.address,
        "to": str(to),
        "value": value,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    return _sign(signer, token, {primary: _AUTHORIZATION_FIELDS}, message)


def sign_cancel(signer: LocalAccount, token: Any, nonce: bytes) -> Signature:
    """Sign an EIP-3009 ``CancelAuthorization`` of ``nonce``."""
    types = {
        "CancelAuthorization": [
            {"name": "authorizer", "type": "address"},
            {"name": "nonce", "type": "bytes32"},
        ]
    }
    return _sign(signer, token, types, {"authorizer": signer.address, "nonce": nonce})
