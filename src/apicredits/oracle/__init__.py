"""The settlement oracle's pure core: BLS signatures (``bls``), OpenZeppelin-compatible Merkle
trees (``merkle``) and the exact messages the settlement contracts verify (``messages``).

The runtime, imported on use (it needs the database and the chain): ``validation`` (an
event's signature, signer, tariff math and lock limits), ``epochs`` (sealing and both
trees), ``node`` (one oracle's HTTP signing service), ``aggregator`` (t-of-n collection,
submission and line execution: ``apicredits settle``) and ``verify`` (a receipt against the
chain: ``apicredits verify``)."""

from __future__ import annotations

from apicredits.oracle.bls import (
    OracleKey,
    aggregate_public_keys,
    aggregate_signatures,
    verify,
    verify_aggregate,
    verify_pop,
)
from apicredits.oracle.errors import (
    BlsEncodingError,
    MerkleError,
    MessageError,
    OracleError,
    OracleKeyError,
)
from apicredits.oracle.merkle import MerkleTree, verify_proof
from apicredits.oracle.messages import (
    EpochSummary,
    SettlementLine,
    event_id,
    job_id,
    provider_id,
    usage_event_leaf,
)

__all__ = [
    "BlsEncodingError",
    "EpochSummary",
    "MerkleError",
    "MerkleTree",
    "MessageError",
    "OracleError",
    "OracleKey",
    "OracleKeyError",
    "SettlementLine",
    "aggregate_public_keys",
    "aggregate_signatures",
    "event_id",
    "job_id",
    "provider_id",
    "usage_event_leaf",
    "verify",
    "verify_aggregate",
    "verify_pop",
    "verify_proof",
]
