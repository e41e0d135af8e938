# pragma version ~=0.4.3
"""
@title Capability Authority
@custom:contract-name capability_authority
@license Apache-2.0
@notice The public record of the gateway's capability-token signing keys
        (Ed25519, by key id `kid`) with their validity windows, and of
        revocations: single tokens by the hash of their `jti`, and every
        token of a subject or a tenant issued before a given time. Only
        the owner writes; revocations only ever widen, so a verifier that
        trusts this contract can never see a revoked token come back.
"""


from modules import owned
initializes: owned

exports: (owned.owner, owned.transfer_ownership)


struct SigningKey:
    public_key: bytes32
    not_before: uint256
    # @dev Zero while the key is open-ended.
    not_after: uint256


keys: public(HashMap[bytes32, SigningKey])
token_revoked: public(HashMap[bytes32, bool])
subject_revoked_before: public(HashMap[bytes32, uint256])
tenant_revoked_before: public(HashMap[bytes32, uint256])


event KeyRegistered:
    kid: indexed(bytes32)
    public_key: bytes32
    not_before: uint256


event KeyRetired:
    kid: indexed(bytes32)
    not_after: uint256


event TokenRevoked:
    jti_hash: indexed(bytes32)


event SubjectRevoked:
    subject_hash: indexed(bytes32)
    before: uint256


event TenantRevoked:
    tenant_hash: indexed(bytes32)
    before: uint256


@deploy
def __init__():
    """
    @dev The deployer becomes the owner.
    """
    owned.__init__()


@external
def register_key(kid: bytes32, public_key: bytes32, not_before: uint256):
    """
    @dev Publishes a signing key, valid from `not_before` on.
    @notice Only the owner; `kid` must be non-zero and unused and
            `public_key` non-zero.
    @param kid The 32-byte key identifier.
    @param public_key The 32-byte Ed25519 public key.
    @param not_before The 32-byte time from which tokens it signs are valid.
    """
    owned._check_owner()
    assert kid != empty(bytes32), "capability_authority: kid is zero"
    assert public_key != empty(bytes32), "capability_authority: public key is zero"
    assert self.keys[kid].public_key == empty(bytes32), "capability_authority: kid already registered"
    self.keys[kid] = SigningKey(public_key=public_key, not_before=not_before, not_after=0)
    log KeyRegistered(kid=kid, public_key=public_key, not_before=not_before)


@external
def retire_key(kid: bytes32, not_after: uint256):
    """
    @dev Ends a key's validity at `not_after` (exclusive).
    @notice Only the owner. `not_after` must be later than the key's
            `not_before` and, if the key is already retired, earlier than
            its current end: a window can only shrink.
    @param kid The 32-byte key identifier.
    @param not_after The 32-byte time from which the key is no longer valid.
    """
    owned._check_owner()
    key: SigningKey = self.keys[kid]
    assert key.public_key != empty(bytes32), "capability_authority: unknown kid"
    assert not_after > key.not_before, "capability_authority: not_after before not_before"
    assert key.not_after == 0 or not_after < key.not_after, "capability_authority: window can only shrink"
    self.keys[kid].not_after = not_after
    log KeyRetired(kid=kid, not_after=not_after)


@external
@view
def key_valid_at(kid: bytes32, timestamp: uint256) -> bool:
    """
    @dev Returns whether the key is valid at `timestamp`:
         not_before <= timestamp < not_after (or no not_after).
    @param kid The 32-byte key identifier.
    @param timestamp The 32-byte time to check.
    @return bool True if the key is registered and valid then.
    """
    key: SigningKey = self.keys[kid]
    if key.public_key == empty(bytes32) or timestamp < key.not_before:
        return False
    return key.not_after == 0 or timestamp < key.not_after


@external
def revoke_token(jti_hash: bytes32):
    """
    @dev Revokes a single token.
    @notice Only the owner; a token is revoked once.
    @param jti_hash The 32-byte hash of the token's `jti`.
    """
    owned._check_owner()
    assert not self.token_revoked[jti_hash], "capability_authority: token already revoked"
    self.token_revoked[jti_hash] = True
    log TokenRevoked(jti_hash=jti_hash)


@external
def revoke_subject(subject_hash: bytes32, before: uint256):
    """
    @dev Revokes every token of a subject issued before `before`.
    @notice Only the owner; `before` must be later than the current cut-off.
    @param subject_hash The 32-byte hash of the subject.
    @param before The 32-byte issue time before which tokens are revoked.
    """
    owned._check_owner()
    assert before > self.subject_revoked_before[subject_hash], "capability_authority: cut-off can only move forward"
    self.subject_revoked_before[subject_hash] = before
    log SubjectRevoked(subject_hash=subject_hash, before=before)


@external
def revoke_tenant(tenant_hash: bytes32, before: uint256):
    """
    @dev Revokes every token of a tenant issued before `before`.
    @notice Only the owner; `before` must be later than the current cut-off.
    @param tenant_hash The 32-byte hash of the tenant.
    @param before The 32-byte issue time before which tokens are revoked.
    """
    owned._check_owner()
    assert before > self.tenant_revoked_before[tenant_hash], "capability_authority: cut-off can only move forward"
    self.tenant_revoked_before[tenant_hash] = before
    log TenantRevoked(tenant_hash=tenant_hash, before=before)
