# pragma version ~=0.4.3
"""
@title USDC-like Test Stablecoin
@custom:contract-name test_stablecoin
@license Apache-2.0 (this file); it compiles in snekmate's AGPL-3.0-only
         `erc20`, `ownable`, `ecdsa` and `eip712_domain_separator`
         modules, see `contracts/LICENSES.md`.
@notice A stand-in for USDC on local and test chains: an ERC-20 with
        6 decimals whose EIP-712 domain is name "USD Coin", version "2",
        so that signatures made for USDC's EIP-2612 `permit` and EIP-3009
        `transferWithAuthorization` / `receiveWithAuthorization` /
        `cancelAuthorization` verify here the same way. Only the owner
        mints. Never deploy this on a public network as real money.
"""


from ethereum.ercs import IERC20
implements: IERC20

from ethereum.ercs import IERC20Detailed
implements: IERC20Detailed

from snekmate.auth import ownable
initializes: ownable

from snekmate.tokens import erc20
initializes: erc20[ownable := ownable]

from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator
uses: eip712_domain_separator


exports: (
    erc20.transfer,
    erc20.approve,
    erc20.transferFrom,
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
    ownable.owner,
    ownable.transfer_ownership,
)


# @dev EIP-3009 type hashes, exactly as USDC (FiatTokenV2) defines them.
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: public(constant(bytes32)) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
RECEIVE_WITH_AUTHORIZATION_TYPEHASH: public(constant(bytes32)) = keccak256(
    "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
CANCEL_AUTHORIZATION_TYPEHASH: public(constant(bytes32)) = keccak256(
    "CancelAuthorization(address authorizer,bytes32 nonce)"
)


# @dev Whether an EIP-3009 authorisation nonce of an authoriser
# has been used or cancelled.
_authorization_states: HashMap[address, HashMap[bytes32, bool]]


event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


event AuthorizationCanceled:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


@deploy
def __init__():
    """
    @dev The deployer becomes the owner, the only minter.
    """
    ownable.__init__()
    erc20.__init__("USD Coin", "USDC", 6, "USD Coin", "2")


@external
def mint(to: address, amount: uint256):
    """
    @dev Creates `amount` tokens for `to`.
    @notice Only the owner can mint; `to` cannot be the zero address.
    @param to The 20-byte receiver address.
    @param amount The 32-byte token amount, in micro units (6 decimals).
    """
    ownable._check_owner()
    erc20._mint(to, amount)


@external
@view
def authorizationState(authorizer: address, nonce: bytes32) -> bool:
    """
    @dev Returns whether the EIP-3009 authorisation `nonce` of
         `authorizer` has been used or cancelled.
    @param authorizer The 20-byte authoriser address.
    @param nonce The 32-byte authorisation nonce.
    @return bool True once the nonce is used or cancelled.
    """
    return self._authorization_states[authorizer][nonce]


@external
def transferWithAuthorization(
    from_: address,
    to: address,
    amount: uint256,
    valid_after: uint256,
    valid_before: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    """
    @dev Executes a transfer that `from_` signed (EIP-3009); anyone may
         submit it.
    @notice Valid only strictly after `valid_after` and strictly before
            `valid_before`; each nonce works once.
    @param from_ The 20-byte payer (the signer).
    @param to The 20-byte payee.
    @param amount The 32-byte token amount.
    @param valid_after The 32-byte time after which the authorisation is valid.
    @param valid_before The 32-byte time before which the authorisation is valid.
    @param nonce The 32-byte unique nonce chosen by the payer.
    @param v The secp256k1 1-byte signature parameter `v`.
    @param r The secp256k1 32-byte signature parameter `r`.
    @param s The secp256k1 32-byte signature parameter `s`.
    """
    self._use_authorization(
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from_, to, amount, valid_after, valid_before, nonce, v, r, s
    )
    erc20._transfer(from_, to, amount)


@external
def receiveWithAuthorization(
    from_: address,
    to: address,
    amount: uint256,
    valid_after: uint256,
    valid_before: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    """
    @dev Executes a transfer that `from_` signed (EIP-3009), submitted by
         the payee itself, which prevents front-running of deposits into
         contracts.
    @notice The caller must be `to`. Valid only strictly after `valid_after`
            and strictly before `valid_before`; each nonce works once.
    @param from_ The 20-byte payer (the signer).
    @param to The 20-byte payee, who must be the caller.
    @param amount The 32-byte token amount.
    @param valid_after The 32-byte time after which the authorisation is valid.
    @param valid_before The 32-byte time before which the authorisation is valid.
    @param nonce The 32-byte unique nonce chosen by the payer.
    @param v The secp256k1 1-byte signature parameter `v`.
    @param r The secp256k1 32-byte signature parameter `r`.
    @param s The secp256k1 32-byte signature parameter `s`.
    """
    assert to == msg.sender, "test_stablecoin: caller must be the payee"
    self._use_authorization(
        RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from_, to, amount, valid_after, valid_before, nonce, v, r, s
    )
    erc20._transfer(from_, to, amount)


@external
def cancelAuthorization(authorizer: address, nonce: bytes32, v: uint8, r: bytes32, s: bytes32):
    """
    @dev Cancels an unused EIP-3009 authorisation, given the
         authoriser's signature over (authorizer, nonce).
    @param authorizer The 20-byte authoriser address.
    @param nonce The 32-byte nonce of the authorisation to cancel.
    @param v The secp256k1 1-byte signature parameter `v`.
    @param r The secp256k1 32-byte signature parameter `r`.
    @param s The secp256k1 32-byte signature parameter `s`.
    """
    assert not self._authorization_states[authorizer][nonce], "test_stablecoin: authorization is used or canceled"
    struct_hash: bytes32 = keccak256(abi_encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce))
    self._check_signer(struct_hash, authorizer, v, r, s)
    self._authorization_states[authorizer][nonce] = True
    log AuthorizationCanceled(authorizer=authorizer, nonce=nonce)


@internal
def _use_authorization(
    type_hash: bytes32,
    from_: address,
    to: address,
    amount: uint256,
    valid_after: uint256,
    valid_before: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    """
    @dev Checks the validity window, the nonce and the signature of an
         EIP-3009 authorisation, then marks the nonce used.
    """
    assert block.timestamp > valid_after, "test_stablecoin: authorization is not yet valid"
    assert block.timestamp < valid_before, "test_stablecoin: authorization is expired"
    assert not self._authorization_states[from_][nonce], "test_stablecoin: authorization is used or canceled"
    struct_hash: bytes32 = keccak256(abi_encode(type_hash, from_, to, amount, valid_after, valid_before, nonce))
    self._check_signer(struct_hash, from_, v, r, s)
    self._authorization_states[from_][nonce] = True
    log AuthorizationUsed(authorizer=from_, nonce=nonce)


@internal
@view
def _check_signer(struct_hash: bytes32, expected: address, v: uint8, r: bytes32, s: bytes32):
    """
    @dev Reverts unless `expected` signed the EIP-712 message `struct_hash`
         under this token's domain.
    """
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(struct_hash)
    signer: address = ecdsa._recover_vrs(digest, convert(v, uint256), convert(r, uint256), convert(s, uint256))
    assert signer == expected, "test_stablecoin: invalid signature"
