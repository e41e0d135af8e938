"""Tenant owners sign in with a wallet (SIWE) and manage only their own tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from apicredits.auth.siwe import SiweMessage, rfc3339
from apicredits.sdk import ServiceKey
from gateway_support import Gateway


def signed_login(gw: Gateway, wallet: Any, tenant_id: str, **change: Any) -> dict[str, Any]:
    info = httpx.get(f"{gw.url}/admin/v1/siwe/nonce").json()
    fields: dict[str, Any] = {
        "domain": info["domain"], "address": wallet.address, "uri": gw.url, "chain_id": 8453,
        "nonce": info["nonce"], "issued_at": rfc3339(datetime.now(UTC)),
        "statement": "Sign in to apicredits",
    }  # fmt: skip
    text = SiweMessage(**(fields | change)).to_text()
    signature = wallet.sign_message(encode_defunct(text=text)).signature.hex()
    return {"message": text, "signature": signature, "tenant_id": tenant_id}


def test_a_wallet_owner_signs_in_and_manages_only_its_tenant(gateway: Gateway) -> None:
    wallet = Account.create()
    mine = gateway.admin.post(
        "/admin/v1/tenants", json={"name": "mine", "owner_address": wallet.address}
    ).json()["id"]
    other = gateway.admin.post("/admin/v1/tenants", json={"name": "other"}).json()["id"]
    login = signed_login(gateway, wallet, mine)
    r = httpx.post(f"{gateway.url}/admin/v1/siwe/login", json=login)
    assert r.status_code == 200, r.text
    session = {"Authorization": f"Bearer {r.json()['session_token']}"}
    again = httpx.post(f"{gateway.url}/admin/v1/siwe/login", json=login)
    assert again.status_code == 401
    assert again.json()["error"]["reason"] == "replayed"

    assert httpx.get(f"{gateway.url}/admin/v1/tenants/{mine}/balance", headers=session).is_success
    service = httpx.post(
        f"{gateway.url}/admin/v1/tenants/{mine}/services",
        json={"tenant_id": mine, "jwk": ServiceKey.generate().public_jwk()},
        headers=session,
    )
    assert service.status_code == 201, service.text
    for method, path in [
        ("GET", f"/admin/v1/tenants/{other}/balance"),
        ("GET", "/admin/v1/tenants"),
        ("POST", f"/admin/v1/tenants/{mine}/deposits"),
        ("POST", "/admin/v1/signing-keys/rotate"),
    ]:
        refused = httpx.request(
            method, gateway.url + path, headers=session, json={"amount_micro": 1}
        )
        assert refused.status_code == 401, (path, refused.text)
    gateway.admin.patch(
        f"/admin/v1/tenants/{mine}", json={"owner_address": Account.create().address}
    )
    ended = httpx.get(f"{gateway.url}/admin/v1/tenants/{mine}/balance", headers=session)
    assert ended.json()["error"]["reason"] == "revoked"


def test_sign_in_refusals(gateway: Gateway) -> None:
    wallet, stranger = Account.create(), Account.create()
    tid = gateway.admin.post(
        "/admin/v1/tenants", json={"name": "t", "owner_address": wallet.address}
    ).json()["id"]
    url = f"{gateway.url}/admin/v1/siwe/login"
    cases = [
        (signed_login(gateway, stranger, tid), "unknown_client"),
        (signed_login(gateway, wallet, tid, domain="evil.example"), "wrong_audience"),
        (signed_login(gateway, wallet, tid, nonce="abcdefgh12345678"), "replayed"),
        (
            signed_login(
                gateway,
                wallet,
                tid,
                expiration_time="2020-01-01T00:00:00Z",
                issued_at="2019-12-31T00:00:00Z",
            ),
            "expired",
        ),
        ({**signed_login(gateway, wallet, tid), "signature": "0x" + "11" * 65}, "bad_signature"),
        ({**signed_login(gateway, wallet, tid), "message": "hello"}, "malformed"),
    ]
    for body, reason in cases:
        r = httpx.post(url, json=body)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["reason"] == reason
    bad_owner = gateway.admin.patch(
        f"/admin/v1/tenants/{tid}", json={"owner_address": wallet.address.lower()}
    )
    assert bad_owner.status_code == 400  # EIP-55 checksum required
