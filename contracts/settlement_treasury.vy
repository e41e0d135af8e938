# pragma version ~=0.4.3
"""
@title Settlement Treasury
@custom:contract-name settlement_treasury
@license Apache-2.0 (this file; it compiles in no third-party code).
@notice Pays the settlement lines of oracle-signed usage receipts. A
        line is one leaf of an epoch's `lines_root` in `UsageReceipts`:
        the OpenZeppelin StandardMerkleTree leaf of
        (uint64 epoch, address tenant, bytes32 provider_id,
        uint256 amount, uint256 fee), i.e.
        keccak256(keccak256(abi.encode(epoch, tenant, provider_id,
        amount, fee))). Once the epoch's dispute window has passed, and
        unless the epoch was voided, anyone may execute a line with its
        Merkle proof and the epoch's record (`EpochRecord`: the fields of
        its `EpochSubmitted` log), which must hash to the commitment
        `UsageReceipts` stores for the epoch; only then are the record's
        `lines_root` and `submitted_at` trusted. The credit vault (whose
        settler this contract is) burns `amount` of the tenant's credits
        and pays `amount - fee` stablecoin to the provider's payout
        address and `fee` to the fee recipient. Each line is executed at
        most once; the oracles never put two identical lines in one epoch
        (one line per tenant and provider).
"""


interface IUsageReceipts:
    def commitment(epoch: uint64) -> bytes32: view
    def dispute_window() -> uint256: view


interface ICreditVault:
    def settle(tenant: address, amount: uint256, payout: address, fee: uint256, fee_recipient: address): nonpayable


interface IProviderRegistry:
    def is_active(provider_id: bytes32) -> bool: view
    def payout_of(provider_id: bytes32) -> address: view


# @dev The longest Merkle proof accepted (trees of up to 2**24 lines).
MAX_PROOF_LENGTH: public(constant(uint256)) = 24
# @dev The most lines `execute_lines` pays in one call.
MAX_BATCH: public(constant(uint256)) = 32
# @dev The void flag of a commitment in `UsageReceipts` (its lowest bit).
VOID_FLAG: constant(uint256) = 1


# @dev An epoch's record as `UsageReceipts` commits to it (see its
#      `epoch_commitment`); `submitted_at` is the submission's block time.
struct EpochRecord:
    events_root: bytes32
    lines_root: bytes32
    line_count: uint32
    total_micro: uint256
    submitted_at: uint64
    signers: uint256


struct Line:
    tenant: address
    provider_id: bytes32
    amount: uint256
    fee: uint256


receipts: public(immutable(IUsageReceipts))
vault: public(immutable(ICreditVault))
registry: public(immutable(IProviderRegistry))

owner: public(address)
fee_recipient: public(address)
dispute_window: public(uint256)
# @dev Executed lines, by leaf hash (the leaf includes the epoch).
executed: public(HashMap[bytes32, bool])


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


event FeeRecipientChanged:
    previous_recipient: indexed(address)
    new_recipient: indexed(address)


event DisputeWindowChanged:
    previous_window: uint256
    new_window: uint256


event LineExecuted:
    epoch: indexed(uint64)
    tenant: indexed(address)
    provider_id: indexed(bytes32)
    amount: uint256
    fee: uint256


@deploy
def __init__(receipts_: address, vault_: address, registry_: address, fee_recipient_: address, dispute_window_: uint256):
    """
    @dev The deployer becomes the owner. The vault's owner must then make
         this contract the vault's settler (`set_settler`).
    @param receipts_ The 20-byte usage receipts address.
    @param vault_ The 20-byte credit vault address.
    @param registry_ The 20-byte provider registry address.
    @param fee_recipient_ The 20-byte address paid the lines' fees, not zero.
    @param dispute_window_ The 32-byte time, in seconds, after an epoch's
           submission before its lines can be executed; at least the
           receipts' own dispute window.
    """
    assert receipts_ != empty(address), "settlement_treasury: receipts is the zero address"
    assert vault_ != empty(address), "settlement_treasury: vault is the zero address"
    assert registry_ != empty(address), "settlement_treasury: registry is the zero address"
    assert fee_recipient_ != empty(address), "settlement_treasury: fee recipient is the zero address"
    receipts = IUsageReceipts(receipts_)
    vault = ICreditVault(vault_)
    registry = IProviderRegistry(registry_)
    self._check_window(dispute_window_)
    self.owner = msg.sender
    self.fee_recipient = fee_recipient_
    self.dispute_window = dispute_window_
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    log FeeRecipientChanged(previous_recipient=empty(address), new_recipient=fee_recipient_)
    log DisputeWindowChanged(previous_window=0, new_window=dispute_window_)


@external
@nonreentrant
def execute_line(
    epoch: uint64,
    record: EpochRecord,
    tenant: address,
    provider_id: bytes32,
    amount: uint256,
    fee: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
):
    """
    @dev Settles one line of an epoch's receipt: checks `record` against
         the epoch's commitment in `UsageReceipts`, the line's Merkle proof
         against the record's `lines_root`, marks it executed and has the
         vault burn `amount` of the tenant's credits, paying
         `amount - fee` to the provider's payout address and `fee` to
         `fee_recipient`.
    @notice Anyone may call, once `dispute_window` seconds have passed
            since the submission, for an epoch that is not void and an
            active provider; each line only once. The vault requires
            `amount` non-zero, `fee <= amount` and enough credits.
    @param epoch The 8-byte epoch number.
    @param record The epoch's record (from its `EpochSubmitted` log).
    @param tenant The 20-byte tenant address.
    @param provider_id The 32-byte provider identifier.
    @param amount The 32-byte amount of credits consumed.
    @param fee The 32-byte fee taken from `amount`.
    @param proof The Merkle proof (sibling hashes, leaf to root).
    """
    lines_root: bytes32 = self._payable_root(epoch, record)
    self._execute(epoch, lines_root, tenant, provider_id, amount, fee, proof, self.fee_recipient)


@external
@nonreentrant
def execute_lines(
    epoch: uint64,
    record: EpochRecord,
    lines: DynArray[Line, MAX_BATCH],
    proofs: DynArray[DynArray[bytes32, MAX_PROOF_LENGTH], MAX_BATCH],
):
    """
    @dev Settles several lines of one epoch, each exactly as
         `execute_line` would; the epoch and its record are checked once
         and the transaction's fixed costs are shared.
    @notice Anyone may call; all lines are paid or none.
    @param epoch The 8-byte epoch number.
    @param record The epoch's record (from its `EpochSubmitted` log).
    @param lines The lines (tenant, provider_id, amount, fee).
    @param proofs The Merkle proof of each line, in the same order.
    """
    assert len(lines) == len(proofs), "settlement_treasury: one proof per line"
    lines_root: bytes32 = self._payable_root(epoch, record)
    fee_recipient_: address = self.fee_recipient
    for i: uint256 in range(MAX_BATCH):
        if i == len(lines):
            break
        line: Line = lines[i]
        self._execute(epoch, lines_root, line.tenant, line.provider_id, line.amount, line.fee, proofs[i], fee_recipient_)


@external
@view
def line_leaf(epoch: uint64, tenant: address, provider_id: bytes32, amount: uint256, fee: uint256) -> bytes32:
    """
    @dev Returns the Merkle leaf of a line (the key of `executed`).
    @param epoch The 8-byte epoch number.
    @param tenant The 20-byte tenant address.
    @param provider_id The 32-byte provider identifier.
    @param amount The 32-byte amount.
    @param fee The 32-byte fee.
    @return bytes32 The 32-byte leaf hash.
    """
    return keccak256(keccak256(abi_encode(epoch, tenant, provider_id, amount, fee)))


@external
def set_fee_recipient(new_recipient: address):
    """
    @dev Changes who receives the lines' fees.
    @notice Only the owner; not the zero address.
    @param new_recipient The 20-byte new fee recipient.
    """
    self._check_owner()
    assert new_recipient != empty(address), "settlement_treasury: fee recipient is the zero address"
    previous: address = self.fee_recipient
    self.fee_recipient = new_recipient
    log FeeRecipientChanged(previous_recipient=previous, new_recipient=new_recipient)


@external
def set_dispute_window(new_window: uint256):
    """
    @dev Changes how long after an epoch's submission its lines wait.
    @notice Only the owner; at least the receipts' dispute window (so no
            line is paid while its epoch can still be voided). It also
            applies to epochs already submitted.
    @param new_window The 32-byte new window, in seconds.
    """
    self._check_owner()
    self._check_window(new_window)
    previous: uint256 = self.dispute_window
    self.dispute_window = new_window
    log DisputeWindowChanged(previous_window=previous, new_window=new_window)


@external
def transfer_ownership(new_owner: address):
    """
    @dev Transfers the ownership of the contract to `new_owner`.
    @notice Only the owner; `new_owner` cannot be the zero address.
    @param new_owner The 20-byte address of the new owner.
    """
    self._check_owner()
    assert new_owner != empty(address), "settlement_treasury: new owner is the zero address"
    previous: address = self.owner
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=previous, new_owner=new_owner)


@internal
@view
def _check_owner():
    """
    @dev Throws if the sender is not the owner.
    """
    assert msg.sender == self.owner, "settlement_treasury: caller is not the owner"


@internal
@view
def _check_window(window: uint256):
    """
    @dev Throws if `window` is shorter than the receipts' dispute window.
    """
    assert window >= staticcall receipts.dispute_window(), "settlement_treasury: window shorter than the receipts' dispute window"


@internal
@view
def _payable_root(epoch: uint64, record: EpochRecord) -> bytes32:
    """
    @dev Returns the record's lines root; throws unless the epoch was
         submitted, is not void, `record` is the one its commitment names
         (keccak256 of the abi-encoded fields, lowest bit cleared, exactly
         as `UsageReceipts.epoch_commitment`) and the dispute window from
         the record's `submitted_at` has passed.
    """
    stored: uint256 = convert(staticcall receipts.commitment(epoch), uint256)
    assert stored != 0, "settlement_treasury: epoch not submitted"
    assert stored & VOID_FLAG == 0, "settlement_treasury: epoch is void"
    digest: bytes32 = keccak256(
        abi_encode(
            record.events_root,
            record.lines_root,
            record.line_count,
            record.total_micro,
            record.submitted_at,
            record.signers,
        )
    )
    assert stored == convert(digest, uint256) & ~VOID_FLAG, "settlement_treasury: epoch record does not match the receipt"
    assert block.timestamp >= convert(record.submitted_at, uint256) + self.dispute_window, "settlement_treasury: dispute window not passed"
    return record.lines_root


@internal
def _execute(
    epoch: uint64,
    lines_root: bytes32,
    tenant: address,
    provider_id: bytes32,
    amount: uint256,
    fee: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
    fee_recipient_: address,
):
    """
    @dev Verifies one line against `lines_root`, marks it executed and
         has the vault settle it.
    """
    leaf: bytes32 = keccak256(keccak256(abi_encode(epoch, tenant, provider_id, amount, fee)))
    assert not self.executed[leaf], "settlement_treasury: line already executed"
    assert self._verify(proof, lines_root, leaf), "settlement_treasury: invalid proof"
    assert staticcall registry.is_active(provider_id), "settlement_treasury: provider is not active"
    payout: address = staticcall registry.payout_of(provider_id)
    self.executed[leaf] = True
    log LineExecuted(epoch=epoch, tenant=tenant, provider_id=provider_id, amount=amount, fee=fee)
    extcall vault.settle(tenant, amount, payout, fee, fee_recipient_)


@internal
@pure
def _verify(proof: DynArray[bytes32, MAX_PROOF_LENGTH], root: bytes32, leaf: bytes32) -> bool:
    """
    @dev OpenZeppelin `MerkleProof.verify`: hashes the leaf up with each
         sibling, the smaller of each pair first.
    """
    computed: bytes32 = leaf
    for node: bytes32 in proof:
        if convert(computed, uint256) < convert(node, uint256):
            computed = keccak256(concat(computed, node))
        else:
            computed = keccak256(concat(node, computed))
    return computed == root
