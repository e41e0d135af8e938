# pragma version ~=0.4.3
"""
@title Provider Registry
@custom:contract-name provider_registry
@license Apache-2.0
@notice The providers that jobs can be locked for, keyed by a 32-byte
        `provider_id`: who administers each one, which key signs its
        usage reports, where its earnings are paid and whether it is
        active. Anyone can register a provider (and becomes its admin);
        governance (the owner) can register on someone's behalf, change
        any provider, and is the only one that sets a status other than
        retired. Every change is an event carrying the time from which
        it holds, so an off-chain reader can tell which signer, payout
        and status were valid at any moment.
"""


from modules import owned
initializes: owned

exports: (owned.owner, owned.transfer_ownership)


STATUS_UNKNOWN: public(constant(uint8)) = 0
STATUS_ACTIVE: public(constant(uint8)) = 1
STATUS_SUSPENDED: public(constant(uint8)) = 2
STATUS_RETIRED: public(constant(uint8)) = 3


struct Provider:
    admin: address
    signer: address
    payout: address
    status: uint8
    signer_since: uint256


providers: public(HashMap[bytes32, Provider])


event ProviderRegistered:
    provider_id: indexed(bytes32)
    admin: indexed(address)
    signer: address
    payout: address
    since: uint256


event SignerChanged:
    provider_id: indexed(bytes32)
    signer: address
    since: uint256


event PayoutChanged:
    provider_id: indexed(bytes32)
    payout: address
    since: uint256


event StatusChanged:
    provider_id: indexed(bytes32)
    status: uint8
    since: uint256


event AdminChanged:
    provider_id: indexed(bytes32)
    admin: indexed(address)
    since: uint256


@deploy
def __init__():
    """
    @dev The deployer becomes the owner (governance).
    """
    owned.__init__()


@external
def register(provider_id: bytes32, signer: address, payout: address):
    """
    @dev Registers an active provider administered by the caller.
    @notice `provider_id` must be non-zero and unused; `signer` and
            `payout` cannot be the zero address.
    @param provider_id The 32-byte provider identifier.
    @param signer The 20-byte address whose signatures the provider's
           usage reports carry.
    @param payout The 20-byte address that receives the provider's earnings.
    """
    self._register(provider_id, msg.sender, signer, payout)


@external
def register_for(provider_id: bytes32, admin: address, signer: address, payout: address):
    """
    @dev Registers an active provider administered by `admin`.
    @notice Only the owner (governance). The same checks as `register`,
            and `admin` cannot be the zero address.
    @param provider_id The 32-byte provider identifier.
    @param admin The 20-byte address that will administer the provider.
    @param signer The 20-byte signer address.
    @param payout The 20-byte payout address.
    """
    owned._check_owner()
    self._register(provider_id, admin, signer, payout)


@external
def set_signer(provider_id: bytes32, signer: address):
    """
    @dev Rotates the provider's signer; the new one holds from now on.
    @notice Only the provider's admin or the owner.
    @param provider_id The 32-byte provider identifier.
    @param signer The 20-byte new signer address, not zero.
    """
    self._check_admin_or_owner(provider_id)
    assert signer != empty(address), "provider_registry: signer is the zero address"
    self.providers[provider_id].signer = signer
    self.providers[provider_id].signer_since = block.timestamp
    log SignerChanged(provider_id=provider_id, signer=signer, since=block.timestamp)


@external
def set_payout(provider_id: bytes32, payout: address):
    """
    @dev Changes where the provider's earnings are paid.
    @notice Only the provider's admin or the owner.
    @param provider_id The 32-byte provider identifier.
    @param payout The 20-byte new payout address, not zero.
    """
    self._check_admin_or_owner(provider_id)
    assert payout != empty(address), "provider_registry: payout is the zero address"
    self.providers[provider_id].payout = payout
    log PayoutChanged(provider_id=provider_id, payout=payout, since=block.timestamp)


@external
def set_admin(provider_id: bytes32, admin: address):
    """
    @dev Hands the provider's administration to another address.
    @notice Only the provider's admin or the owner.
    @param provider_id The 32-byte provider identifier.
    @param admin The 20-byte new admin address, not zero.
    """
    self._check_admin_or_owner(provider_id)
    assert admin != empty(address), "provider_registry: admin is the zero address"
    self.providers[provider_id].admin = admin
    log AdminChanged(provider_id=provider_id, admin=admin, since=block.timestamp)


@external
def set_status(provider_id: bytes32, status: uint8):
    """
    @dev Sets the provider's status: 1 active, 2 suspended, 3 retired.
    @notice The owner may set any of them; the provider's admin may only
            retire its own provider.
    @param provider_id The 32-byte provider identifier.
    @param status The 1-byte new status (1, 2 or 3).
    """
    assert self.providers[provider_id].status != STATUS_UNKNOWN, "provider_registry: unknown provider"
    assert status >= STATUS_ACTIVE and status <= STATUS_RETIRED, "provider_registry: invalid status"
    if msg.sender != owned.owner:
        assert msg.sender == self.providers[provider_id].admin, "provider_registry: caller is not the owner"
        assert status == STATUS_RETIRED, "provider_registry: admin may only retire"
    self.providers[provider_id].status = status
    log StatusChanged(provider_id=provider_id, status=status, since=block.timestamp)


@external
@view
def is_active(provider_id: bytes32) -> bool:
    """
    @dev Returns whether the provider is registered and active.
    @param provider_id The 32-byte provider identifier.
    @return bool True if the status is active.
    """
    return self.providers[provider_id].status == STATUS_ACTIVE


@external
@view
def payout_of(provider_id: bytes32) -> address:
    """
    @dev Returns the provider's payout address (zero if unknown).
    @param provider_id The 32-byte provider identifier.
    @return address The 20-byte payout address.
    """
    return self.providers[provider_id].payout


@external
@view
def signer_of(provider_id: bytes32) -> address:
    """
    @dev Returns the provider's current signer (zero if unknown).
    @param provider_id The 32-byte provider identifier.
    @return address The 20-byte signer address.
    """
    return self.providers[provider_id].signer


@internal
def _register(provider_id: bytes32, admin: address, signer: address, payout: address):
    """
    @dev Stores a new active provider and logs its registration together
         with its first signer and status.
    """
    assert provider_id != empty(bytes32), "provider_registry: provider id is zero"
    assert self.providers[provider_id].status == STATUS_UNKNOWN, "provider_registry: provider already registered"
    assert admin != empty(address), "provider_registry: admin is the zero address"
    assert signer != empty(address), "provider_registry: signer is the zero address"
    assert payout != empty(address), "provider_registry: payout is the zero address"
    self.providers[provider_id] = Provider(
        admin=admin, signer=signer, payout=payout, status=STATUS_ACTIVE, signer_since=block.timestamp
    )
    log ProviderRegistered(provider_id=provider_id, admin=admin, signer=signer, payout=payout, since=block.timestamp)
    log SignerChanged(provider_id=provider_id, signer=signer, since=block.timestamp)
    log StatusChanged(provider_id=provider_id, status=STATUS_ACTIVE, since=block.timestamp)


@internal
@view
def _check_admin_or_owner(provider_id: bytes32):
    """
    @dev Throws unless the provider is registered and the sender is its
         admin or the owner.
    """
    provider_admin: address = self.providers[provider_id].admin
    assert provider_admin != empty(address), "provider_registry: unknown provider"
    assert msg.sender == provider_admin or msg.sender == owned.owner, "provider_registry: caller is not the admin"
