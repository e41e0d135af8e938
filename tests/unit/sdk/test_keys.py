"""ServiceKey: generation, loading (PEM, JWK), naming (RFC 7638) and JWS signatures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from apicredits.auth.assertions import b64url, jwk_thumbprint, parse_client_jwk
from apicredits.auth.dpop import jwk_thumbprint as dpop_thumbprint
from apicredits.sdk import InvalidKey, ServiceKey

CURVES = ["Ed25519", "P-256"]
# RFC 8037 Appendix A.1: an Ed25519 private key, and (A.3) its thumbprint.
RFC8037_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_JKT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def private_jwk(key: ServiceKey) -> dict[str, str]:
    private = key._key
    if isinstance(private, Ed25519PrivateKey):
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return key.public_jwk(with_kid=False) | {"d": b64url(raw)}
    d = private.private_numbers().private_value.to_bytes(32, "big")
    return key.public_jwk(with_kid=False) | {"d": b64url(d)}


@pytest.mark.parametrize("curve", CURVES)
def test_generated_keys_register_and_name_themselves(curve: str) -> None:
    key = ServiceKey.generate(curve)  # type: ignore[arg-type]
    jwk = key.public_jwk()
    parse_client_jwk(jwk)  # the server accepts it for registration
    assert key.kid == key.thumbprint() == jwk_thumbprint(jwk) == dpop_thumbprint(jwk)
    assert jwk["alg"] == key.algorithm == ("EdDSA" if curve == "Ed25519" else "ES256")
    assert "d" not in jwk
    assert key.curve == curve
    assert "kid" not in key.public_jwk(with_kid=False)


def test_rfc8037_vector() -> None:
    key = ServiceKey.from_jwk(RFC8037_JWK)
    assert key.kid == key.thumbprint() == RFC8037_JKT
    assert key.public_jwk(with_kid=False) == {k: RFC8037_JWK[k] for k in ("kty", "crv", "x")}


@pytest.mark.parametrize("curve", CURVES)
def test_signatures_are_jws_shaped_and_verify(curve: str) -> None:
    key = ServiceKey.generate(curve)  # type: ignore[arg-type]
    signature = key.sign(b"payload")
    assert len(signature) == 64
    public = key._key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public.verify(der, b"payload", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):
            public.verify(der, b"other", ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(signature, b"payload")


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize("password", [None, b"correct horse"])
def test_pem_round_trip(curve: str, password: bytes | None, tmp_path: Path) -> None:
    key = ServiceKey.generate(curve)  # type: ignore[arg-type]
    path = tmp_path / "service.pem"
    path.write_bytes(key.private_pem(password))
    loaded = ServiceKey.from_pem_file(path, password=password)
    assert loaded.public_jwk() == key.public_jwk()
    assert ServiceKey.from_pem(key.private_pem().decode(), kid="svc-1").kid == "svc-1"


def test_sec1_ec_pem_loads() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    assert ServiceKey.from_pem(pem).curve == "P-256"


@pytest.mark.parametrize("curve", CURVES)
def test_private_jwk_round_trip(curve: str) -> None:
    key = ServiceKey.generate(curve)  # type: ignore[arg-type]
    jwk = private_jwk(key)
    assert ServiceKey.from_jwk(jwk).public_jwk() == key.public_jwk()
    assert ServiceKey.from_jwk(jwk | {"kid": "registered"}).kid == "registered"
    assert ServiceKey.from_jwk(jwk | {"kid": "registered"}, kid="explicit").kid == "explicit"
    assert ServiceKey.from_jwk(json.dumps(jwk)).kid == key.kid


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_JWK["x"]},  # public only
        RFC8037_JWK | {"x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},  # not its key
        RFC8037_JWK | {"d": "c2hvcnQ"},  # too short
        RFC8037_JWK | {"crv": "X25519"},
        {"kty": "EC", "crv": "P-256", "d": "AA"},
        {"kty": "EC", "crv": "P-256", "d": b64url(bytes(32))},  # zero is no key
        {"kty": "RSA", "d": "AQAB"},
        RFC8037_JWK | {"kid": 7},
    ],
)
def test_bad_private_jwks_are_refused(jwk: dict[str, object]) -> None:
    with pytest.raises(InvalidKey):
        ServiceKey.from_jwk(jwk)


def test_other_key_types_are_refused() -> None:
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(InvalidKey, match="Ed25519 or P-256"):
        ServiceKey.from_pem(rsa_pem)
    with pytest.raises(InvalidKey, match="P-256"):
        ServiceKey(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InvalidKey, match="PEM"):
        ServiceKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InvalidKey, match="curve"):
        ServiceKey.generate("secp256k1")  # type: ignore[arg-type]
    with pytest.raises(InvalidKey, match="JSON"):
        ServiceKey.from_jwk("{not json")


def test_repr_holds_no_secret() -> None:
    key = ServiceKey.from_jwk(RFC8037_JWK)
    assert repr(key) == f"ServiceKey(Ed25519, kid={RFC8037_JKT!r})"
    assert RFC8037_JWK["d"] not in repr(key)
