"""The official OpenAI, Anthropic and Google GenAI SDKs against the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from apicredits.demo import serving
from apicredits.providers.simulator import completion_words, create_sim_app

pytestmark = pytest.mark.integration

USER = "what does the meter count"  # 5 words + 3 for the message
PROMPT_TOKENS = 8


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serving(create_sim_app()) as url:
        yield url


@pytest.fixture
def openai_client(sim_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{sim_url}/v1", api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(sim_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def genai_client(sim_url: str) -> Iterator[genai.Client]:
    with genai.Client(api_key="x", http_options=types.HttpOptions(base_url=sim_url)) as client:
        yield client


def expected_text(max_tokens: int | None = None) -> str:
    return " ".join(completion_words(USER, max_tokens))


def test_openai_models(openai_client: openai.OpenAI) -> None:
    assert "sim-gpt" in [model.id for model in openai_client.models.list()]


def test_openai_chat(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="sim-gpt",
        messages=[{"role": "user", "content": USER}],
        extra_headers={"x-sim-cached-tokens": "2", "x-sim-reasoning-tokens": "3"},
    )
    assert completion.choices[0].message.content == expected_text()
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == PROMPT_TOKENS
    assert usage.completion_tokens == len(completion_words(USER, None)) + 3
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 2
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3


def test_openai_chat_stream(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="sim-gpt",
        messages=[{"role": "user", "content": USER}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text(6)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS


def test_openai_embeddings(openai_client: openai.OpenAI) -> None:
    # The SDK asks for base64 and decodes it.
    result = openai_client.embeddings.create(model="sim-embed", input=["one two", "three"])
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert all(-1.0 <= x <= 1.0 for x in result.data[0].embedding)
    assert result.usage.prompt_tokens == 3
    floats = openai_client.embeddings.create(
        model="sim-embed", input=["one two", "three"], encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)


def test_openai_responses(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model="sim-gpt", input=USER)
    assert response.output_text == expected_text()
    assert response.usage is not None
    assert response.usage.input_tokens == PROMPT_TOKENS
    assert response.usage.output_tokens == len(completion_words(USER, None))


def test_openai_responses_stream(openai_client: openai.OpenAI) -> None:
    with openai_client.responses.stream(model="sim-gpt", input=USER, max_output_tokens=5) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == expected_text(5)
    assert final.output_text == expected_text(5)
    assert final.usage is not None
    assert final.usage.output_tokens == 5


def test_anthropic_messages(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model="sim-claude",
        max_tokens=100,
        messages=[{"role": "user", "content": USER}],
        extra_headers={"x-sim-cached-tokens": "3", "x-sim-cache-write-tokens": "1"},
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == expected_text()
    assert message.usage.input_tokens == PROMPT_TOKENS - 3 - 1
    assert message.usage.cache_read_input_tokens == 3
    assert message.usage.cache_creation_input_tokens == 1
    assert message.usage.output_tokens == len(completion_words(USER, None))


def test_anthropic_messages_stream(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(
        model="sim-claude", max_tokens=7, messages=[{"role": "user", "content": USER}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text(7)
    assert final.stop_reason == "max_tokens"
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert final.usage.output_tokens == 7


def test_gemini_generate_content(genai_client: genai.Client) -> None:
    response = genai_client.models.generate_content(
        model="sim-gemini",
        contents=USER,
        config=types.GenerateContentConfig(
            http_options=types.HttpOptions(headers={"x-sim-reasoning-tokens": "4"})
        ),
    )
    assert response.text == expected_text()
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == PROMPT_TOKENS
    assert usage.candidates_token_count == len(completion_words(USER, None))
    assert usage.thoughts_token_count == 4


def test_gemini_generate_content_stream(genai_client: genai.Client) -> None:
    chunks = list(
        genai_client.models.generate_content_stream(
            model="sim-gemini",
            contents=USER,
            config=types.GenerateContentConfig(max_output_tokens=9),
        )
    )
    assert len(chunks) == 9
    assert "".join(c.text or "" for c in chunks) == expected_text(9)
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 9
    assert last.usage_metadata.total_token_count == PROMPT_TOKENS + 9
