"""Test money on local chains: mint test stablecoin, approve the vault, deposit."""

from __future__ import annotations

from apicredits.chain.base import Chain, Receipt
from apicredits.chain.deployment import Deployment
from apicredits.chain.errors import ChainError


def deposit_test_funds(
    chain: Chain, deployment: Deployment, *, tenant: str, amount: int, payer: str | None = None
) -> Receipt:
    """Mint ``amount`` test stablecoin to ``payer`` (default: ``tenant``), approve the vault
    and deposit it for ``tenant``; returns the deposit's receipt."""
    if deployment.contracts["stablecoin"].artifact != "test_stablecoin":
        raise ChainError("test funds exist only where the test stablecoin is deployed")
    payer = payer or tenant
    coin, vault = deployment.stablecoin, deployment.vault
    chain.transact(coin, "test_stablecoin", "mint", payer, amount, sender=deployment.deployer)
    chain.transact(coin, "test_stablecoin", "approve", vault, amount, sender=payer)
    return chain.transact(vault, "credit_vault", "deposit", tenant, amount, sender=payer)
