"""On-chain credits: contract artifacts, chain backends, deployment and the vault indexer.

One interface, ``Chain``, two backends: ``EmbeddedChain`` (titanoboa/py-evm in process,
journaled to disk; the default) and ``RpcChain`` (web3.py over JSON-RPC: anvil, Base, ...).
``connect(settings)`` picks one. ``deploy`` puts the contracts on a chain and writes a
deployment file that ``load_deployment`` checks against the installed ABIs. ``Indexer``
credits tenants' ledger accounts from the vault's ``Deposit`` events (and debits them on
``Withdraw``) exactly once, after N confirmations, reversing events a reorg removed.
Contracts are compiled by ``apicredits.chain.build`` into ``artifacts/<name>.json``.
The backends live in ``apicredits.chain.embedded`` and ``apicredits.chain.rpc`` (imported
on use: the embedded one loads the Vyper toolchain, which takes a second or two).
"""

from __future__ import annotations

from apicredits.chain.abi import ContractInterface, abi_hash
from apicredits.chain.base import Chain, EventLog, RawLog, Receipt
from apicredits.chain.connect import connect
from apicredits.chain.deployment import Deployment, deploy, load_deployment
from apicredits.chain.errors import (
    ChainError,
    ChainUnavailable,
    DeploymentInvalid,
    LogRangeTooLarge,
    TransactionReverted,
    WrongChain,
)
from apicredits.chain.faucet import deposit_test_funds
from apicredits.chain.indexer import Cursor, Indexer, SyncReport
from apicredits.chain.wallets import Wallets

__all__ = [
    "Chain",
    "ChainError",
    "ChainUnavailable",
    "ContractInterface",
    "Cursor",
    "Deployment",
    "DeploymentInvalid",
    "EventLog",
    "Indexer",
    "LogRangeTooLarge",
    "RawLog",
    "Receipt",
    "SyncReport",
    "TransactionReverted",
    "Wallets",
    "WrongChain",
    "abi_hash",
    "connect",
    "deploy",
    "deposit_test_funds",
    "load_deployment",
]
