"""A provider simulator and a gateway in process (SQLite, in-process limits), and a funded
tenant with a key: what the data-plane tests talk to with the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from apicredits.demo import running_gateway, serving
from apicredits.providers.simulator import create_sim_app
from apicredits.settings import Settings
from gateway_support import Gateway

ADMIN = "dataplane-admin"


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with serving(create_sim_app()) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("gw"),
        admin_token=ADMIN,
        sim_url=sim_url,
        upstream_timeout_seconds=2.0,
        max_body_bytes=65_536,
        sweep_interval_seconds=0.2,
    )
    with (
        running_gateway(settings) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        ) as admin,
    ):
        yield Gateway(url, admin)
