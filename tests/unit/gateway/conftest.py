"""A provider simulator and a gateway in process (SQLite, in-process limits), and a funded
tenant with a key: what the data-plane tests talk to with the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apicredits.demo import serving
from apicredits.providers.simulator import create_sim_app
from gateway_support import Gateway, gateway_on, gateway_settings


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with serving(create_sim_app()) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("gw")
    settings = gateway_settings(
        sim_url, data_dir, max_body_bytes=65_536, sweep_interval_seconds=0.2
    )
    with gateway_on(settings) as gw:
        yield gw
