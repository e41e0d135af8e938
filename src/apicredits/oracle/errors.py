"""Errors of the settlement oracle's cryptographic core.

ApicreditsError
└── OracleError            400 oracle_error
    ├── BlsEncodingError   400 invalid_bls_encoding  a point that is not a valid EIP-2537
    │                                                 G1/G2 encoding in the prime-order subgroup
    ├── OracleKeyError     400 invalid_oracle_key    a secret key outside [1, r)
    ├── MerkleError        400 invalid_merkle_input  values that do not fit the leaf types,
    │                                                 an empty tree, an index out of range
    └── MessageError       400 invalid_oracle_message a settlement line or epoch summary
                                                      field out of its ABI range
"""

from __future__ import annotations

from apicredits.errors import ApicreditsError

__all__ = ["BlsEncodingError", "MerkleError", "MessageError", "OracleError", "OracleKeyError"]


class OracleError(ApicreditsError):
    code = "oracle_error"
    status = 400


class BlsEncodingError(OracleError):
    code = "invalid_bls_encoding"


class OracleKeyError(OracleError):
    code = "invalid_oracle_key"


class MerkleError(OracleError):
    code = "invalid_merkle_input"


class MessageError(OracleError):
    code = "invalid_oracle_message"
