"""The apicredits Python client: capability tokens and DPoP for any httpx or OpenAI client.

    key = ServiceKey.from_pem_file("service.pem")     # registered as key.public_jwk()
    client = openai_client("https://gateway.example", "svc-search", key,
                           scopes=["route:/v1/chat/completions", "model:sim-*"])
    client.chat.completions.create(model="sim-small", messages=[...])

or, for any httpx client, ``httpx.Client(auth=CapabilityAuth(base_url, client_id, key))``.
"""

from __future__ import annotations

from apicredits.sdk.auth import CAPABILITIES_PATH, AccessToken, CapabilityAuth
from apicredits.sdk.clients import async_openai_client, openai_client
from apicredits.sdk.errors import InvalidKey, InvalidTokenResponse, SdkError, TokenRequestFailed
from apicredits.sdk.keys import Algorithm, Curve, ServiceKey
from apicredits.sdk.proofs import client_assertion, dpop_proof

__all__ = [
    "CAPABILITIES_PATH",
    "AccessToken",
    "Algorithm",
    "CapabilityAuth",
    "Curve",
    "InvalidKey",
    "InvalidTokenResponse",
    "SdkError",
    "ServiceKey",
    "TokenRequestFailed",
    "async_openai_client",
    "client_assertion",
    "dpop_proof",
    "openai_client",
]
