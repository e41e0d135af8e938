"""From settings to a chain: the embedded default, deployer keys, anvil lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from apicredits.chain import ChainError, connect
from apicredits.chain.anvil import anvil_command, find_anvil
from apicredits.chain.connect import configured_signer, confirmations, deployment_path
from apicredits.chain.embedded import EmbeddedChain
from apicredits.chain.keys import dev_accounts, write_keyfile
from apicredits.settings import Settings


def test_embedded_by_default_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    chain = connect(settings)
    try:
        assert isinstance(chain, EmbeddedChain)
        assert chain.chain_id == 1337
        assert (tmp_path / "chain" / "embedded.sqlite3").exists()
    finally:
        chain.close()
    assert deployment_path(settings, 1337) == tmp_path / "chain" / "deployment-1337.json"
    assert confirmations(settings) == 0
    assert confirmations(Settings(data_dir=tmp_path, chain_rpc_url="http://x")) == 2
    assert confirmations(Settings(chain_rpc_url="http://x", chain_confirmations=5)) == 5


def test_dev_accounts_are_anvils() -> None:
    assert dev_accounts()[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_deployer_from_keyfile_or_private_key(tmp_path: Path) -> None:
    account = Account.create()
    keyfile = tmp_path / "key.json"
    write_keyfile(account, keyfile, "pw")
    s = Settings(chain_keyfile=keyfile, chain_keyfile_password="pw")
    assert configured_signer(s).address == account.address  # type: ignore[union-attr]
    (tmp_path / "pw").write_text("pw\n")
    s = Settings(chain_keyfile=keyfile, chain_keyfile_password_file=tmp_path / "pw")
    assert configured_signer(s).address == account.address  # type: ignore[union-attr]
    with pytest.raises(ChainError, match="wrong password"):
        configured_signer(Settings(chain_keyfile=keyfile, chain_keyfile_password="no"))
    with pytest.raises(ChainError, match="PASSWORD"):
        configured_signer(Settings(chain_keyfile=keyfile))
    s = Settings(chain_private_key=account.key.hex())
    assert configured_signer(s).address == account.address  # type: ignore[union-attr]
    with pytest.raises(ChainError, match="not a private key"):
        configured_signer(Settings(chain_private_key="0x12"))
    assert configured_signer(Settings()) is None


def test_anvil_override_and_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("APICREDITS_ANVIL", str(fake))
    assert find_anvil() == fake
    command = anvil_command(8555, state=tmp_path / "s.json", chain_id=7)
    assert command[0] == str(fake)
    assert command[1:3] == ["--hardfork", "prague"]
    assert "--state" in command
    assert "8555" in command
    assert "7" in command
