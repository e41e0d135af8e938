"""Shared pieces of the oracle tests: signed usage events priced by the default tariff, a
registry history, and a gateway database holding events, usage records and job locks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Connection

from apicredits.db import Database, upgrade
from apicredits.db.schema import jobs, usage_events, usage_records
from apicredits.metering.events import (
    Meter,
    SignedUsageEvent,
    UsageDomain,
    UsageEvent,
    UsageUnit,
    sign,
)
from apicredits.oracle.bls import CURVE_ORDER, OracleKey
from apicredits.oracle.merkle import keccak256
from apicredits.oracle.messages import event_id, job_id, provider_id
from apicredits.oracle.validation import STATUS_ACTIVE, RegistryHistory
from apicredits.tariffs import default_tariff
from apicredits.tariffs.store import TariffStore

PROVIDER = "sim"
PROVIDER_ID = provider_id(PROVIDER)
MODEL = "sim-gpt"  # 1 micro per input token, 2 per output token
GATEWAY_METER: LocalAccount = Account.from_key(keccak256(b"gateway-meter"))
PROVIDER_SIGNER: LocalAccount = Account.from_key(keccak256(b"provider-signer"))
TENANT_A = "0x" + "a1" * 20
TENANT_B = "0x" + "b2" * 20
NO_WALLET = "0x" + "00" * 20
TARIFFS = {1: default_tariff()}


def oracle_key(label: str) -> OracleKey:
    seed = int.from_bytes(keccak256(label.encode())) % CURVE_ORDER
    return OracleKey.from_bytes(seed.to_bytes(32))


def cost(input_tokens: int, output_tokens: int) -> int:
    return input_tokens + 2 * output_tokens


def usage_event(
    domain: UsageDomain,
    n: int,
    *,
    tenant: str = TENANT_A,
    job: str = "job-1",
    tokens: tuple[int, int] = (100, 50),
    cost_micro: int | None = None,
    meter: Meter = Meter.GATEWAY,
    key: LocalAccount | None = None,
    timestamp: int = 1_700_000_000,
) -> SignedUsageEvent:
    event = UsageEvent(
        event_id=event_id(f"req-{n}"),
        job_id=job_id(job),
        tenant=tenant,
        provider_id=PROVIDER_ID,
        model=MODEL,
        units=(UsageUnit("input_tokens", tokens[0]), UsageUnit("output_tokens", tokens[1])),
        tariff_version=1,
        cost_micro=cost(*tokens) if cost_micro is None else cost_micro,
        timestamp=timestamp,
        request_hash=keccak256(b"request-%d" % n),
        sequence=n,
        meter=meter,
    )
    signer = key or (GATEWAY_METER if meter is Meter.GATEWAY else PROVIDER_SIGNER)
    return sign(event, domain, signer.key)


def registry(signer: str = PROVIDER_SIGNER.address, since: int = 0) -> RegistryHistory:
    history = RegistryHistory()
    history.set_signer(PROVIDER_ID, signer, since)
    history.set_status(PROVIDER_ID, STATUS_ACTIVE, since)
    return history


@dataclass
class GatewayDb:
    """A migrated SQLite database the tests write usage events and jobs into directly."""

    db: Database
    next_seq: int = 1
    jobs: dict[str, int] = field(default_factory=dict)

    async def add_job(self, job: str, locked_micro: int, tenant_id: str = "t-a") -> None:
        now = time.time_ns() // 1000
        row = {
            "id": job, "tenant_id": tenant_id, "credential_id": "cred", "lock_id": f"lock-{job}",
            "locked_micro": locked_micro, "state": "open", "created_at_us": now,
            "expires_at_us": now + 3_600_000_000,
        }  # fmt: skip
        await self.db.write(lambda c: c.execute(jobs.insert(), row))

    async def add_events(
        self,
        signed: list[SignedUsageEvent],
        domain: UsageDomain,
        *,
        job: str = "job-1",
        tenant_id: str = "t-a",
        created_at_us: int | None = None,
    ) -> None:
        def work(conn: Connection) -> None:
            for s in signed:
                insert_event(conn, s, domain, job=job, tenant_id=tenant_id,
                             created_at_us=created_at_us)  # fmt: skip

        await self.db.write(work)


def insert_event(
    conn: Connection,
    signed: SignedUsageEvent,
    domain: UsageDomain,
    *,
    job: str,
    tenant_id: str,
    created_at_us: int | None = None,
) -> None:
    e = signed.event
    request_id = f"req-{e.sequence}"
    now = created_at_us if created_at_us is not None else time.time_ns() // 1000
    conn.execute(
        usage_records.insert(),
        {
            "id": request_id, "tenant_id": tenant_id, "credential_id": "cred", "job_id": job,
            "lock_id": f"lock-{job}", "provider": PROVIDER, "model": e.model, "route": "execute",
            "units": json.dumps({u.kind: u.count for u in e.units}),
            "tariff_version": e.tariff_version, "cost_micro": e.cost_micro, "status": "ok",
            "request_hash": e.request_hash.hex(), "started_at_us": now, "duration_us": 1,
        },
    )  # fmt: skip
    conn.execute(
        usage_events.insert(),
        {
            "event_id": "0x" + e.event_id.hex(), "request_id": request_id,
            "tenant_id": tenant_id, "provider": PROVIDER,
            "digest": "0x" + e.digest(domain).hex(),
            "document": json.dumps(signed.to_document()), "signer": "0x" + "00" * 20,
            "meter": e.meter.name.lower(), "cost_micro": e.cost_micro, "created_at_us": now,
        },
    )  # fmt: skip


async def gateway_db(path: Any) -> GatewayDb:
    db = Database(f"sqlite:///{path}")
    await upgrade(db)
    await TariffStore(db).add(default_tariff())
    return GatewayDb(db)
