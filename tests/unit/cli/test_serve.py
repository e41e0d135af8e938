"""``apicredits serve``'s shared metrics directory for several workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from apicredits.cli import shared_metrics
from apicredits.gateway.metrics import MULTIPROCESS_ENV


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
