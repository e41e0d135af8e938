"""From ``Settings`` to a ``Chain``: the embedded one by default, JSON-RPC when a URL is set."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from apicredits.chain.base import Chain
from apicredits.chain.errors import ChainError
from apicredits.chain.keys import account_from_keyfile, account_from_private_key
from apicredits.settings import Settings

RPC_CONFIRMATIONS = 2


def chain_dir(settings: Settings) -> Path:
    return settings.data_dir / "chain"


def deployment_path(settings: Settings, chain_id: int) -> Path:
    if settings.chain_deployment_file is not None:
        return settings.chain_deployment_file
    return chain_dir(settings) / f"deployment-{chain_id}.json"


def confirmations(settings: Settings) -> int:
    """Blocks a vault event must be buried under before the indexer applies it."""
    if settings.chain_confirmations is not None:
        return settings.chain_confirmations
    return RPC_CONFIRMATIONS if settings.chain_rpc_url else 0


def configured_signer(settings: Settings) -> LocalAccount | None:
    """The deployer key: a keyfile (+ password or password file) or a raw private key."""
    if settings.chain_keyfile is not None:
        password = settings.chain_keyfile_password
        if password is not None:
            secret = password.get_secret_value()
        elif settings.chain_keyfile_password_file is not None:
            secret = settings.chain_keyfile_password_file.read_text("utf-8").strip()
        else:
            raise ChainError(
                "APICREDITS_CHAIN_KEYFILE needs APICREDITS_CHAIN_KEYFILE_PASSWORD "
                "or APICREDITS_CHAIN_KEYFILE_PASSWORD_FILE"
            )
        return account_from_keyfile(settings.chain_keyfile, secret)
    if settings.chain_private_key is not None:
        return account_from_private_key(settings.chain_private_key.get_secret_value())
    return None


def connect(settings: Settings) -> Chain:
    """The configured chain. Close it when done."""
    if settings.chain_rpc_url:
        from apicredits.chain.rpc import RpcChain

        return RpcChain(
            settings.chain_rpc_url,
            chain_id=settings.chain_id,
            signer=configured_signer(settings),
            max_log_range=settings.chain_log_range,
        )
    from apicredits.chain.embedded import EMBEDDED_CHAIN_ID, EmbeddedChain

    return EmbeddedChain(
        chain_dir(settings) / "embedded.sqlite3", chain_id=settings.chain_id or EMBEDDED_CHAIN_ID
    )
