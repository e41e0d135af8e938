# pragma version ~=0.4.3
"""
@title Credit Vault
@custom:contract-name credit_vault
@license Apache-2.0
@notice Holds the stablecoin behind every credit. A deposit pulls
        stablecoin from the payer and mints as many credits (1:1) to a
        tenant. Credits leave in three ways, each burning credits and
        paying out the same amount of stablecoin:
        - on-chain job locks (trust-minimised mode): the tenant locks
          credits for a job with a provider; the operator (the gateway)
          consumes part or all of the lock, paying the provider, or
          refunds it; after the lock expires the tenant may refund it
          itself. Every lock ends consumed or refunded exactly once;
        - settlement: the settler burns credits the off-chain ledger has
          already consumed and pays the provider minus a fee;
        - withdrawal: the tenant reserves credits, waits `withdraw_delay`
          seconds (time for in-flight settlement), then takes the
          stablecoin back.
        For every tenant, balance >= locked + pending withdrawal; what is
        left is `available`. The stablecoin held is always at least the
        credit supply.
"""


from modules import owned
initializes: owned

exports: (owned.owner, owned.transfer_ownership)


interface IStablecoin:
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def transferFrom(owner: address, to: address, amount: uint256) -> bool: nonpayable
    def permit(owner: address, spender: address, amount: uint256, deadline: uint256, v: uint8, r: bytes32, s: bytes32): nonpayable
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
    ): nonpayable


interface ICreditToken:
    def mint(to: address, amount: uint256): nonpayable
    def burn(owner_: address, amount: uint256): nonpayable
    def balanceOf(owner_: address) -> uint256: view


interface IProviderRegistry:
    def is_active(provider_id: bytes32) -> bool: view
    def payout_of(provider_id: bytes32) -> address: view


JOB_UNUSED: public(constant(uint8)) = 0
JOB_LOCKED: public(constant(uint8)) = 1
JOB_CONSUMED: public(constant(uint8)) = 2
JOB_REFUNDED: public(constant(uint8)) = 3


struct Job:
    tenant: address
    provider_id: bytes32
    amount: uint256
    expires_at: uint256
    status: uint8


stablecoin: public(immutable(IStablecoin))
credit: public(immutable(ICreditToken))
registry: public(immutable(IProviderRegistry))
withdraw_delay: public(immutable(uint256))

is_operator: public(HashMap[address, bool])
settler: public(address)

jobs: public(HashMap[bytes32, Job])
locked: public(HashMap[address, uint256])
pending_withdrawal: public(HashMap[address, uint256])
withdrawal_available_at: public(HashMap[address, uint256])


event Deposit:
    tenant: indexed(address)
    payer: indexed(address)
    amount: uint256


event Locked:
    job_id: indexed(bytes32)
    tenant: indexed(address)
    provider_id: bytes32
    amount: uint256
    expires_at: uint256


event Consumed:
    job_id: indexed(bytes32)
    tenant: indexed(address)
    amount: uint256
    refunded: uint256


event Refunded:
    job_id: indexed(bytes32)
    tenant: indexed(address)
    amount: uint256


event WithdrawalRequested:
    tenant: indexed(address)
    amount: uint256
    available_at: uint256


event Withdraw:
    tenant: indexed(address)
    amount: uint256


event WithdrawalCanceled:
    tenant: indexed(address)
    amount: uint256


event WithdrawalReduced:
    tenant: indexed(address)
    amount: uint256
    remaining: uint256


event Settled:
    tenant: indexed(address)
    payout: indexed(address)
    amount: uint256
    fee: uint256


event OperatorChanged:
    operator: indexed(address)
    enabled: bool


event SettlerChanged:
    previous_settler: indexed(address)
    new_settler: indexed(address)


@deploy
def __init__(stablecoin_: address, credit_: address, withdraw_delay_: uint256, registry_: address):
    """
    @dev The deployer becomes the owner. The credit token's owner must
         then call `set_vault` with this contract's address.
    @param stablecoin_ The 20-byte stablecoin (USDC-like) address.
    @param credit_ The 20-byte credit token address.
    @param withdraw_delay_ The 32-byte delay, in seconds, between
           requesting a withdrawal and executing it.
    @param registry_ The 20-byte provider registry address.
    """
    assert stablecoin_ != empty(address), "credit_vault: stablecoin is the zero address"
    assert credit_ != empty(address), "credit_vault: credit is the zero address"
    assert registry_ != empty(address), "credit_vault: registry is the zero address"
    owned.__init__()
    stablecoin = IStablecoin(stablecoin_)
    credit = ICreditToken(credit_)
    withdraw_delay = withdraw_delay_
    registry = IProviderRegistry(registry_)


@external
@nonreentrant
def deposit(tenant: address, amount: uint256):
    """
    @dev Pulls `amount` stablecoin from the caller (who must have approved
         the vault) and mints `amount` credits to `tenant`.
    @param tenant The 20-byte tenant address credited.
    @param amount The 32-byte amount, in micro units.
    """
    self._check_deposit(tenant, amount)
    assert extcall stablecoin.transferFrom(msg.sender, self, amount, default_return_value=True), "credit_vault: transfer failed"
    self._credit(tenant, msg.sender, amount)


@external
@nonreentrant
def deposit_with_permit(tenant: address, amount: uint256, deadline: uint256, v: uint8, r: bytes32, s: bytes32):
    """
    @dev Like `deposit`, approving the vault in the same transaction with
         the caller's EIP-2612 permit signature.
    @param tenant The 20-byte tenant address credited.
    @param amount The 32-byte amount, in micro units.
    @param deadline The 32-byte permit deadline.
    @param v The secp256k1 1-byte signature parameter `v`.
    @param r The secp256k1 32-byte signature parameter `r`.
    @param s The secp256k1 32-byte signature parameter `s`.
    """
    self._check_deposit(tenant, amount)
    extcall stablecoin.permit(msg.sender, self, amount, deadline, v, r, s)
    assert extcall stablecoin.transferFrom(msg.sender, self, amount, default_return_value=True), "credit_vault: transfer failed"
    self._credit(tenant, msg.sender, amount)


@external
@nonreentrant
def deposit_with_authorization(
    tenant: address,
    payer: address,
    amount: uint256,
    valid_after: uint256,
    valid_before: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    """
    @dev Deposits with the payer's EIP-3009 `receiveWithAuthorization`
         signature (payee: this vault), so the payer needs no gas.
    @notice Unless the caller is the payer, credits may only go to the
            payer itself: the signature does not name a tenant, so a
            relayer must not be able to redirect the deposit.
    @param tenant The 20-byte tenant address credited.
    @param payer The 20-byte address that signed the authorisation.
    @param amount The 32-byte amount, in micro units.
    @param valid_after The 32-byte time after which the authorisation is valid.
    @param valid_before The 32-byte time before which the authorisation is valid.
    @param nonce The 32-byte authorisation nonce.
    @param v The secp256k1 1-byte signature parameter `v`.
    @param r The secp256k1 32-byte signature parameter `r`.
    @param s The secp256k1 32-byte signature parameter `s`.
    """
    self._check_deposit(tenant, amount)
    assert msg.sender == payer or tenant == payer, "credit_vault: relayed deposit must credit the payer"
    extcall stablecoin.receiveWithAuthorization(payer, self, amount, valid_after, valid_before, nonce, v, r, s)
    self._credit(tenant, payer, amount)


@external
@view
def available(tenant: address) -> uint256:
    """
    @dev Returns the credits the tenant can lock, withdraw or have
         settled: balance - locked - pending withdrawal.
    @param tenant The 20-byte tenant address.
    @return uint256 The 32-byte available amount.
    """
    return self._available(tenant)


@external
@nonreentrant
def lock(job_id: bytes32, amount: uint256, expires_at: uint256, provider_id: bytes32):
    """
    @dev Locks `amount` of the caller's credits for a job with an active
         provider until `expires_at`.
    @notice The caller is the tenant. `job_id` must be non-zero and never
            used before; `amount` non-zero and at most `available`;
            `expires_at` in the future.
    @param job_id The 32-byte job identifier, chosen by the client.
    @param amount The 32-byte amount to lock.
    @param expires_at The 32-byte time from which the tenant may reclaim
           the lock and the operator can no longer consume it.
    @param provider_id The 32-byte identifier of the provider to be paid.
    """
    assert job_id != empty(bytes32), "credit_vault: job id is zero"
    assert self.jobs[job_id].status == JOB_UNUSED, "credit_vault: job id already used"
    assert amount != 0, "credit_vault: amount is zero"
    assert expires_at > block.timestamp, "credit_vault: expiry is not in the future"
    assert staticcall registry.is_active(provider_id), "credit_vault: provider is not active"
    assert amount <= self._available(msg.sender), "credit_vault: insufficient available credits"
    self.jobs[job_id] = Job(
        tenant=msg.sender, provider_id=provider_id, amount=amount, expires_at=expires_at, status=JOB_LOCKED
    )
    self.locked[msg.sender] += amount
    log Locked(job_id=job_id, tenant=msg.sender, provider_id=provider_id, amount=amount, expires_at=expires_at)


@external
@nonreentrant
def consume(job_id: bytes32, amount: uint256):
    """
    @dev Closes a lock: burns `amount` of the tenant's credits, pays the
         same amount of stablecoin to the provider's payout address and
         unlocks the rest.
    @notice Only an operator, before the lock expires, for an active
            provider; `amount` at most the locked amount (zero consumes
            nothing and unlocks everything).
    @param job_id The 32-byte job identifier.
    @param amount The 32-byte amount consumed.
    """
    self._check_operator()
    job: Job = self.jobs[job_id]
    assert job.status == JOB_LOCKED, "credit_vault: job is not locked"
    assert block.timestamp < job.expires_at, "credit_vault: lock expired"
    assert amount <= job.amount, "credit_vault: amount exceeds lock"
    assert staticcall registry.is_active(job.provider_id), "credit_vault: provider is not active"
    payout: address = staticcall registry.payout_of(job.provider_id)
    assert payout != empty(address), "credit_vault: provider has no payout address"

    self.jobs[job_id].status = JOB_CONSUMED
    # Cannot underflow: `locked[tenant]` includes this open lock's amount.
    self.locked[job.tenant] = unsafe_sub(self.locked[job.tenant], job.amount)
    # Cannot underflow: `amount <= job.amount` is asserted above.
    refunded: uint256 = unsafe_sub(job.amount, amount)
    log Consumed(job_id=job_id, tenant=job.tenant, amount=amount, refunded=refunded)

    if amount != 0:
        extcall credit.burn(job.tenant, amount)
        self._pay(payout, amount)


@external
@nonreentrant
def refund(job_id: bytes32):
    """
    @dev Closes a lock without consuming anything: all of it is unlocked.
    @notice An operator may refund any open lock; the tenant only from
            `expires_at` on.
    @param job_id The 32-byte job identifier.
    """
    job: Job = self.jobs[job_id]
    assert job.status == JOB_LOCKED, "credit_vault: job is not locked"
    if not self.is_operator[msg.sender]:
        assert msg.sender == job.tenant, "credit_vault: caller is not the operator or tenant"
        assert block.timestamp >= job.expires_at, "credit_vault: lock not expired"
    self.jobs[job_id].status = JOB_REFUNDED
    # Cannot underflow: `locked[tenant]` includes this open lock's amount.
    self.locked[job.tenant] = unsafe_sub(self.locked[job.tenant], job.amount)
    log Refunded(job_id=job_id, tenant=job.tenant, amount=job.amount)


@external
@nonreentrant
def request_withdrawal(amount: uint256):
    """
    @dev Reserves `amount` of the caller's available credits for
         withdrawal after `withdraw_delay` seconds.
    @notice One request at a time: cancel it to change the amount.
    @param amount The 32-byte amount, non-zero and at most `available`.
    """
    assert amount != 0, "credit_vault: amount is zero"
    assert self.pending_withdrawal[msg.sender] == 0, "credit_vault: withdrawal already pending"
    assert amount <= self._available(msg.sender), "credit_vault: insufficient available credits"
    available_at: uint256 = block.timestamp + withdraw_delay
    self.pending_withdrawal[msg.sender] = amount
    self.withdrawal_available_at[msg.sender] = available_at
    log WithdrawalRequested(tenant=msg.sender, amount=amount, available_at=available_at)


@external
@nonreentrant
def withdraw():
    """
    @dev Executes the caller's pending withdrawal once its delay has
         passed: burns the reserved credits and sends the caller as much
         stablecoin.
    """
    amount: uint256 = self.pending_withdrawal[msg.sender]
    assert amount != 0, "credit_vault: no pending withdrawal"
    assert block.timestamp >= self.withdrawal_available_at[msg.sender], "credit_vault: withdrawal delay not passed"
    self.pending_withdrawal[msg.sender] = 0
    self.withdrawal_available_at[msg.sender] = 0
    log Withdraw(tenant=msg.sender, amount=amount)
    extcall credit.burn(msg.sender, amount)
    self._pay(msg.sender, amount)


@external
@nonreentrant
def cancel_withdrawal():
    """
    @dev Cancels the caller's pending withdrawal; its credits become
         available again.
    """
    amount: uint256 = self.pending_withdrawal[msg.sender]
    assert amount != 0, "credit_vault: no pending withdrawal"
    self.pending_withdrawal[msg.sender] = 0
    self.withdrawal_available_at[msg.sender] = 0
    log WithdrawalCanceled(tenant=msg.sender, amount=amount)


@external
@nonreentrant
def settle(tenant: address, amount: uint256, payout: address, fee: uint256, fee_recipient: address):
    """
    @dev Burns `amount` credits the off-chain ledger has consumed for
         `tenant` and pays `amount - fee` stablecoin to `payout` and `fee`
         to `fee_recipient`.
    @notice Only the settler. Credits locked on chain are never settled.
            Available credits are settled first; any remainder comes out
            of the tenant's pending withdrawal, which is what the
            withdrawal delay is for: usage consumed off chain before the
            request is still paid for.
    @param tenant The 20-byte tenant address.
    @param amount The 32-byte amount, non-zero and at most
           `available` + `pending_withdrawal`.
    @param payout The 20-byte address paid `amount - fee`, not zero.
    @param fee The 32-byte fee, at most `amount`.
    @param fee_recipient The 20-byte fee recipient, not zero when `fee` is.
    """
    assert msg.sender == self.settler, "credit_vault: caller is not the settler"
    assert amount != 0, "credit_vault: amount is zero"
    assert fee <= amount, "credit_vault: fee exceeds amount"
    assert payout != empty(address), "credit_vault: payout is the zero address"
    assert fee == 0 or fee_recipient != empty(address), "credit_vault: fee recipient is the zero address"
    free: uint256 = self._available(tenant)
    if amount > free:
        pending: uint256 = self.pending_withdrawal[tenant]
        # Cannot underflow: `amount > free` in this branch.
        shortfall: uint256 = unsafe_sub(amount, free)
        assert shortfall <= pending, "credit_vault: insufficient available credits"
        # Cannot underflow: `shortfall <= pending` is asserted just above.
        remaining: uint256 = unsafe_sub(pending, shortfall)
        self.pending_withdrawal[tenant] = remaining
        if remaining == 0:
            self.withdrawal_available_at[tenant] = 0
        log WithdrawalReduced(tenant=tenant, amount=shortfall, remaining=remaining)
    log Settled(tenant=tenant, payout=payout, amount=amount, fee=fee)
    extcall credit.burn(tenant, amount)
    # Cannot underflow: `fee <= amount` is asserted above.
    net: uint256 = unsafe_sub(amount, fee)
    if net != 0:
        self._pay(payout, net)
    if fee != 0:
        self._pay(fee_recipient, fee)


@external
def set_operator(operator: address, enabled: bool):
    """
    @dev Grants or revokes the operator role (consume and refund locks).
    @notice Only the owner; `operator` cannot be the zero address.
    @param operator The 20-byte operator address.
    @param enabled The Boolean new status.
    """
    owned._check_owner()
    assert operator != empty(address), "credit_vault: operator is the zero address"
    self.is_operator[operator] = enabled
    log OperatorChanged(operator=operator, enabled=enabled)


@external
def set_settler(settler: address):
    """
    @dev Sets the settler (the settlement treasury); the zero address
         disables settlement.
    @notice Only the owner.
    @param settler The 20-byte settler address.
    """
    owned._check_owner()
    previous: address = self.settler
    self.settler = settler
    log SettlerChanged(previous_settler=previous, new_settler=settler)


@internal
@view
def _available(tenant: address) -> uint256:
    """
    @dev Balance minus locked minus pending withdrawal.
    """
    # Cannot underflow: every path that burns credits or raises `locked`
    # or `pending_withdrawal` keeps balance >= locked + pending.
    return unsafe_sub(
        unsafe_sub(staticcall credit.balanceOf(tenant), self.locked[tenant]), self.pending_withdrawal[tenant]
    )


@internal
@view
def _check_deposit(tenant: address, amount: uint256):
    """
    @dev Common checks of every deposit.
    """
    assert tenant != empty(address), "credit_vault: tenant is the zero address"
    assert amount != 0, "credit_vault: amount is zero"


@internal
def _credit(tenant: address, payer: address, amount: uint256):
    """
    @dev Mints the credits of a deposit whose stablecoin has arrived.
    """
    extcall credit.mint(tenant, amount)
    log Deposit(tenant=tenant, payer=payer, amount=amount)


@internal
def _pay(to: address, amount: uint256):
    """
    @dev Sends `amount` stablecoin from the vault to `to`.
    """
    assert extcall stablecoin.transfer(to, amount, default_return_value=True), "credit_vault: transfer failed"


@internal
@view
def _check_operator():
    """
    @dev Throws if the sender is not an operator.
    """
    assert self.is_operator[msg.sender], "credit_vault: caller is not an operator"
