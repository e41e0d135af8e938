"""``/admin/v1/tenants/{id}/wallet``: link a wallet, and deposits made before are credited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from eth_account import Account
from test_signin import signed_login

from apicredits.chain import Chain, Deployment, deposit_test_funds
from apicredits.demo import embedded_deployment, running_gateway
from apicredits.settings import Settings
from gateway_support import Gateway

ADMIN = "wallet-admin"


@dataclass
class OnChain:
    url: str
    admin: httpx.Client
    chain: Chain
    deployment: Deployment

    def tenant(self) -> str:
        return str(self.admin.post("/admin/v1/tenants", json={"name": "acme"}).json()["id"])

    def available(self, tenant_id: str) -> int:
        r = self.admin.get(f"/admin/v1/tenants/{tenant_id}/balance")
        return int(r.json()["available_micro"])

    def wait_available(self, tenant_id: str, expected: int) -> int:
        deadline = time.monotonic() + 10
        while (found := self.available(tenant_id)) != expected and time.monotonic() < deadline:
            time.sleep(0.02)
        return found


@pytest.fixture(scope="module")
def onchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnChain]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("wallets"), admin_token=ADMIN, database_url=None,
        redis_url=None, chain_rpc_url=None, chain_deployment_file=None, chain_poll_seconds=0.05,
    )  # fmt: skip
    with (
        embedded_deployment(settings) as (chain, deployment),
        running_gateway(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin,
    ):
        yield OnChain(url, admin, chain, deployment)


def test_the_wallet_routes_need_the_admin_token(onchain: OnChain) -> None:
    tid = onchain.tenant()
    wallet = {"address": onchain.chain.accounts[5]}
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with httpx.Client(base_url=onchain.url, headers=headers) as anon:
            assert anon.get(f"/admin/v1/tenants/{tid}/wallet").status_code == 401
            assert anon.put(f"/admin/v1/tenants/{tid}/wallet", json=wallet).status_code == 401


@pytest.mark.parametrize(
    "address",
    [
        "0x1234",
        "0x90f79bf6eb2c4f870365e785982e1f101e93b906",  # not EIP-55 checksummed
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906".replace("F79", "f79"),  # bad checksum
        12,
    ],
)
def test_a_bad_address_is_400(onchain: OnChain, address: object) -> None:
    tid = onchain.tenant()
    r = onchain.admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": address})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"


def test_linking_shows_the_wallet_and_one_address_funds_one_tenant(onchain: OnChain) -> None:
    tid, other = onchain.tenant(), onchain.tenant()
    wallet = onchain.chain.accounts[6]
    before = onchain.admin.get(f"/admin/v1/tenants/{tid}/wallet").json()
    assert (before["addresses"], before["address"]) == ([], None)
    assert before["chain"]["vault"] == onchain.deployment.vault
    linked = onchain.admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": wallet})
    assert linked.status_code == 200
    assert linked.json()["address"] == wallet
    again = onchain.admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": wallet})
    assert again.status_code == 200
    taken = onchain.admin.put(f"/admin/v1/tenants/{other}/wallet", json={"address": wallet})
    assert taken.status_code == 409
    missing = onchain.admin.put("/admin/v1/tenants/ten_nobody/wallet", json={"address": wallet})
    assert missing.status_code == 404


def test_deposits_made_before_the_link_are_credited_once(onchain: OnChain) -> None:
    chain, d = onchain.chain, onchain.deployment
    tid, witness = onchain.tenant(), onchain.tenant()
    late, known = chain.accounts[7], chain.accounts[8]
    onchain.admin.put(f"/admin/v1/tenants/{witness}/wallet", json={"address": known})
    deposit_test_funds(chain, d, tenant=late, amount=400_000)
    deposit_test_funds(chain, d, tenant=known, amount=1)
    # the indexer is past the first deposit once it has credited the second
    assert onchain.wait_available(witness, 1) == 1
    assert onchain.available(tid) == 0
    r = onchain.admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": late})
    assert r.json()["unassigned_micro"] in (0, 400_000)  # 0 if the indexer was quicker
    assert onchain.wait_available(tid, 400_000) == 400_000
    assert onchain.admin.get(f"/admin/v1/tenants/{tid}/wallet").json()["unassigned_micro"] == 0
    onchain.admin.put(f"/admin/v1/tenants/{tid}/wallet", json={"address": late})  # again
    time.sleep(0.2)  # several more passes
    assert onchain.available(tid) == 400_000
    ledger = onchain.admin.get(f"/admin/v1/tenants/{tid}/ledger").json()["transfers"]
    assert [t["kind"] for t in ledger] == ["deposit"]


def test_a_tenant_owner_may_link_only_the_address_it_signed_in_with(onchain: OnChain) -> None:
    owner, stranger = Account.create(), Account.create()
    tid = onchain.admin.post(
        "/admin/v1/tenants", json={"name": "mine", "owner_address": owner.address}
    ).json()["id"]
    login = signed_login(Gateway(onchain.url, onchain.admin), owner, tid)
    token = httpx.post(f"{onchain.url}/admin/v1/siwe/login", json=login).json()["session_token"]
    with httpx.Client(base_url=onchain.url, headers={"Authorization": f"Bearer {token}"}) as me:
        path = f"/admin/v1/tenants/{tid}/wallet"
        assert me.put(path, json={"address": stranger.address}).status_code == 403
        assert me.put(path, json={"address": owner.address}).status_code == 200
        assert me.get(path).json()["addresses"] == [owner.address]
