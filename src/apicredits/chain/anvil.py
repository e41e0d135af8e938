"""Find and run a local anvil (Foundry's dev node).

``make venv`` installs the npm package ``@foundry-rs/anvil`` into ``.tools/``; its binary
lives in the platform package ``@foundry-rs/anvil-<os>-<arch>/bin/anvil`` (the
``node_modules/.bin/anvil`` wrapper only re-launches it through node). ``APICREDITS_ANVIL``
names another binary; an ``anvil`` on PATH is the last resort.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apicredits.chain.errors import ChainUnavailable

ANVIL_VERSION = "1.7.1"
REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL_HINT = "`make venv` installs it (npm package @foundry-rs/anvil) into .tools/"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def _candidates() -> Iterator[Path]:
    override = os.environ.get("APICREDITS_ANVIL")
    if override:
        yield Path(override)
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, "")
    arch = _ARCH.get(platform.machine().lower(), "")
    exe = "anvil.exe" if system == "win32" else "anvil"
    for root in dict.fromkeys([Path.cwd(), REPO_ROOT]):
        modules = root / ".tools" / "node_modules"
        yield modules / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / exe
        yield modules / ".bin" / "anvil"
    found = shutil.which("anvil")
    if found:
        yield Path(found)


def find_anvil() -> Path | None:
    """The anvil binary to run, or None if none is installed."""
    for path in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def require_anvil() -> Path:
    path = find_anvil()
    if path is None:
        raise ChainUnavailable(f"anvil is not installed; {INSTALL_HINT}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def anvil_command(
    port: int, *, state: Path | None = None, chain_id: int | None = None, block_time: int = 0
) -> list[str]:
    """The command line of a Prague anvil on 127.0.0.1:``port``; ``state`` is loaded at
    start and dumped on exit (and every 60 s), so the chain survives restarts."""
    command = [str(require_anvil()), "--hardfork", "prague", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        command += ["--state", str(state), "--state-interval", "60"]
    if chain_id is not None:
        command += ["--chain-id", str(chain_id)]
    if block_time:
        command += ["--block-time", str(block_time)]
    return command


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChainUnavailable(f"anvil exited with status {process.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ChainUnavailable(f"anvil did not listen on port {port} within {timeout:.0f}s")


@contextmanager
def running_anvil(
    port: int | None = None, *, state: Path | None = None, chain_id: int | None = None
) -> Iterator[str]:
    """Run anvil on a free port for the block's duration; yields its RPC URL."""
    port = port or free_port()
    process = subprocess.Popen(
        anvil_command(port, state=state, chain_id=chain_id),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
