"""The data plane end to end with the official SDKs: every call priced, locked, proxied,
metered and consumed to the micro-credit — streams included — and every failure closing
its lock."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from apicredits.json_input import MAX_DEPTH
from apicredits.money import charge_micro
from gateway_support import Gateway, wait_for

PROMPT = [{"role": "user", "content": "count the sheep that jump over the fence"}]
# default tariff, micro-credits per million tokens
SIM_GPT = {"in": 1_000_000, "cached": 500_000, "out": 2_000_000}
SIM_CLAUDE = {"in": 3_000_000, "write": 3_750_000, "read": 300_000, "out": 15_000_000}


OPEN: list[Any] = []  # SDK clients of the current test, closed after it


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def oa(gw: Gateway, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    OPEN.append(client)
    return client


def claude(gw: Gateway, key: str) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    OPEN.append(client)
    return client


def usage_of(gw: Gateway, key: str, request_id: str) -> dict[str, object]:
    r = httpx.get(f"{gw.url}/v1/usage/{request_id}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    doc: dict[str, object] = r.json()
    return doc


def test_request_ids_are_unique_and_sort_in_call_order(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    client = oa(gateway, key)
    ids = [
        client.chat.completions.with_raw_response.create(
            model="sim-gpt",
            messages=PROMPT,
            max_tokens=4,  # type: ignore[arg-type]
        ).headers["apicredits-request-id"]
        for _ in range(5)
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert all(len(i) == 36 and int(i.removeprefix("req_"), 16) for i in ids)


def test_openai_chat_is_charged_at_the_tariff(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    raw = oa(gateway, key).chat.completions.with_raw_response.create(
        model="sim-gpt",
        messages=PROMPT,
        max_tokens=40,  # type: ignore[arg-type]
    )
    completion = raw.parse()
    usage = completion.usage
    assert usage is not None
    assert completion.choices[0].message.content
    expected = charge_micro(
        usage.prompt_tokens * SIM_GPT["in"] + usage.completion_tokens * SIM_GPT["out"]
    )
    assert int(raw.headers["apicredits-cost-micro"]) == expected
    balance = gateway.balance(tid)
    assert balance["spent_micro"] == expected
    assert balance["locked_micro"] == 0
    assert int(raw.headers["apicredits-remaining-micro"]) == balance["available_micro"]
    record = usage_of(gateway, key, raw.headers["apicredits-request-id"])
    assert record["cost_micro"] == expected
    assert record["status"] == "ok"
    assert record["units"] == {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
    }


def test_a_stream_costs_the_same_as_the_same_call_unstreamed(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    client = oa(gateway, key)
    plain = client.chat.completions.with_raw_response.create(
        model="sim-gpt",
        messages=PROMPT,
        max_tokens=40,  # type: ignore[arg-type]
    )
    with client.chat.completions.with_streaming_response.create(
        model="sim-gpt",
        messages=PROMPT,
        max_tokens=40,
        stream=True,  # type: ignore[arg-type]
    ) as streamed:
        request_id = streamed.headers["apicredits-request-id"]
        chunks = list(streamed.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.parse().choices[0].message.content
    assert all(c.usage is None for c in chunks)  # the usage chunk we injected was stripped
    wait_for(lambda: gateway.balance(tid)["locked_micro"] == 0)
    assert usage_of(gateway, key, request_id)["cost_micro"] == int(
        plain.headers["apicredits-cost-micro"]
    )


def test_a_client_asking_for_stream_usage_still_gets_it(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    chunks = list(
        oa(gateway, key).chat.completions.create(
            model="sim-gpt",
            messages=PROMPT,
            max_tokens=10,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_cached_and_reasoning_tokens_have_their_own_prices(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    raw = oa(gateway, key).chat.completions.with_raw_response.create(
        model="sim-gpt",
        messages=PROMPT,
        max_tokens=20,  # type: ignore[arg-type]
        extra_headers={"x-sim-cached-tokens": "5", "x-sim-reasoning-tokens": "7"},
    )
    usage = raw.parse().usage
    assert usage is not None
    visible = usage.completion_tokens - 7
    expected = charge_micro(
        (usage.prompt_tokens - 5) * SIM_GPT["in"]
        + 5 * SIM_GPT["cached"]
        + (visible + 7) * SIM_GPT["out"]
    )
    assert int(raw.headers["apicredits-cost-micro"]) == expected


def test_embeddings_and_responses(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    client = oa(gateway, key)
    emb = client.embeddings.with_raw_response.create(model="sim-embed", input=["a b c", "d e"])
    assert int(emb.headers["apicredits-cost-micro"]) == charge_micro(
        emb.parse().usage.prompt_tokens * 20_000
    )
    resp = client.responses.with_raw_response.create(
        model="sim-gpt", input="hello there", max_output_tokens=30
    )
    parsed = resp.parse()
    assert parsed.output_text
    assert parsed.usage is not None
    assert int(resp.headers["apicredits-cost-micro"]) == charge_micro(
        parsed.usage.input_tokens * SIM_GPT["in"] + parsed.usage.output_tokens * SIM_GPT["out"]
    )
    events = list(
        client.responses.create(
            model="sim-gpt", input="hello there", max_output_tokens=30, stream=True
        )
    )
    assert events[-1].type == "response.completed"
    wait_for(lambda: gateway.balance(tid)["locked_micro"] == 0)


def test_anthropic_messages(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    client = claude(gateway, key)
    raw = client.messages.with_raw_response.create(
        model="sim-claude",
        max_tokens=30,
        messages=PROMPT,  # type: ignore[arg-type]
        extra_headers={"x-sim-cache-write-tokens": "3"},
    )
    message = raw.parse()
    u = message.usage
    expected = charge_micro(
        u.input_tokens * SIM_CLAUDE["in"]
        + (u.cache_creation_input_tokens or 0) * SIM_CLAUDE["write"]
        + u.output_tokens * SIM_CLAUDE["out"]
    )
    assert u.cache_creation_input_tokens == 3
    assert int(raw.headers["apicredits-cost-micro"]) == expected
    with client.messages.stream(
        model="sim-claude",
        max_tokens=30,
        messages=PROMPT,  # type: ignore[arg-type]
        extra_headers={"x-sim-cache-write-tokens": "3"},
    ) as stream:
        text = "".join(stream.text_stream)
        request_id = stream.response.headers["apicredits-request-id"]
    assert text == message.content[0].text  # type: ignore[union-attr]
    wait_for(lambda: gateway.balance(tid)["locked_micro"] == 0)
    assert usage_of(gateway, key, request_id)["cost_micro"] == expected


def test_gemini(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=gateway.url))
    OPEN.append(client)
    result = client.models.generate_content(
        model="sim-gemini", contents="name three rivers", config={"max_output_tokens": 25}
    )
    meta = result.usage_metadata
    assert result.text
    assert meta is not None
    expected = charge_micro(
        (meta.prompt_token_count or 0) * 1_250_000 + (meta.candidates_token_count or 0) * 5_000_000
    )
    spent = gateway.balance(tid)["spent_micro"]
    assert spent == expected
    streamed = "".join(
        c.text or ""
        for c in client.models.generate_content_stream(
            model="sim-gemini", contents="name three rivers", config={"max_output_tokens": 25}
        )
    )
    assert streamed == result.text
    wait_for(lambda: gateway.balance(tid)["spent_micro"] == 2 * expected)
    assert gateway.balance(tid)["locked_micro"] == 0


def test_out_of_credits_and_over_budget_are_402(gateway: Gateway) -> None:
    tid, key = gateway.tenant(credits_micro=100)
    with pytest.raises(openai.APIStatusError) as err:
        oa(gateway, key).chat.completions.create(
            model="sim-gpt",
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=40,
        )
    assert err.value.status_code == 402
    assert err.value.body["code"] == "insufficient_credits"  # type: ignore[index]
    tid, key = gateway.tenant()
    gateway.admin.put(
        "/admin/v1/budgets",
        json={"tenant_id": tid, "scope": "tenant", "period": "day", "cap_micro": 50},
    )
    with pytest.raises(anthropic.APIStatusError) as aerr:
        claude(gateway, key).messages.create(model="sim-claude", max_tokens=30, messages=PROMPT)  # type: ignore[arg-type]
    assert aerr.value.status_code == 402
    assert aerr.value.body["error"]["type"] == "budget_exceeded"  # type: ignore[index]
    assert gateway.balance(tid)["locked_micro"] == 0


def test_rate_limited_is_429_with_retry_after(gateway: Gateway) -> None:
    _, key = gateway.tenant(requests_per_minute=1)
    client = oa(gateway, key)
    client.chat.completions.create(model="sim-gpt", messages=PROMPT, max_tokens=5)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="sim-gpt", messages=PROMPT, max_tokens=5)  # type: ignore[arg-type]
    assert int(err.value.response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"model": "gpt-99", "messages": PROMPT}, {}, 404, "unknown_model"),
        (b"{broken", {"content-type": "application/json"}, 400, "invalid_request"),
        (
            {"model": "sim-gpt", "messages": PROMPT},
            {"content-type": "text/plain"},
            400,
            "invalid_request",
        ),
        ({"model": "sim-gpt", "messages": PROMPT, "max_tokens": 10**9}, {}, 400, "invalid_request"),
        ({"model": "sim-gpt", "messages": "not a list"}, {}, 400, "invalid_request"),
        (
            {"model": "sim-gpt", "messages": [{"role": "user", "content": "x" * 70_000}]},
            {},
            413,
            "payload_too_large",
        ),
    ],
)
def test_bad_requests_are_4xx_json(
    gateway: Gateway, body: object, headers: dict[str, str], status: int, code: str
) -> None:
    tid, key = gateway.tenant()
    send = {"content": body} if isinstance(body, bytes) else {"content": json.dumps(body)}
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        **send,  # type: ignore[arg-type]
        headers={"authorization": f"Bearer {key}", "content-type": "application/json", **headers},
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert gateway.balance(tid)["available_micro"] == 10_000_000


NESTED = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "sim-gpt"),
        ("/v1/messages", "sim-claude"),
        ("/v1beta/models/sim-gemini:generateContent", None),
        ("/v1/jobs/quote", None),
    ],
)
@pytest.mark.parametrize(
    ("prompt", "metadata", "problem"),
    [
        ("hi", NESTED, f"nested deeper than {MAX_DEPTH} levels"),
        ("hi \ud800", "{}", "not Unicode text: a string holds an unpaired surrogate"),
    ],
)
def test_a_body_it_cannot_take_is_a_400_and_the_worker_lives_on(
    gateway: Gateway, path: str, model: str | None, prompt: str, metadata: str, problem: str
) -> None:
    # the decoder would have overflowed the C stack on the first; the second had been a 500
    tid, key = gateway.tenant()
    body = json.dumps(
        {
            "model": model,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": prompt}],
            "contents": [{"parts": [{"text": prompt}]}],
            "metadata": "?",
        }
    ).replace('"?"', metadata)
    headers = {"x-goog-api-key": key, "x-api-key": key, "content-type": "application/json"}
    r = httpx.post(f"{gateway.url}{path}", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert f"request body is {problem}" in r.text
    assert oa(gateway, key).chat.completions.create(model="sim-gpt", messages=PROMPT).id
    assert gateway.balance(tid)["locked_micro"] == 0


def test_unauthenticated(gateway: Gateway) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "sim-claude"},
        headers={"x-api-key": "ak_wrong"},
    )
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "unauthorized"


def test_a_credential_sent_twice_is_refused(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    chat = {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 8}
    url = f"{gateway.url}/v1/chat/completions"
    auth = ("Authorization", f"Bearer {key}")
    assert httpx.post(url, json=chat, headers=[auth]).status_code == 200
    # one header, one credential: a second copy is not silently ignored
    assert httpx.post(url, json=chat, headers=[auth, auth]).status_code == 401


@pytest.mark.parametrize(
    ("fail", "status", "code"),
    [
        ("500", 502, "upstream_error"),
        ("429", 429, "upstream_rate_limited"),
        ("malformed", 502, "upstream_malformed"),
    ],
)
def test_upstream_failures_refund_the_lock(
    gateway: Gateway, fail: str, status: int, code: str
) -> None:
    tid, key = gateway.tenant()
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "sim-gpt", "messages": PROMPT, "max_tokens": 10},
        headers={"authorization": f"Bearer {key}", "x-sim-fail": fail},
    )
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert gateway.balance(tid) == {
        **gateway.balance(tid),
        "available_micro": 10_000_000,
        "locked_micro": 0,
        "spent_micro": 0,
    }


def test_upstream_timeout_is_504_and_refunded(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "sim-gpt", "messages": PROMPT, "max_tokens": 10},
        headers={"authorization": f"Bearer {key}", "x-sim-latency-ms": "3000"},
        timeout=10,
    )
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert gateway.balance(tid)["available_micro"] == 10_000_000


def test_a_cut_stream_is_refunded_and_reported(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    with pytest.raises(openai.APIError):
        list(
            oa(gateway, key).chat.completions.create(
                model="sim-gpt",
                messages=PROMPT,
                max_tokens=30,
                stream=True,  # type: ignore[arg-type]
                extra_headers={"x-sim-fail": "cut", "x-sim-cut-after": "3"},
            )
        )
    wait_for(lambda: gateway.balance(tid)["locked_micro"] == 0)
    assert gateway.balance(tid)["spent_micro"] == 0


def test_a_client_leaving_mid_stream_pays_for_what_was_produced(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    body = json.dumps(
        {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 40, "stream": True}
    ).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nx-sim-latency-ms: 0\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = b""
        while b"data:" not in head:
            head += sock.recv(4096)
    # the socket is closed: the gateway must charge what was produced and close the lock
    request_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"apicredits-request-id")
    )
    wait_for(lambda: gateway.balance(tid)["locked_micro"] == 0)
    record = usage_of(gateway, key, request_id)
    assert record["status"] in ("partial", "ok")
    assert 0 < gateway.balance(tid)["spent_micro"] == record["cost_micro"]


def test_idempotency_key_never_charges_twice(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    headers = {"authorization": f"Bearer {key}", "idempotency-key": "retry-me"}
    body = {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 10}
    first = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    again = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["apicredits-idempotent-replay"] == "true"
    assert gateway.balance(tid)["spent_micro"] == int(first.headers["apicredits-cost-micro"])
    other = httpx.post(
        f"{gateway.url}/v1/chat/completions", headers=headers, json={**body, "max_tokens": 11}
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"


def test_a_failed_attempt_can_be_retried_with_the_same_key(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    headers = {"authorization": f"Bearer {key}", "idempotency-key": "flaky"}
    body = {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 10}
    failed = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={**headers, "x-sim-fail": "500"}
    )
    assert failed.status_code == 502
    ok = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    assert ok.status_code == 200
    assert gateway.balance(tid)["spent_micro"] == int(ok.headers["apicredits-cost-micro"])


def test_jobs_quote_lock_execute_settle(gateway: Gateway) -> None:
    tid, key = gateway.tenant()
    auth = {"authorization": f"Bearer {key}"}
    calls = [{"model": "sim-gpt", "input_tokens": 100, "max_output_tokens": 40}] * 3
    quote = httpx.post(f"{gateway.url}/v1/jobs/quote", json={"calls": calls}, headers=auth).json()
    lock = httpx.post(f"{gateway.url}/v1/jobs/lock", json={"quote": quote}, headers=auth)
    assert lock.status_code == 201, lock.text
    job = lock.json()
    assert job["locked_micro"] == quote["quote"]["total_micro"]
    costs = []
    for _ in range(3):
        r = httpx.post(
            f"{gateway.url}/v1/execute",
            headers={**auth, "usage-auth": job["usage_token"]},
            json={
                "job_id": job["job_id"],
                "request": {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 40},
            },
        )
        assert r.status_code == 200, r.text
        costs.append(int(r.headers["apicredits-cost-micro"]))
    state = httpx.get(f"{gateway.url}/v1/jobs/{job['job_id']}", headers=auth).json()
    assert state["calls"] == 3
    assert state["used_micro"] == sum(costs)
    assert len(state["usage"]) == 3
    settled = httpx.post(f"{gateway.url}/v1/jobs/{job['job_id']}/settle", headers=auth).json()
    assert settled["refunded_micro"] == job["locked_micro"] - sum(costs)
    balance = gateway.balance(tid)
    assert (balance["spent_micro"], balance["locked_micro"]) == (sum(costs), 0)
    refused = httpx.post(
        f"{gateway.url}/v1/execute",
        headers={**auth, "usage-auth": job["usage_token"]},
        json={"job_id": job["job_id"], "request": {"model": "sim-gpt", "messages": PROMPT}},
    )
    assert refused.status_code == 409


def test_a_job_refuses_calls_beyond_its_lock(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    auth = {"authorization": f"Bearer {key}"}
    job = httpx.post(f"{gateway.url}/v1/jobs/lock", json={"amount_micro": 100}, headers=auth).json()
    r = httpx.post(
        f"{gateway.url}/v1/execute",
        headers={**auth, "usage-auth": job["usage_token"]},
        json={
            "job_id": job["job_id"],
            "request": {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 1000},
        },
    )
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "lock_exhausted"
    forged = httpx.post(
        f"{gateway.url}/v1/jobs/lock",
        headers=auth,
        json={"quote": {"quote": {}, "key_id": "x", "signature": "y"}},
    )
    assert forged.status_code == 400
    assert forged.json()["error"]["code"] == "invalid_quote"


@pytest.mark.parametrize("job_id", ["lock", "quote", "a/b"])
def test_a_job_id_its_urls_cannot_reach_is_refused(gateway: Gateway, job_id: str) -> None:
    tid, key = gateway.tenant()
    r = httpx.post(
        f"{gateway.url}/v1/jobs/lock",
        json={"amount_micro": 100, "job_id": job_id},
        headers={"authorization": f"Bearer {key}"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "job_id"
    assert gateway.balance(tid)["locked_micro"] == 0
    # a job may still be called after a route word, inside its name
    named = httpx.post(
        f"{gateway.url}/v1/jobs/lock",
        json={"amount_micro": 100, "job_id": f"{job_id.replace('/', '-')}-1"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert named.status_code == 201, named.text
    got = httpx.get(
        f"{gateway.url}/v1/jobs/{named.json()['job_id']}",
        headers={"authorization": f"Bearer {key}"},
    )
    assert got.status_code == 200


def test_metrics(gateway: Gateway) -> None:
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in (
        "apicredits_requests_total",
        "apicredits_auth_verify_seconds",
        "apicredits_upstream_latency_seconds",
        "apicredits_credits_consumed_micro_total",
        "apicredits_open_locks",
        "apicredits_rate_limit_rejections_total",
    ):
        assert name in text
    _ = time


def test_models_lists_what_can_be_routed(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    ids = {m.id for m in oa(gateway, key).models.list()}
    assert {"sim-gpt", "sim-claude", "sim-gemini", "sim-embed"} <= ids
    assert "gpt-4o" not in ids  # a real provider without a configured key is not offered


def test_one_model_can_be_retrieved(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    assert oa(gateway, key).models.retrieve("sim-gpt").owned_by == "sim"
    with pytest.raises(openai.NotFoundError) as missing:
        oa(gateway, key).models.retrieve("gpt-4o")  # priced, but not routable here
    assert "'gpt-4o' is not available" in str(missing.value)
    # google-genai POSTs "model:action" under /v1/models; a bare model takes GET only
    r = httpx.post(f"{gateway.url}/v1/models/sim-gpt", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "GET, HEAD"


def test_the_google_sdk_gets_models_in_its_own_format(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=gateway.url))
    OPEN.append(client)
    names = [m.name for m in client.models.list()]
    assert "models/sim-gemini" in names
    one = client.models.get(model="sim-gemini")
    assert (one.name, one.display_name) == ("models/sim-gemini", "sim-gemini")
    assert one.supported_actions == ["generateContent", "streamGenerateContent"]
    with pytest.raises(genai_errors.ClientError) as missing:
        client.models.get(model="nope")
    assert missing.value.code == 404
    listed = httpx.get(f"{gateway.url}/v1beta/models", headers={"x-goog-api-key": key}).json()
    assert "models/sim-gemini" in [m["name"] for m in listed["models"]]


def test_the_anthropic_sdk_gets_models_in_its_own_format(gateway: Gateway) -> None:
    _, key = gateway.tenant()
    page = claude(gateway, key).models.list()
    assert page.has_more is False
    ids = [m.id for m in page.data]
    assert "sim-claude" in ids
    assert (page.first_id, page.last_id) == (ids[0], ids[-1])
    one = claude(gateway, key).models.retrieve("sim-claude")
    assert (one.type, one.display_name) == ("model", "sim-claude")
    assert one.created_at.year >= 1970  # RFC 3339, parsed by the SDK
    with pytest.raises(anthropic.NotFoundError):
        claude(gateway, key).models.retrieve("nope")


def test_gemini_errors_come_in_googles_shape(gateway: Gateway) -> None:
    _, key = gateway.tenant(credits_micro=1)
    r = httpx.post(
        f"{gateway.url}/v1beta/models/sim-gemini:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": key},
    )
    error = r.json()["error"]
    assert r.status_code == 402
    assert (error["code"], error["status"]) == (402, "RESOURCE_EXHAUSTED")
    assert error["details"][0]["reason"] == "insufficient_credits"
    unknown = httpx.post(
        f"{gateway.url}/v1beta/models/sim-gemini:noSuchMethod",
        json={},
        headers={"x-goog-api-key": key},
    )
    assert unknown.status_code == 404


def execute_in_job(
    gateway: Gateway, route: str, request: dict[str, object], **extra: object
) -> httpx.Response:
    """One ``/v1/execute`` call inside a fresh job; ``extra``: headers (``x-sim-*``) as
    keyword arguments with dashes for underscores."""
    _, key = gateway.tenant()
    auth = {"authorization": f"Bearer {key}"}
    job = httpx.post(
        f"{gateway.url}/v1/jobs/lock", json={"amount_micro": 1_000_000}, headers=auth
    ).json()
    headers = {**auth, "usage-auth": job["usage_token"]}
    headers.update({k.replace("_", "-"): str(v) for k, v in extra.items()})
    body = {"job_id": job["job_id"], "route": route, "request": request, "model": "sim-gemini"}
    return httpx.post(f"{gateway.url}/v1/execute", json=body, headers=headers)


@pytest.mark.parametrize(
    ("route", "request_body"),
    [
        ("openai.chat", {"model": "sim-gpt", "messages": PROMPT, "max_tokens": 10}),
        ("gemini.generate", {"contents": [{"parts": [{"text": "hi"}]}]}),
    ],
)
def test_the_seed_api_answers_call_errors_in_the_gateways_own_shape(
    gateway: Gateway, route: str, request_body: dict[str, object]
) -> None:
    """Like its token and job checks (and quote, lock, settle), whatever the route's SDK."""
    failed = execute_in_job(gateway, route, request_body, x_sim_fail="500")
    assert failed.status_code == 502
    assert failed.json() == {"error": {"code": "upstream_error", "message": "sim answered 500"}}
    limited = execute_in_job(gateway, route, request_body, x_sim_fail="429")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["code"] == "upstream_rate_limited"
