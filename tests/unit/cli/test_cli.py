"""``apicredits admin`` against a gateway served in process: output, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apicredits.demo import free_port, running_gateway
from apicredits.settings import Settings

TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("gw"), admin_token=TOKEN)
    with running_gateway(settings) as url:
        yield url


def cli(url: str, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APICREDITS_URL": url, "APICREDITS_ADMIN_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "apicredits", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok_json(url: str, *args: str) -> dict[str, object]:
    done = cli(url, "admin", "--json", *args)
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def test_tenant_deposit_balance(gateway: str) -> None:
    tenant = ok_json(gateway, "tenant", "create", "--name", "cli")
    tid = str(tenant["id"])
    ok_json(gateway, "deposit", tid, "--credits", "2.5", "--idempotency-key", "a")
    ok_json(gateway, "deposit", tid, "--credits", "2.5", "--idempotency-key", "a")  # retried
    balance = ok_json(gateway, "balance", tid)
    assert balance["available_micro"] == 2_500_000
    key = ok_json(gateway, "key", "create", tid, "--rpm", "60")
    assert str(key["key"]).startswith("ak_")
    ok_json(gateway, "lock", "create", tid, "j1", "1000")
    consumed = ok_json(gateway, "lock", "consume", tid, "j1", "400")
    assert consumed["released_micro"] == 600
    table = cli(gateway, "admin", "history", tid)
    assert table.returncode == 0
    assert "consume" in table.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("admin", "balance", "ten_missing"), "not_found"),
        (("admin", "deposit", "ten_missing", "--credits", "1.0000001"), "whole number"),
        (("admin", "deposit", "ten_missing", "5", "--credits", "1"), "either"),
        # "$KEY" unset: refused, not a fresh key (a retry would deposit twice)
        (("admin", "deposit", "ten_missing", "5", "--idempotency-key", ""), "idempotency_key"),
        (("admin", "tariff", "upload", "/no/such/file.toml"), "cannot read"),
    ],
)
def test_errors_are_one_line_with_nonzero_exit(
    gateway: str, args: tuple[str, ...], expected: str
) -> None:
    done = cli(gateway, *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("serve", "--port", "99999"), "'--port': Input should be less than or equal to 65535"),
        (("nosuch",), "No such command 'nosuch' (see 'python -m apicredits --help')"),
        (("admin", "balance"), "Missing argument 'tenant_id' (see 'python -m apicredits admin"),
        (("admin", "tenant", "list", "--bogus"), "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args: tuple[str, ...], expected: str) -> None:
    done = cli("http://127.0.0.1:1", *args)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: ")
    assert expected in done.stderr


def test_help_and_a_bare_group_print_the_help() -> None:
    done = cli("http://127.0.0.1:1", "admin", "--help")
    assert done.returncode == 0
    assert "Usage: python -m apicredits admin" in done.stdout
    bare = cli("http://127.0.0.1:1", "admin")
    assert "Usage: python -m apicredits admin" in bare.stdout + bare.stderr
    assert "error:" not in bare.stderr


def test_wrong_token_and_unreachable_server(gateway: str) -> None:
    done = cli(gateway, "admin", "tenant", "list", token="wrong")
    assert done.returncode == 1
    assert "unauthorized" in done.stderr
    dead = cli(f"http://127.0.0.1:{free_port()}", "admin", "tenant", "list")
    assert dead.returncode == 1
    assert "cannot reach" in dead.stderr


def test_tariff_upload_and_list(gateway: str, tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('effective_from = 0\n[models."x-1"]\nprovider = "p"\ninput_tokens = 5\n')
    up = ok_json(gateway, "tariff", "upload", str(path))
    assert up["version"] == 2
    listed = ok_json(gateway, "tariff", "list")
    assert [v["version"] for v in listed["versions"]] == [1, 2]  # type: ignore[attr-defined]
