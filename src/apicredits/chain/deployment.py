"""Deploy the contracts and record where they are: the deployment file.

A deployment file (JSON) names the chain, the deployer, the block the deployment started
at (where the indexer starts), the withdrawal delay, and per role the contract's address,
artifact and ABI hash (sha256 of the artifact's canonical ABI JSON). Loading it checks the
hashes against the installed artifacts, so code never talks to a contract through an ABI
it was not deployed with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apicredits.chain.abi import abi_hash
from apicredits.chain.base import ArtifactLoader, Chain, default_artifacts
from apicredits.chain.errors import ChainError, DeploymentInvalid
from apicredits.chain.keys import ANVIL_CHAIN_ID

FORMAT = 1
LOCAL_CHAIN_IDS = frozenset({ANVIL_CHAIN_ID, 1337})


@dataclass(frozen=True, slots=True)
class DeployedContract:
    artifact: str
    address: str
    abi_sha256: str


@dataclass(frozen=True, slots=True)
class Deployment:
    chain_id: int
    deployer: str
    deploy_block: int
    withdraw_delay_seconds: int
    contracts: Mapping[str, DeployedContract] = field(default_factory=dict)

    def address(self, role: str) -> str:
        try:
            return self.contracts[role].address
        except KeyError:
            raise DeploymentInvalid(f"the deployment has no {role} contract") from None

    @property
    def vault(self) -> str:
        return self.address("credit_vault")

    @property
    def stablecoin(self) -> str:
        return self.address("stablecoin")

    @property
    def receipts(self) -> str:
        return self.address("usage_receipts")

    @property
    def treasury(self) -> str:
        return self.address("settlement_treasury")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "deployer": self.deployer,
            "deploy_block": self.deploy_block,
            "withdraw_delay_seconds": self.withdraw_delay_seconds,
            "contracts": {
                role: {"artifact": c.artifact, "address": c.address, "abi_sha256": c.abi_sha256}
                for role, c in sorted(self.contracts.items())
            },
        }


def deploy(
    chain: Chain,
    *,
    withdraw_delay_seconds: int = 86400,
    stablecoin: str | None = None,
    dispute_window_seconds: int = 3600,
    fee_recipient: str | None = None,
    path: Path | None = None,
) -> Deployment:
    """Deploy credit token, provider registry, credit vault, capability authority, usage
    receipts and settlement treasury (and, on a local chain without ``stablecoin``, a test
    stablecoin), wire the token to the vault, make the deployer a vault operator and the
    treasury the vault's settler, and write the deployment file to ``path``.

    Receipts and treasury share ``dispute_window_seconds``; the treasury's fees go to
    ``fee_recipient`` (default: the deployer). Oracles and their threshold are registered
    on the receipts contract afterwards, by its owner (the deployer)."""
    deployer = chain.default_sender
    start = chain.block_number() + 1
    contracts: dict[str, DeployedContract] = {}

    def put(role: str, artifact: str, *args: Any) -> str:
        address = chain.deploy(artifact, *args, sender=deployer)
        contracts[role] = DeployedContract(artifact, address, chain.interface(artifact).abi_hash)
        return address

    if stablecoin is None:
        if chain.chain_id not in LOCAL_CHAIN_IDS:
            raise ChainError(
                f"chain {chain.chain_id} is not a local chain: give the stablecoin's address"
            )
        stablecoin = put("stablecoin", "test_stablecoin")
    credit = put("credit_token", "credit_token")
    registry = put("provider_registry", "provider_registry")
    delay = withdraw_delay_seconds
    vault = put("credit_vault", "credit_vault", stablecoin, credit, delay, registry)
    put("capability_authority", "capability_authority")
    window = dispute_window_seconds
    receipts = put("usage_receipts", "usage_receipts", window)
    fees = fee_recipient or deployer
    treasury = put(
        "settlement_treasury", "settlement_treasury", receipts, vault, registry, fees, window
    )
    chain.transact(credit, "credit_token", "set_vault", vault, sender=deployer)
    chain.transact(vault, "credit_vault", "set_operator", deployer, True, sender=deployer)
    chain.transact(vault, "credit_vault", "set_settler", treasury, sender=deployer)
    deployment = Deployment(chain.chain_id, deployer, start, withdraw_delay_seconds, contracts)
    if path is not None:
        write_deployment(deployment, path)
    return deployment


def write_deployment(deployment: Deployment, path: Path) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(deployment.to_dict(), indent=2) + "\n", "utf-8")
    os.replace(tmp, path)


def load_deployment(
    path: Path, *, chain_id: int | None = None, artifacts: ArtifactLoader | None = None
) -> Deployment:
    """Read and check a deployment file: its chain and every contract's ABI hash."""
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DeploymentInvalid(
            f"no deployment file at {path}; run `apicredits chain deploy` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise DeploymentInvalid(f"cannot read deployment file {path}: {exc}") from None
    try:
        if doc["format"] != FORMAT:
            raise DeploymentInvalid(f"{path} has format {doc['format']}, expected {FORMAT}")
        contracts = {
            role: DeployedContract(c["artifact"], c["address"], c["abi_sha256"])
            for role, c in doc["contracts"].items()
        }
        deployment = Deployment(
            int(doc["chain_id"]),
            str(doc["deployer"]),
            int(doc["deploy_block"]),
            int(doc["withdraw_delay_seconds"]),
            contracts,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeploymentInvalid(f"{path} is not a deployment file ({exc!r})") from None
    if chain_id is not None and deployment.chain_id != chain_id:
        raise DeploymentInvalid(
            f"{path} is a deployment on chain {deployment.chain_id}, not chain {chain_id}"
        )
    load = artifacts or default_artifacts
    for role, contract in contracts.items():
        installed = abi_hash(load(contract.artifact)["abi"])
        if installed != contract.abi_sha256:
            raise DeploymentInvalid(
                f"the {role} contract in {path} was deployed with another ABI "
                f"(sha256 {contract.abi_sha256[:12]}…, installed {installed[:12]}…); "
                "redeploy with `apicredits chain deploy`",
                role=role,
            )
    return deployment
