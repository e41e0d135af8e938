"""A real anvil per test module (skips without the binary; fails under CI=true)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from apicredits.chain.anvil import INSTALL_HINT, find_anvil, running_anvil


def require_anvil() -> None:
    if find_anvil() is not None:
        return
    message = f"anvil is not installed; {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    require_anvil()
    with running_anvil() as url:
        yield url
