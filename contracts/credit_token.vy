# pragma version ~=0.4.3
"""
@title apicredits Credit
@custom:contract-name credit_token
@license Apache-2.0
@notice Non-transferable prepaid credits, 1 credit = 1 stablecoin unit
        (6 decimals). Only the vault mints (on deposit) and burns (on
        consume, settle and withdraw). `transfer`, `transferFrom` and
        `approve` exist so that wallets recognise an ERC-20, but always
        revert: credits belong to the tenant that paid for them.
"""


from ethereum.ercs import IERC20
implements: IERC20

from ethereum.ercs import IERC20Detailed
implements: IERC20Detailed

from modules import owned
initializes: owned

exports: (owned.owner, owned.transfer_ownership)


name: public(constant(String[25])) = "apicredits Credit"
symbol: public(constant(String[6])) = "CREDIT"
decimals: public(constant(uint8)) = 6

balanceOf: public(HashMap[address, uint256])
totalSupply: public(uint256)

# @dev The only address allowed to mint and burn; set once by the owner.
vault: public(address)


event VaultSet:
    vault: indexed(address)


@deploy
def __init__():
    """
    @dev The deployer becomes the owner, who later sets the vault once.
    """
    owned.__init__()


@external
def set_vault(vault_: address):
    """
    @dev Sets the vault, the only minter and burner. Callable once.
    @notice Only the owner; `vault_` cannot be the zero address.
    @param vault_ The 20-byte address of the credit vault.
    """
    owned._check_owner()
    assert self.vault == empty(address), "credit_token: vault already set"
    assert vault_ != empty(address), "credit_token: vault is the zero address"
    self.vault = vault_
    log VaultSet(vault=vault_)


@external
def mint(to: address, amount: uint256):
    """
    @dev Creates `amount` credits for `to`.
    @notice Only the vault; `to` cannot be the zero address.
    @param to The 20-byte tenant address.
    @param amount The 32-byte credit amount (6 decimals).
    """
    self._check_vault()
    assert to != empty(address), "credit_token: mint to the zero address"
    self.totalSupply += amount
    # Cannot overflow: a balance never exceeds `totalSupply`, checked just above.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@external
def burn(owner_: address, amount: uint256):
    """
    @dev Destroys `amount` credits of `owner_`.
    @notice Only the vault; `owner_` must hold at least `amount`.
    @param owner_ The 20-byte tenant address.
    @param amount The 32-byte credit amount (6 decimals).
    """
    self._check_vault()
    balance: uint256 = self.balanceOf[owner_]
    assert balance >= amount, "credit_token: burn amount exceeds balance"
    # Cannot underflow: `balance >= amount` is asserted just above, and
    # `totalSupply` is at least any single balance.
    self.balanceOf[owner_] = unsafe_sub(balance, amount)
    self.totalSupply = unsafe_sub(self.totalSupply, amount)
    log IERC20.Transfer(sender=owner_, receiver=empty(address), value=amount)


@external
@view
def allowance(owner_: address, spender: address) -> uint256:
    """
    @dev Always zero: credits cannot be approved.
    @param owner_ The 20-byte owner address.
    @param spender The 20-byte spender address.
    @return uint256 Zero.
    """
    return 0


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Always reverts: credits are non-transferable.
    @param to The 20-byte receiver address.
    @param amount The 32-byte amount.
    @return bool Never returns.
    """
    raise "credits are non-transferable"


@external
def transferFrom(owner_: address, to: address, amount: uint256) -> bool:
    """
    @dev Always reverts: credits are non-transferable.
    @param owner_ The 20-byte owner address.
    @param to The 20-byte receiver address.
    @param amount The 32-byte amount.
    @return bool Never returns.
    """
    raise "credits are non-transferable"


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @dev Always reverts: credits are non-transferable.
    @param spender The 20-byte spender address.
    @param amount The 32-byte amount.
    @return bool Never returns.
    """
    raise "credits are non-transferable"


@internal
@view
def _check_vault():
    """
    @dev Throws if the sender is not the vault.
    """
    assert msg.sender == self.vault, "credit_token: caller is not the vault"
