"""The one writer of secret files: 0600, atomic, and never clobbering a racing creator."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from apicredits.secret_files import write_secret


def test_a_secret_is_written_0600_with_its_parents_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "key.pem"
    old = os.umask(0)
    try:
        assert write_secret(path, b"secret", replace=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"secret"
    assert os.listdir(path.parent) == ["key.pem"]


def test_without_replace_an_existing_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    assert write_secret(path, b"first", replace=False)
    assert not write_secret(path, b"second", replace=False)
    assert path.read_bytes() == b"first"
    assert write_secret(path, b"third", replace=True)
    assert path.read_bytes() == b"third"
    assert os.listdir(tmp_path) == ["key.pem"]


def test_a_file_created_meanwhile_by_another_process_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.pem"
    real_link = os.link

    def racing_link(source: Path, destination: Path) -> None:
        destination.write_bytes(b"the winner's")  # another process got there first
        real_link(source, destination)

    monkeypatch.setattr(os, "link", racing_link)
    assert not write_secret(path, b"ours", replace=False)
    assert path.read_bytes() == b"the winner's"
    assert os.listdir(tmp_path) == ["key.pem"]  # our temporary is gone
