# pragma version ~=0.4.3
"""
@title Re-entering Token (test only)
@notice An ERC-20-shaped stablecoin that, when armed, calls back into a
        target (the vault) from inside `transfer` and `transferFrom`, and
        records whether that re-entry succeeded. The token can also act as
        a tenant itself through `execute`.
"""


balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)

target: public(address)
payload: public(Bytes[1024])
reentry_attempts: public(uint256)
reentry_succeeded: public(bool)
_attacking: bool


@external
def mint(to: address, amount: uint256):
    """
    @dev Creates `amount` tokens for `to`; anyone may call (test only).
    """
    self.balanceOf[to] += amount
    self.totalSupply += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @dev Sets the caller's allowance for `spender`.
    """
    self.allowance[msg.sender][spender] = amount
    return True


@external
def arm(target: address, payload: Bytes[1024]):
    """
    @dev Makes the next transfers call `target` with `payload`.
    """
    self.target = target
    self.payload = payload


@external
def execute(target: address, data: Bytes[1024]):
    """
    @dev Calls `target` with `data` as this token, reverting on failure.
    """
    raw_call(target, data)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Moves the caller's tokens after attempting the re-entry.
    """
    self._reenter()
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Moves `owner`'s tokens with allowance after attempting the re-entry.
    """
    self._reenter()
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True


@internal
def _reenter():
    """
    @dev Calls the target once (not recursively) and records the outcome.
    """
    if self.target == empty(address) or self._attacking:
        return
    self._attacking = True
    self.reentry_attempts += 1
    success: bool = raw_call(self.target, self.payload, revert_on_failure=False)
    if success:
        self.reentry_succeeded = True
    self._attacking = False
