# pragma version ~=0.4.3
"""
@title Usage Receipts
@custom:contract-name usage_receipts
@license Apache-2.0 (this file; it compiles in no third-party code).
@notice The on-chain record of usage, one receipt per epoch. Oracle
        nodes batch the epoch's signed usage events into a Merkle tree
        (`events_root`), aggregate them into settlement lines per tenant
        and provider (an OpenZeppelin StandardMerkleTree, `lines_root`),
        and threshold-sign the result with BLS (min-sig: signatures in
        G1, public keys in G2, over BLS12-381 via the EIP-2537
        precompiles). Anyone may submit a receipt: it authenticates
        itself with the aggregate signature of at least `threshold`
        registered oracles. Epochs are strictly sequential from 1.

        Oracles are registered by the owner with a proof of possession
        of the secret key (which rules out rogue-key attacks on the
        aggregate). Only the hash of each 256-byte public key is stored;
        submitters pass the signers' keys in calldata. Oracle indexes
        are never reused, so the `signers` bitmap of an old receipt
        keeps its meaning; at most `MAX_ORACLES` indexes exist.

        A receipt is stored as one word, the `commitment` of its record
        (`epoch_commitment`): keccak256(abi.encode(bytes32 events_root,
        bytes32 lines_root, uint32 line_count, uint256 total_micro,
        uint64 submitted_at, uint256 signers)) with its lowest bit
        cleared, `submitted_at` being the submission's block timestamp.
        The `EpochSubmitted` log carries every field of the record, so
        anyone can rebuild it and check it against the stored word; the
        settlement treasury takes the record in calldata and does just
        that before paying a line.

        During its dispute window a receipt can be voided by the owner
        (governance), which sets the lowest bit of its commitment; the
        settlement treasury never pays lines of a void epoch, and lines
        only become payable after the window.

        Encodings (EIP-2537): a G1 point is 128 bytes (x, y), a G2 point
        256 bytes (x.c0, x.c1, y.c0, y.c1), each coordinate a 64-byte
        big-endian word with 16 leading zero bytes. Messages hash to G1
        per RFC 9380, suite BLS12381G1_XMD:SHA-256_SSWU_RO_, with the
        signature or proof-of-possession domain separation tag.
"""


# @dev Oracle indexes that can ever be assigned (bitmap width in storage).
MAX_ORACLES: public(constant(uint256)) = 32
G1_SIZE: constant(uint256) = 128
G2_SIZE: constant(uint256) = 256
# @dev `MAX_ORACLES` public keys of `G2_SIZE` bytes.
MAX_KEYS_SIZE: constant(uint256) = 8192

# @dev keccak256("apicredits.epoch.v1"): the first word of every signed
#      epoch message.
EPOCH_TAG: public(constant(bytes32)) = 0x683b48ad1f19c0d29f2e97d96697d8a89d47f01f25988f642bad2a96053fc6f7

# @dev RFC 9380 DST_prime = DST || I2OSP(len(DST), 1); both tags are 54
#      bytes long and chr(54) is "6".
SIG_DST_PRIME: constant(Bytes[55]) = b"APICREDITS_BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_6"
POP_DST_PRIME: constant(Bytes[55]) = b"APICREDITS_BLS_POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_6"

# @dev The EIP-2537 and modexp precompiles.
MODEXP: constant(address) = 0x0000000000000000000000000000000000000005
BLS12_G1ADD: constant(address) = 0x000000000000000000000000000000000000000b
BLS12_G2ADD: constant(address) = 0x000000000000000000000000000000000000000d
BLS12_PAIRING_CHECK: constant(address) = 0x000000000000000000000000000000000000000F
BLS12_MAP_FP_TO_G1: constant(address) = 0x0000000000000000000000000000000000000010

# @dev The base field modulus p of BLS12-381 as a 64-byte word (high and
#      low 32 bytes): the modexp modulus, so that the reduced value comes
#      back already padded to the EIP-2537 64-byte field encoding.
P_HI: constant(bytes32) = 0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7
P_LO: constant(bytes32) = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab
WORD_64: constant(bytes32) = 0x0000000000000000000000000000000000000000000000000000000000000040
WORD_1: constant(bytes32) = 0x0000000000000000000000000000000000000000000000000000000000000001

# @dev The negated G2 generator, EIP-2537 encoding, as eight words.
NEG_G2_0: constant(bytes32) = 0x00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051
NEG_G2_1: constant(bytes32) = 0xc6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8
NEG_G2_2: constant(bytes32) = 0x0000000000000000000000000000000013e02b6052719f607dacd3a088274f65
NEG_G2_3: constant(bytes32) = 0x596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e
NEG_G2_4: constant(bytes32) = 0x000000000000000000000000000000000d1b3cc2c7027888be51d9ef691d77bc
NEG_G2_5: constant(bytes32) = 0xb679afda66c73f17f9ee3837a55024f78c71363275a75d75d86bab79f74782aa
NEG_G2_6: constant(bytes32) = 0x0000000000000000000000000000000013fa4d4a0ad8b1ce186ed5061789213d
NEG_G2_7: constant(bytes32) = 0x993923066dddaf1040bc3ff59f825c78df74f2d75467e25e0f55f8a00fa030ed

# @dev keccak256 of the all-zero (point at infinity) G2 and G1 encodings.
G2_INFINITY_HASH: constant(bytes32) = 0xd397b3b043d87fcd6fad1291ff0bfd16401c274896d8c63a923727f077b8e0b5
G1_INFINITY_HASH: constant(bytes32) = 0x012893657d8eb2efad4de0a91bcd0e39ad9837745dec3ea923737ea803fc8e3d

# @dev The lowest bit of a stored commitment: set once the epoch is void.
#      A commitment is the record's hash with this bit cleared, so voiding
#      costs the settlement path nothing: the one word the treasury reads
#      says both which record was committed and whether it is void (a
#      separate `voided` map would add a cold SLOAD, 2,100 gas, to every
#      settlement call for a flag that is almost never set), and a void
#      epoch's word still names its record for auditors (overwriting it
#      with a constant marker would not). 255 bits of hash remain.
VOID_FLAG: public(constant(uint256)) = 1


# @dev What a receipt commits to; `submitted_at` is the block timestamp of
#      its submission.
struct EpochRecord:
    events_root: bytes32
    lines_root: bytes32
    line_count: uint32
    total_micro: uint256
    submitted_at: uint64
    signers: uint256


owner: public(address)

# @dev keccak256 of each active oracle's public key by index; zero for a
#      removed (or never assigned) index.
oracle_key_hash: public(HashMap[uint256, bytes32])
# @dev Indexes assigned so far (the next index to assign).
oracle_count: public(uint256)
active_oracle_count: public(uint256)
threshold: public(uint256)
# @dev 1 + index of each active key, by key hash (0: not active).
_slot_of_key: HashMap[bytes32, uint256]

next_epoch: public(uint64)
dispute_window: public(uint256)

# @dev The commitment of each submitted epoch's record (`epoch_commitment`),
#      its lowest bit (`VOID_FLAG`) set once void; zero if not submitted.
#      One storage word per receipt: the record itself is in the
#      `EpochSubmitted` log.
commitment: public(HashMap[uint64, bytes32])


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


event OracleRegistered:
    index: indexed(uint256)
    key_hash: bytes32


event OracleRemoved:
    index: indexed(uint256)
    key_hash: bytes32


event ThresholdChanged:
    previous_threshold: uint256
    new_threshold: uint256


event DisputeWindowChanged:
    previous_window: uint256
    new_window: uint256


event EpochSubmitted:
    epoch: indexed(uint64)
    events_root: bytes32
    lines_root: bytes32
    line_count: uint32
    total_micro: uint256
    submitted_at: uint64
    signers: uint256


event EpochVoided:
    epoch: indexed(uint64)


@deploy
def __init__(dispute_window_: uint256):
    """
    @dev The deployer becomes the owner. No oracle is registered and the
         threshold is zero, so nothing can be submitted until the owner
         registers oracles and sets a threshold.
    @param dispute_window_ The 32-byte time, in seconds, after a receipt's
           submission during which the owner may void it.
    """
    self.owner = msg.sender
    self.next_epoch = 1
    self.dispute_window = dispute_window_
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    log DisputeWindowChanged(previous_window=0, new_window=dispute_window_)


@external
def transfer_ownership(new_owner: address):
    """
    @dev Transfers the ownership of the contract to `new_owner`.
    @notice Only the owner; `new_owner` cannot be the zero address.
    @param new_owner The 20-byte address of the new owner.
    """
    self._check_owner()
    assert new_owner != empty(address), "usage_receipts: new owner is the zero address"
    previous: address = self.owner
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=previous, new_owner=new_owner)


@external
def register_oracle(public_key: Bytes[G2_SIZE], pop: Bytes[G1_SIZE]) -> uint256:
    """
    @dev Registers an oracle's BLS public key at the next index after
         checking its proof of possession: `pop` must be the signature of
         the 256-byte key encoding itself under the proof-of-possession
         tag, which one pairing check verifies (the precompile also
         checks both points are in their prime-order subgroups).
    @notice Only the owner. The key must not be the point at infinity
            nor an active oracle's key; at most `MAX_ORACLES` indexes are
            ever assigned.
    @param public_key The 256-byte G2 public key (EIP-2537 encoding).
    @param pop The 128-byte G1 proof of possession.
    @return uint256 The 32-byte index assigned to the oracle.
    """
    self._check_owner()
    assert len(public_key) == G2_SIZE, "usage_receipts: public key is not 256 bytes"
    assert len(pop) == G1_SIZE, "usage_receipts: proof of possession is not 128 bytes"
    key_hash: bytes32 = keccak256(public_key)
    assert key_hash != G2_INFINITY_HASH, "usage_receipts: public key is the point at infinity"
    assert self._slot_of_key[key_hash] == 0, "usage_receipts: oracle already registered"
    index: uint256 = self.oracle_count
    assert index < MAX_ORACLES, "usage_receipts: no oracle index left"
    assert self._pairing_ok(pop, self._hash_to_g1(public_key, POP_DST_PRIME), public_key), "usage_receipts: invalid proof of possession"
    self.oracle_key_hash[index] = key_hash
    # Cannot overflow: `index + 1 <= MAX_ORACLES`.
    self._slot_of_key[key_hash] = unsafe_add(index, 1)
    self.oracle_count = unsafe_add(index, 1)
    # Cannot overflow: at most `MAX_ORACLES` oracles are active.
    self.active_oracle_count = unsafe_add(self.active_oracle_count, 1)
    log OracleRegistered(index=index, key_hash=key_hash)
    return index


@external
def remove_oracle(index: uint256):
    """
    @dev Removes an active oracle: its signature no longer counts. The
         index is never reused.
    @notice Only the owner; fails if fewer active oracles than the
            threshold would remain (lower the threshold first).
    @param index The 32-byte oracle index.
    """
    self._check_owner()
    key_hash: bytes32 = self.oracle_key_hash[index]
    assert key_hash != empty(bytes32), "usage_receipts: oracle is not active"
    # Cannot underflow: the oracle at `index` is active, so the count is at least 1.
    remaining: uint256 = unsafe_sub(self.active_oracle_count, 1)
    assert remaining >= self.threshold, "usage_receipts: removal would leave fewer oracles than the threshold"
    self.oracle_key_hash[index] = empty(bytes32)
    self._slot_of_key[key_hash] = 0
    self.active_oracle_count = remaining
    log OracleRemoved(index=index, key_hash=key_hash)


@external
def set_threshold(new_threshold: uint256):
    """
    @dev Sets how many oracles must sign a receipt.
    @notice Only the owner; 1 <= `new_threshold` <= active oracles.
    @param new_threshold The 32-byte new threshold.
    """
    self._check_owner()
    assert new_threshold != 0, "usage_receipts: threshold is zero"
    assert new_threshold <= self.active_oracle_count, "usage_receipts: threshold exceeds active oracles"
    previous: uint256 = self.threshold
    self.threshold = new_threshold
    log ThresholdChanged(previous_threshold=previous, new_threshold=new_threshold)


@external
def set_dispute_window(new_window: uint256):
    """
    @dev Sets how long after its submission a receipt can be voided.
    @notice Only the owner. The settlement treasury's own window should
            be at least this long, or lines could be paid before their
            epoch stops being voidable.
    @param new_window The 32-byte new window, in seconds.
    """
    self._check_owner()
    previous: uint256 = self.dispute_window
    self.dispute_window = new_window
    log DisputeWindowChanged(previous_window=previous, new_window=new_window)


@external
def submit_epoch(
    epoch: uint64,
    events_root: bytes32,
    lines_root: bytes32,
    line_count: uint32,
    total_micro: uint256,
    signers: uint256,
    public_keys: Bytes[MAX_KEYS_SIZE],
    signature: Bytes[G1_SIZE],
):
    """
    @dev Records the receipt of `epoch` once the aggregate BLS signature
         of the oracles in `signers` over `epoch_message(...)` verifies:
         the supplied keys must hash to the registered ones, and they are
         added up (G2ADD) into the aggregate key. Stores the commitment
         of the epoch's record (`epoch_commitment`), `submitted_at` being
         this block's timestamp, and logs every field of the record.
    @notice Anyone may submit. `epoch` must be `next_epoch`; `signers`
            must name at least `threshold` active oracles and no index
            at or above `oracle_count`.
    @param epoch The 8-byte epoch number.
    @param events_root The 32-byte Merkle root of the epoch's usage events.
    @param lines_root The 32-byte OpenZeppelin StandardMerkleTree root of
           the settlement lines (uint64 epoch, address tenant, bytes32
           provider_id, uint256 amount, uint256 fee).
    @param line_count The 4-byte number of settlement lines.
    @param total_micro The 32-byte sum of the lines' amounts.
    @param signers The 32-byte bitmap of the signing oracles' indexes.
    @param public_keys The signers' 256-byte G2 keys concatenated in
           ascending index order.
    @param signature The 128-byte aggregate G1 signature.
    """
    assert epoch == self.next_epoch, "usage_receipts: epoch out of order"
    assert signers >> self.oracle_count == 0, "usage_receipts: signer index beyond oracle count"
    assert len(signature) == G1_SIZE, "usage_receipts: signature is not 128 bytes"
    assert keccak256(signature) != G1_INFINITY_HASH, "usage_receipts: signature is the point at infinity"
    required: uint256 = self.threshold
    assert required != 0, "usage_receipts: threshold not set"

    aggregate: Bytes[G2_SIZE] = b""
    count: uint256 = 0
    for index: uint256 in range(MAX_ORACLES):
        if signers >> index == 0:
            break
        if (signers >> index) & 1 == 0:
            continue
        stored: bytes32 = self.oracle_key_hash[index]
        assert stored != empty(bytes32), "usage_receipts: signer is not an active oracle"
        # Cannot overflow: `count < MAX_ORACLES`, so the product is at most 7936.
        start: uint256 = unsafe_mul(count, G2_SIZE)
        assert start < len(public_keys), "usage_receipts: too few public keys"
        key: Bytes[G2_SIZE] = slice(public_keys, start, G2_SIZE)
        assert keccak256(key) == stored, "usage_receipts: public key does not match signer"
        if count == 0:
            aggregate = key
        else:
            aggregate = self._g2_add(aggregate, key)
        # Cannot overflow: `count < MAX_ORACLES`.
        count = unsafe_add(count, 1)
    assert count >= required, "usage_receipts: too few signers"
    # Cannot overflow: `count <= MAX_ORACLES`.
    assert len(public_keys) == unsafe_mul(count, G2_SIZE), "usage_receipts: too many public keys"
    assert keccak256(aggregate) != G2_INFINITY_HASH, "usage_receipts: aggregate key is the point at infinity"

    digest: bytes32 = self._epoch_message(epoch, events_root, lines_root, line_count, total_micro)
    point: Bytes[G1_SIZE] = self._hash_to_g1(concat(digest, b""), SIG_DST_PRIME)
    assert self._pairing_ok(signature, point, aggregate), "usage_receipts: invalid signature"

    # Cannot overflow: `epoch == next_epoch`, which started at 1 and grows by one per receipt;
    # a uint64 of epochs is never exhausted.
    self.next_epoch = unsafe_add(epoch, 1)
    submitted_at: uint64 = convert(block.timestamp, uint64)
    self.commitment[epoch] = self._commitment(
        EpochRecord(
            events_root=events_root,
            lines_root=lines_root,
            line_count=line_count,
            total_micro=total_micro,
            submitted_at=submitted_at,
            signers=signers,
        )
    )
    log EpochSubmitted(
        epoch=epoch,
        events_root=events_root,
        lines_root=lines_root,
        line_count=line_count,
        total_micro=total_micro,
        submitted_at=submitted_at,
        signers=signers,
    )


@external
def void_epoch(epoch: uint64, record: EpochRecord):
    """
    @dev Voids a receipt: none of its lines can be settled any more. Sets
         the lowest bit (`VOID_FLAG`) of its commitment, so the rest of
         the word still names the record that was committed.
    @notice Only the owner, within `dispute_window` seconds of the
            submission. `record` must be the epoch's record (from its
            `EpochSubmitted` log): its `submitted_at` opens the window.
    @param epoch The 8-byte epoch number.
    @param record The epoch's record, matching its commitment.
    """
    self._check_owner()
    stored: uint256 = convert(self.commitment[epoch], uint256)
    assert stored != 0, "usage_receipts: epoch not submitted"
    assert stored & VOID_FLAG == 0, "usage_receipts: epoch already void"
    assert stored == convert(self._commitment(record), uint256), "usage_receipts: epoch record does not match the receipt"
    assert block.timestamp < convert(record.submitted_at, uint256) + self.dispute_window, "usage_receipts: dispute window closed"
    self.commitment[epoch] = convert(stored | VOID_FLAG, bytes32)
    log EpochVoided(epoch=epoch)


@external
@view
def voided(epoch: uint64) -> bool:
    """
    @dev Returns whether the receipt of `epoch` was voided.
    @param epoch The 8-byte epoch number.
    @return bool True if void.
    """
    return convert(self.commitment[epoch], uint256) & VOID_FLAG != 0


@external
@pure
def epoch_commitment(record: EpochRecord) -> bytes32:
    """
    @dev Returns the commitment `submit_epoch` stores for `record`:
         keccak256(abi.encode(events_root, lines_root, line_count,
         total_micro, submitted_at, signers)), the ABI types bytes32,
         bytes32, uint32, uint256, uint64 and uint256, with the lowest
         bit (`VOID_FLAG`) cleared. A void epoch's stored word is this
         value with that bit set.
    @param record The record: events and lines roots, line count, total
           amount, submission time and signer bitmap.
    @return bytes32 The 32-byte commitment.
    """
    return self._commitment(record)


@external
@view
def epoch_message(
    epoch: uint64, events_root: bytes32, lines_root: bytes32, line_count: uint32, total_micro: uint256
) -> bytes32:
    """
    @dev Returns the 32-byte digest the oracles sign for a receipt:
         keccak256(abi.encode(EPOCH_TAG, chain id, this contract, epoch,
         events_root, lines_root, line_count, total_micro)).
    @param epoch The 8-byte epoch number.
    @param events_root The 32-byte events root.
    @param lines_root The 32-byte lines root.
    @param line_count The 4-byte number of lines.
    @param total_micro The 32-byte total amount.
    @return bytes32 The 32-byte digest (the BLS message).
    """
    return self._epoch_message(epoch, events_root, lines_root, line_count, total_micro)


@external
@view
def hash_to_g1(message: Bytes[G2_SIZE], pop: bool) -> Bytes[G1_SIZE]:
    """
    @dev Hashes `message` to G1 exactly as signatures (or, with `pop`,
         proofs of possession) are verified here.
    @param message The message, at most 256 bytes.
    @param pop The Boolean choice of the proof-of-possession tag.
    @return Bytes The 128-byte G1 point (EIP-2537 encoding).
    """
    if pop:
        return self._hash_to_g1(message, POP_DST_PRIME)
    return self._hash_to_g1(message, SIG_DST_PRIME)


@internal
@view
def _check_owner():
    """
    @dev Throws if the sender is not the owner.
    """
    assert msg.sender == self.owner, "usage_receipts: caller is not the owner"


@internal
@pure
def _commitment(record: EpochRecord) -> bytes32:
    """
    @dev The record's hash with its lowest bit (`VOID_FLAG`) cleared.
    """
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
    return convert(convert(digest, uint256) & ~VOID_FLAG, bytes32)


@internal
@view
def _epoch_message(
    epoch: uint64, events_root: bytes32, lines_root: bytes32, line_count: uint32, total_micro: uint256
) -> bytes32:
    """
    @dev The digest signed by the oracles, bound to this chain and contract.
    """
    return keccak256(abi_encode(EPOCH_TAG, chain.id, self, epoch, events_root, lines_root, line_count, total_micro))


@internal
@view
def _hash_to_g1(message: Bytes[G2_SIZE], dst_prime: Bytes[55]) -> Bytes[G1_SIZE]:
    """
    @dev RFC 9380 hash_to_curve, suite BLS12381G1_XMD:SHA-256_SSWU_RO_:
         expand_message_xmd to 128 bytes, two field elements (each
         64-byte half reduced mod p by the modexp precompile), each mapped
         with MAP_FP_TO_G1 (which clears the cofactor), then added.
    """
    # msg_prime = Z_pad (64 zero bytes) || msg || I2OSP(128, 2) || I2OSP(0, 1) || DST_prime
    b_0: bytes32 = sha256(concat(empty(bytes32), empty(bytes32), message, b"\x00\x80\x00", dst_prime))
    b_1: bytes32 = sha256(concat(b_0, b"\x01", dst_prime))
    b_2: bytes32 = sha256(concat(self._xor(b_0, b_1), b"\x02", dst_prime))
    b_3: bytes32 = sha256(concat(self._xor(b_0, b_2), b"\x03", dst_prime))
    b_4: bytes32 = sha256(concat(self._xor(b_0, b_3), b"\x04", dst_prime))
    q_0: Bytes[G1_SIZE] = self._map_to_g1(self._mod_p(b_1, b_2))
    q_1: Bytes[G1_SIZE] = self._map_to_g1(self._mod_p(b_3, b_4))
    return raw_call(BLS12_G1ADD, concat(q_0, q_1), max_outsize=G1_SIZE, is_static_call=True)


@internal
@pure
def _xor(a: bytes32, b: bytes32) -> bytes32:
    """
    @dev The bitwise exclusive or of two words.
    """
    return convert(convert(a, uint256) ^ convert(b, uint256), bytes32)


@internal
@view
def _mod_p(high: bytes32, low: bytes32) -> Bytes[64]:
    """
    @dev Reduces the 512-bit big-endian integer high || low modulo p with
         the modexp precompile (exponent 1), returned as a 64-byte word.
    """
    return raw_call(
        MODEXP,
        concat(WORD_64, WORD_1, WORD_64, high, low, b"\x01", P_HI, P_LO),
        max_outsize=64,
        is_static_call=True,
    )


@internal
@view
def _map_to_g1(field_element: Bytes[64]) -> Bytes[G1_SIZE]:
    """
    @dev Maps a field element to G1 (EIP-2537 MAP_FP_TO_G1).
    """
    return raw_call(BLS12_MAP_FP_TO_G1, field_element, max_outsize=G1_SIZE, is_static_call=True)


@internal
@view
def _g2_add(a: Bytes[G2_SIZE], b: Bytes[G2_SIZE]) -> Bytes[G2_SIZE]:
    """
    @dev Adds two G2 points (EIP-2537 G2ADD).
    """
    return raw_call(BLS12_G2ADD, concat(a, b), max_outsize=G2_SIZE, is_static_call=True)


@internal
@view
def _pairing_ok(signature: Bytes[G1_SIZE], message_point: Bytes[G1_SIZE], public_key: Bytes[G2_SIZE]) -> bool:
    """
    @dev Checks e(signature, -G2) * e(message_point, public_key) == 1,
         i.e. e(signature, G2) == e(H(m), public_key). The precompile
         reverts on malformed points and points outside the subgroups.
    """
    result: Bytes[32] = raw_call(
        BLS12_PAIRING_CHECK,
        concat(
            signature,
            NEG_G2_0,
            NEG_G2_1,
            NEG_G2_2,
            NEG_G2_3,
            NEG_G2_4,
            NEG_G2_5,
            NEG_G2_6,
            NEG_G2_7,
            message_point,
            public_key,
        ),
        max_outsize=32,
        is_static_call=True,
    )
    return len(result) == 32 and convert(result, bytes32) == WORD_1
