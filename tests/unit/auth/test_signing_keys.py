from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from apicredits.auth.assertions import jwk_thumbprint
from apicredits.auth.errors import TokenError
from apicredits.auth.keys import KeyRing, SigningKey
from apicredits.errors import InvalidInput

NOW = 1_700_000_000


def test_kid_is_the_rfc7638_thumbprint_of_the_public_key() -> None:
    key = SigningKey.generate(NOW)
    assert key.kid == jwk_thumbprint(key.public_jwk(with_kid=False))
    assert key.public_jwk() == {"kty": "OKP", "crv": "Ed25519", "x": key.public_jwk()["x"],
                                "kid": key.kid, "alg": "EdDSA", "use": "sig"}  # fmt: skip
    assert "d" not in key.public_jwk()
    assert "private" not in repr(key).lower()
    with pytest.raises(InvalidInput):
        SigningKey("not-the-thumbprint", key.private_key, NOW)


def test_rotate_retires_the_current_key() -> None:
    ring = KeyRing.create(NOW, overlap_seconds=600)
    rotated = ring.rotate(NOW + 100)
    assert rotated.current.kid != ring.current.kid
    assert rotated.current.retired_at is None
    assert [k.kid for k in rotated.previous] == [ring.current.kid]
    assert rotated.previous[0].retired_at == NOW + 100
    assert rotated.overlap_seconds == 600
    assert ring.current.retired_at is None  # the old ring is unchanged


def test_jwks_publishes_only_keys_that_still_verify() -> None:
    ring = KeyRing.create(NOW, overlap_seconds=600).rotate(NOW + 100)
    during = {k["kid"] for k in ring.jwks(NOW + 699)["keys"]}
    assert during == {ring.current.kid, ring.previous[0].kid}
    assert [k["kid"] for k in ring.jwks(NOW + 700)["keys"]] == [ring.current.kid]
    assert all(set(k) == {"kty", "crv", "x", "kid", "alg", "use"} for k in ring.jwks(NOW)["keys"])


def test_verification_key_reasons() -> None:
    ring = KeyRing.create(NOW, overlap_seconds=600).rotate(NOW + 100)
    old = ring.previous[0].kid
    assert ring.verification_key(old, NOW + 699).kid == old
    with pytest.raises(TokenError) as caught:
        ring.verification_key(old, NOW + 700)
    assert caught.value.reason == "key_retired"
    for kid in ("nope", None, 3, ["x"]):
        with pytest.raises(TokenError) as caught:
            ring.verification_key(kid, NOW)
        assert caught.value.reason == "unknown_key"


def test_old_keys_are_dropped_after_twice_the_overlap() -> None:
    ring = KeyRing.create(NOW, overlap_seconds=600).rotate(NOW)
    assert len(ring.rotate(NOW + 1199).previous) == 2
    assert len(ring.rotate(NOW + 1200).previous) == 1


def test_document_round_trip() -> None:
    ring = KeyRing.create(NOW).rotate(NOW + 5).rotate(NOW + 10)
    document = json.loads(json.dumps(ring.to_document()))
    assert document["keys"][0]["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    again = KeyRing.from_document(document)
    assert again == ring
    assert again.current.public_raw == ring.current.public_raw


@pytest.mark.parametrize(
    "mutate",
    [lambda d: d.pop("version"), lambda d: d.update(version=2), lambda d: d.update(keys=[]),
     lambda d: d["keys"][0].update(private_key_pem="junk"),
     lambda d: d["keys"][0].update(created_at=-1), lambda d: d["keys"][0].update(kid="x"),
     lambda d: d["keys"][0].update(retired_at=NOW), lambda d: d.update(overlap_seconds=1.5),
     lambda d: d["keys"].append(d["keys"][0])],
)  # fmt: skip
def test_bad_documents_are_invalid_input(mutate: object) -> None:
    document = KeyRing.create(NOW).to_document()
    mutate(document)  # type: ignore[operator]
    with pytest.raises(InvalidInput):
        KeyRing.from_document(document)


def test_load_or_create_makes_a_private_file_once(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "signing-keys.json"
    ring = KeyRing.load_or_create(path, NOW)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KeyRing.load_or_create(path, NOW + 50) == ring
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_save_replaces_atomically_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    ring = KeyRing.load_or_create(path, NOW)
    rotated = ring.rotate(NOW + 1)
    rotated.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KeyRing.load_or_create(path, NOW + 2) == rotated


def test_load_of_garbage_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"\xff not json")
    with pytest.raises(InvalidInput):
        KeyRing.load_or_create(path, NOW)


def test_ring_invariants() -> None:
    a = SigningKey.generate(NOW)
    with pytest.raises(InvalidInput):
        KeyRing(SigningKey(a.kid, a.private_key, NOW, NOW + 1))
    with pytest.raises(InvalidInput):
        KeyRing(a, (SigningKey.generate(NOW),))
    with pytest.raises(InvalidInput):
        KeyRing(a, overlap_seconds=-1)
    with pytest.raises(InvalidInput):
        SigningKey(a.kid, a.private_key, NOW, NOW - 1)
