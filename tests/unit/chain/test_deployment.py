"""Deployment: contracts wired together, the deployment file, and its checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apicredits.chain import ChainError, DeploymentInvalid, deploy, load_deployment
from apicredits.chain.base import default_artifacts
from apicredits.chain.embedded import EmbeddedChain


@pytest.fixture(scope="module")
def chain() -> EmbeddedChain:
    return EmbeddedChain(None)


def test_deploy_wires_the_contracts_and_round_trips(chain: EmbeddedChain, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    d = deploy(chain, withdraw_delay_seconds=60, path=path)
    assert chain.call(d.address("credit_token"), "credit_token", "vault") == d.vault
    assert chain.call(d.vault, "credit_vault", "withdraw_delay") == 60
    assert chain.call(d.vault, "credit_vault", "is_operator", d.deployer) is True
    assert chain.call(d.vault, "credit_vault", "stablecoin") == d.stablecoin
    assert set(d.contracts) == {"stablecoin", "credit_token", "provider_registry",
                                "credit_vault", "capability_authority", "usage_receipts",
                                "settlement_treasury"}  # fmt: skip
    assert chain.call(d.vault, "credit_vault", "settler") == d.treasury
    assert chain.call(d.treasury, "settlement_treasury", "receipts") == d.receipts
    assert chain.call(d.treasury, "settlement_treasury", "fee_recipient") == d.deployer
    assert chain.call(d.receipts, "usage_receipts", "owner") == d.deployer
    assert chain.call(d.receipts, "usage_receipts", "threshold") == 0
    assert load_deployment(path, chain_id=chain.chain_id) == d
    doc = json.loads(path.read_text())
    assert doc["deploy_block"] == d.deploy_block
    assert doc["deployer"] == chain.accounts[0]


def test_a_deployment_file_without_the_settlement_contracts_still_loads(
    chain: EmbeddedChain, tmp_path: Path
) -> None:
    path = tmp_path / "deployment.json"
    deploy(chain, path=path)
    doc = json.loads(path.read_text())
    del doc["contracts"]["usage_receipts"], doc["contracts"]["settlement_treasury"]
    path.write_text(json.dumps(doc))
    d = load_deployment(path)
    assert "usage_receipts" not in d.contracts
    with pytest.raises(DeploymentInvalid, match="no settlement_treasury contract"):
        _ = d.treasury


def test_an_abi_mismatch_is_a_clear_error(chain: EmbeddedChain, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    deploy(chain, path=path)
    doc = json.loads(path.read_text())
    doc["contracts"]["credit_vault"]["abi_sha256"] = "0" * 64
    path.write_text(json.dumps(doc))
    with pytest.raises(DeploymentInvalid, match=r"credit_vault contract .* another ABI"):
        load_deployment(path)


def test_an_artifact_changed_since_deployment_is_refused(
    chain: EmbeddedChain, tmp_path: Path
) -> None:
    path = tmp_path / "deployment.json"
    deploy(chain, path=path)

    def changed(name: str) -> dict[str, object]:
        artifact = dict(default_artifacts(name))
        if name == "credit_token":
            artifact["abi"] = [*artifact["abi"], {"type": "function", "name": "new", "inputs": []}]
        return artifact

    with pytest.raises(DeploymentInvalid, match="credit_token"):
        load_deployment(path, artifacts=changed)


def test_missing_wrong_chain_and_garbage_files(chain: EmbeddedChain, tmp_path: Path) -> None:
    with pytest.raises(DeploymentInvalid, match="apicredits chain deploy"):
        load_deployment(tmp_path / "absent.json")
    path = tmp_path / "d.json"
    deploy(chain, path=path)
    with pytest.raises(DeploymentInvalid, match="not chain 8453"):
        load_deployment(path, chain_id=8453)
    path.write_text('{"format": 1}')
    with pytest.raises(DeploymentInvalid, match="not a deployment file"):
        load_deployment(path)


def test_real_networks_need_a_stablecoin_address() -> None:
    with pytest.raises(ChainError, match="stablecoin"):
        deploy(EmbeddedChain(None, chain_id=8453))
