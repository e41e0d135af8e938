"""Request bodies of the control plane. Amounts are strict integers (no "10", no 10.0);
JSON is parsed with its nesting bounded (``BoundedJsonRoute``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from apicredits import json_input
from apicredits.money import MAX_MICRO

Micro = Annotated[StrictInt, Field(gt=0, le=MAX_MICRO)]
MicroOrZero = Annotated[StrictInt, Field(ge=0, le=MAX_MICRO)]
PerMinute = Annotated[StrictInt, Field(gt=0, le=10**12)]
Id = Annotated[StrictStr, Field(min_length=1, max_length=64)]
ClientId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def _no_nul(text: str) -> str:
    if "\x00" in text:  # PostgreSQL would refuse it; SQLite too, then, for one behaviour
        raise ValueError("a NUL character (\\u0000) is not allowed")
    return text


_NO_NUL = {"pattern": "^[^\\u0000]*$"}  # documented; ``_no_nul`` checks, with its own words
Name = Annotated[
    StrictStr, Field(max_length=200, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)
]
Memo = Annotated[
    StrictStr, Field(max_length=500, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)
]


def _checksummed(address: str) -> str:
    from eth_utils.address import is_checksum_address

    if not is_checksum_address(address):
        raise ValueError("an Ethereum address in EIP-55 mixed-case checksum form")
    return address


# The wallet that may sign in for a tenant (SIWE): EIP-55 checksummed, as SIWE messages are.
Address = Annotated[
    StrictStr,
    Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="EIP-55 checksummed"),
    AfterValidator(_checksummed),
]


# ``auth.capabilities`` checks a scope, with its own words; the pattern documents its rule
Scope = Annotated[
    StrictStr,
    Field(
        min_length=7,
        max_length=206,
        json_schema_extra={"pattern": r"^(route|model):[\x21\x23-\x5b\x5d-\x7e]{1,200}$"},
    ),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(Body):
    name: Name = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    legacy_keys: StrictBool | None = None
    dpop_required: StrictBool | None = None
    owner_address: Address | None = None


class TenantPatch(Body):
    name: Name | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    legacy_keys: StrictBool | None = None
    dpop_required: StrictBool | None = None
    owner_address: Address | None = None


class DepositCreate(Body):
    amount_micro: Micro
    idempotency_key: ClientId
    memo: Memo = ""


class WalletLink(Body):
    address: Address


class ProjectCreate(Body):
    name: Name = ""


class KeyCreate(Body):
    tenant_id: Id
    project_id: Id | None = None
    name: Name = ""
    requests_per_minute: PerMinute | None = None
    tokens_per_minute: PerMinute | None = None
    max_concurrent: Annotated[StrictInt, Field(gt=0, le=100_000)] | None = None
    scopes: Annotated[list[Scope], Field(max_length=64)] = Field(default_factory=list)


class BudgetPut(Body):
    tenant_id: Id
    scope: Literal["tenant", "project", "credential"]
    scope_id: Id | None = None
    period: Literal["day", "month", "none"]
    cap_micro: MicroOrZero


class LockCreate(Body):
    lock_id: ClientId
    amount_micro: Micro
    timeout_seconds: Annotated[StrictInt, Field(gt=0, le=7 * 86400)] | None = None
    project_id: Id | None = None
    credential_id: Id | None = None
    memo: Memo = ""


class ConsumeCreate(Body):
    transfer_id: ClientId | None = None
    amount_micro: MicroOrZero


class RefundCreate(Body):
    transfer_id: ClientId | None = None


class PlannedCallBody(Body):
    model: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    input_tokens: Annotated[StrictInt, Field(ge=0, le=10**9)]
    max_output_tokens: Annotated[StrictInt, Field(ge=0, le=10**9)]
    units: dict[str, Annotated[StrictInt, Field(ge=0, le=10**12)]] = Field(default_factory=dict)


class QuoteCreate(Body):
    tenant_id: Id | None = None
    calls: Annotated[list[PlannedCallBody], Field(min_length=1, max_length=1000)]


class ServiceCreate(Body):
    tenant_id: Id
    project_id: Id | None = None
    name: Name = ""
    jwk: dict[str, Any]
    scopes: Annotated[list[Scope], Field(max_length=64)] = Field(default_factory=list)
    requests_per_minute: PerMinute | None = None
    tokens_per_minute: PerMinute | None = None
    max_concurrent: Annotated[StrictInt, Field(gt=0, le=100_000)] | None = None
    token_spend_cap_micro: MicroOrZero | None = None


class ServiceKeyCreate(Body):
    jwk: dict[str, Any]


class RevocationCreate(Body):
    kind: Literal["jti", "subject", "tenant"]
    tenant_id: Id
    value: Annotated[StrictStr, Field(max_length=256)] | None = None


class _BoundedJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json_input.loads(await self.body())
        return self._json


class BoundedJsonRoute(APIRoute):
    """A control-plane route whose JSON body is parsed by ``json_input.loads``: a body
    nested too deeply is a 400 ``invalid_request`` ("malformed JSON: ..."), not a crashed
    worker."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_BoundedJsonRequest(request.scope, request.receive))

        return bounded
