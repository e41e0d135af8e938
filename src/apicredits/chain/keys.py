"""Keys that sign chain transactions: dev accounts and the configured deployer.

The dev accounts are anvil's (and hardhat's) well-known test mnemonic, so the embedded
chain and a local anvil share the same funded addresses. They are public: never use them
on a real network.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from apicredits.chain.errors import ChainError

DEV_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337


@functools.cache
def dev_accounts(count: int = 10) -> tuple[LocalAccount, ...]:
    """The first ``count`` accounts of the dev mnemonic (m/44'/60'/0'/0/i)."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        for i in range(count)
    )


def account_from_private_key(key: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError) as exc:
        raise ChainError(f"APICREDITS_CHAIN_PRIVATE_KEY is not a private key: {exc}") from None
    return account


def account_from_keyfile(path: Path, password: str) -> LocalAccount:
    """An eth-account encrypted JSON keystore (what ``Account.encrypt`` / geth write)."""
    try:
        keystore = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ChainError(f"cannot read keyfile {path}: {exc}") from None
    try:
        account: LocalAccount = Account.from_key(Account.decrypt(keystore, password))
    except ValueError:
        raise ChainError(f"wrong password for keyfile {path}") from None
    return account


def write_keyfile(account: LocalAccount, path: Path, password: str) -> None:
    """Encrypt ``account`` into a keystore file (0600), e.g. for tests and set-up."""
    import os

    keystore = Account.encrypt(account.key, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keystore, fh)
