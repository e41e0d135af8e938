"""``apicredits oracle keygen`` and ``apicredits verify``'s one-line errors (the commands
against a chain are exercised on anvil in tests/integration/oracle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apicredits.oracle.bls import OracleKey, verify_pop


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APICREDITS_DATA_DIR": str(tmp), "APICREDITS_CONFIG": str(tmp / "x")}
    return subprocess.run(
        [sys.executable, "-m", "apicredits", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_keygen_writes_a_private_key_and_prints_its_public_key_and_pop(tmp_path: Path) -> None:
    out = tmp_path / "oracle.key"
    done = cli(tmp_path, "oracle", "keygen", "--out", str(out))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    key = OracleKey.from_bytes(bytes.fromhex(out.read_text().strip()))
    assert out.stat().st_mode & 0o777 == 0o600
    assert shown["public_key"] == "0x" + key.public_key.hex()
    assert verify_pop(key.public_key, bytes.fromhex(shown["proof_of_possession"][2:]))
    again = cli(tmp_path, "oracle", "keygen", "--out", str(out))
    assert again.returncode == 1
    assert again.stderr == f"error: {out} exists; not overwriting a secret key\n"


def test_verify_reports_an_unreadable_receipt_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "receipt.json"
    bad.write_text("[1, 2]")
    done = cli(tmp_path, "verify", str(bad), "--rpc", "http://127.0.0.1:1")
    assert done.returncode == 1
    assert done.stderr == f"error: {bad} holds no receipt objects\n"
