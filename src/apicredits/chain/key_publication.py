"""Publishing the gateway's token signing keys and revocations on chain (CapabilityAuthority).

So that a third party can check, from the chain alone, which keys could sign capability
tokens when, and which tokens, services and tenants were cut off. The database stays the
record the gateway acts on; the chain copy follows it: ``publish_key_ring`` registers every
key of the ring that the contract does not know yet and closes the validity of retired keys
at the end of their overlap window; ``publish_revocation`` mirrors one revocation. Hashes,
not names, go on chain: ``keccak256`` of the jti, of ``tenant:service`` and of the tenant id.
Every call is idempotent, so a leader can re-run it after a crash or a failover.
"""

from __future__ import annotations

import logging
from typing import Any

from eth_utils.crypto import keccak

from apicredits.auth.assertions import unb64url
from apicredits.auth.keys import KeyRing
from apicredits.chain.base import Chain
from apicredits.chain.deployment import Deployment

log = logging.getLogger(__name__)
ARTIFACT = "capability_authority"


def kid_bytes(kid: str) -> bytes:
    """The 32-byte on-chain id of a key: its RFC 7638 thumbprint, decoded."""
    return unb64url(kid)


def as_bytes(value: object) -> bytes:
    """A bytesN result, whichever way the backend returns it (bytes or 0x-hex)."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    assert isinstance(value, bytes | bytearray)
    return bytes(value)


def _published(chain: Chain, address: str, kid: bytes) -> tuple[bytes, int, int]:
    public_key, not_before, not_after = chain.call(address, ARTIFACT, "keys", kid)
    return as_bytes(public_key), int(not_before), int(not_after)


def publish_key_ring(chain: Chain, deployment: Deployment, ring: KeyRing) -> int:
    """Bring the contract up to date with ``ring``; returns the number of transactions sent."""
    address = deployment.address(ARTIFACT)
    sent = 0
    for key in (ring.current, *ring.previous):
        kid = kid_bytes(key.kid)
        public_key, _, not_after = _published(chain, address, kid)
        if public_key == bytes(32):
            chain.transact(address, ARTIFACT, "register_key", kid, key.public_raw, key.created_at)
            sent += 1
        if key.retired_at is not None and not_after == 0:
            end = key.retired_at + ring.overlap_seconds
            chain.transact(address, ARTIFACT, "retire_key", kid, end)
            sent += 1
    if sent:
        log.info("published %d signing-key change(s) to CapabilityAuthority %s", sent, address)
    return sent


def publish_revocation(
    chain: Chain, deployment: Deployment, kind: str, tenant_id: str, value: str, until: int
) -> None:
    """Mirror one revocation (see ``auth.revocation``) on chain."""
    address = deployment.address(ARTIFACT)
    args: tuple[Any, ...]
    if kind == "jti":
        fn, args = "revoke_token", (keccak(text=value),)
        if chain.call(address, ARTIFACT, "token_revoked", *args):
            return
    elif kind == "subject":
        fn, args = "revoke_subject", (keccak(text=f"{tenant_id}:{value}"), until)
        if chain.call(address, ARTIFACT, "subject_revoked_before", args[0]) >= until:
            return
    else:
        fn, args = "revoke_tenant", (keccak(text=tenant_id), until)
        if chain.call(address, ARTIFACT, "tenant_revoked_before", args[0]) >= until:
            return
    chain.transact(address, ARTIFACT, fn, *args)
