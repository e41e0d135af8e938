"""The committed artifacts are exactly what ``apicredits.chain.build`` makes of ``contracts/``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import vyper

from apicredits.chain import build

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
COMMITTED = Path(build.__file__).resolve().parent / "artifacts"
NAMES = sorted(p.stem for p in CONTRACTS.glob("*.vy"))


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("artifacts")
    return {path.stem: path for path in build.build_all(CONTRACTS, out)}


def test_every_contract_has_an_artifact_and_no_more() -> None:
    assert NAMES == [
        "capability_authority",
        "credit_token",
        "credit_vault",
        "provider_registry",
        "settlement_treasury",
        "test_stablecoin",
        "usage_receipts",
    ]
    assert sorted(p.stem for p in COMMITTED.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_artifact_matches_source(name: str, rebuilt: dict[str, Path]) -> None:
    committed = build.load_artifact(name)
    fresh = json.loads(rebuilt[name].read_text())
    source_hash = hashlib.sha256((CONTRACTS / f"{name}.vy").read_bytes()).hexdigest()
    assert committed["source_sha256"] == fresh["source_sha256"] == source_hash, (
        f"{name}.vy changed: run `python -m apicredits.chain.build`"
    )
    assert committed["abi"] == fresh["abi"]
    assert committed["bytecode"] == fresh["bytecode"]
    assert committed["bytecode"].startswith("0x")
    assert len(committed["bytecode"]) > 1000
    assert committed["contract"] == name
    assert committed["evm_version"] == "prague"
    assert committed["vyper"] == vyper.__version__


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_is_byte_identical(name: str, rebuilt: dict[str, Path]) -> None:
    text = rebuilt[name].read_text()
    assert text == (COMMITTED / f"{name}.json").read_text()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_unknown_artifact_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no compiled artifact named 'nope'"):
        build.load_artifact("nope")


def test_build_all_of_an_empty_directory_writes_nothing(tmp_path: Path) -> None:
    assert build.build_all(tmp_path, tmp_path / "out") == []
    assert list((tmp_path / "out").iterdir()) == []
