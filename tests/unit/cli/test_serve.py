"""``apicredits serve``: the shared metrics directory of several workers, and what it
refuses before serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from apicredits.cli import shared_metrics
from apicredits.gateway.metrics import MULTIPROCESS_ENV
from gateway_support import start_gateway, stop


def test_several_workers_get_a_fresh_directory_removed_at_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    with shared_metrics(tmp_path, 3):
        directory = Path(os.environ[MULTIPROCESS_ENV])
        assert directory.parent == tmp_path
        assert directory.is_dir()
        assert list(directory.iterdir()) == []
        (directory / "counter_123.db").write_bytes(b"x")  # what a worker writes
    assert MULTIPROCESS_ENV not in os.environ
    assert not directory.exists()


def test_one_worker_keeps_its_metrics_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    with shared_metrics(tmp_path, 1):
        assert MULTIPROCESS_ENV not in os.environ
    assert list(tmp_path.iterdir()) == []


def test_a_directory_given_by_the_operator_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    monkeypatch.setenv(MULTIPROCESS_ENV, str(theirs))
    with shared_metrics(tmp_path, 4):
        assert os.environ[MULTIPROCESS_ENV] == str(theirs)
    assert theirs.is_dir()
    assert os.environ[MULTIPROCESS_ENV] == str(theirs)


def test_serve_bounds_the_graceful_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from apicredits.cli import _run_uvicorn
    from apicredits.settings import Settings

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    _run_uvicorn(Settings(data_dir=tmp_path, shutdown_timeout_seconds=7), None, None, 2, False)
    assert seen["timeout_graceful_shutdown"] == 7
    assert seen["workers"] == 2
    with pytest.raises(ValueError, match="shutdown_timeout_seconds"):
        Settings(data_dir=tmp_path, shutdown_timeout_seconds=0)


def _apicredits(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apicredits", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("port = \n", "apicredits.toml is not valid TOML: Invalid value (at line 1, column 8)"),
        (
            '[models."a"]\nprovider = "nope"\n',
            "model 'a' routes to unknown provider 'nope'",
        ),
        (
            '[providers.local]\nbase_url = "ftp://10.0.0.5"\n',
            "invalid setting providers.local.base_url: an http:// or https:// URL with a host "
            "is needed, got 'ftp://10.0.0.5'",
        ),
        ('tariff_file = "nope.toml"\n', "No such file or directory: nope.toml"),
        (
            'redis_url = "127.0.0.1:6379"\n',
            "invalid setting redis_url: a redis://, rediss:// or unix:// URL is needed, "
            "got '127.0.0.1:6379'",
        ),
        (
            'metering_key_file = "apicredits.toml"\n',  # this very file: not a key
            "the metering key is not a secp256k1 key: non-hexadecimal number found in "
            "fromhex() arg at position 0",
        ),
        (
            'chain_deployment_file = "gone.json"\n',
            "no deployment file at gone.json; run `apicredits chain deploy` first",
        ),
        (
            '[providers.local]\nbase_url = "http://10.0.0.5"\ndialects = ["grpc"]\n',
            "invalid setting providers.local.dialects.0: Input should be 'openai', 'anthropic' "
            "or 'gemini'",
        ),
        (
            'sim_url = "127.0.0.1:9100"\n',
            "invalid setting sim_url: an http:// or https:// URL with a host is needed, "
            "got '127.0.0.1:9100'",
        ),
    ],
)
def test_a_config_it_cannot_serve_is_one_line_before_serving(
    tmp_path: Path, config: str, error: str
) -> None:
    (tmp_path / "apicredits.toml").write_text(config)
    done = subprocess.run(
        [sys.executable, "-m", "apicredits", "serve", "--port", "1"],  # never bound
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k != "APICREDITS_CONFIG"},
            "APICREDITS_DATA_DIR": str(tmp_path / "data"),
        },
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: {error}"]


def test_a_data_directory_it_cannot_make_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _apicredits("serve", APICREDITS_DATA_DIR=str(blocker / "data"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: Not a directory: {blocker / 'data'}"]


@pytest.mark.parametrize("command", ["serve", "provider-sim"])
@pytest.mark.parametrize("port", ["0", "65536"])
def test_a_port_out_of_range_is_refused_before_serving(
    tmp_path: Path, command: str, port: str
) -> None:
    done = _apicredits(command, "--port", port, APICREDITS_DATA_DIR=str(tmp_path))
    assert done.returncode == 2  # a usage error, before anything starts
    assert "'--port'" in done.stderr


@pytest.mark.parametrize("command", [("serve",), ("db", "upgrade")])
def test_a_database_it_cannot_open_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    done = _apicredits(
        *command,
        APICREDITS_DATA_DIR=str(tmp_path),
        APICREDITS_DATABASE_URL=f"sqlite:///{tmp_path}",  # a directory, not a database file
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if not line.startswith("admin token:")]
    assert lines == ["error: database: unable to open database file"]


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 500)  # not an outage: no retry will mend it
    done = _apicredits("db", "upgrade", APICREDITS_DATABASE_URL=f"sqlite:///{garbage}")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: database: file is not a database"]


def test_a_served_worker_outlives_json_nested_a_million_levels(tmp_path: Path) -> None:
    # Unauthenticated, and read before anything else: the C decoder, left to the
    # recursion limit py_ecc sets, would have overflowed the worker's stack on it.
    proc, url = start_gateway(tmp_path, 1, {})
    try:
        for path in ("/v1/chat/completions", "/v1/messages", "/admin/v1/siwe/login"):
            r = httpx.post(
                url + path, content=b"[" * 1_000_000, headers={"content-type": "application/json"}
            )
            assert r.status_code == 400, (path, r.text)
        assert httpx.get(f"{url}/healthz").status_code == 200  # one worker: the process
        assert proc.poll() is None
    finally:
        stop(proc)
