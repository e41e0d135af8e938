"""Model name → provider: which models a gateway offers, and on which routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicredits.errors import InvalidInput, UnknownModel
from apicredits.gateway.routing import Router
from apicredits.settings import Settings
from apicredits.tariffs import default_tariff

TARIFF = default_tariff()


def router(tmp_path: Path, **settings: object) -> Router:
    return Router(Settings(data_dir=tmp_path, **settings))  # type: ignore[arg-type]


def test_a_provider_serves_its_models_on_its_own_dialects_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local = {"base_url": "http://10.0.0.5:8000", "dialects": ["openai"], "models": ["gpt-4o"]}
    r = router(tmp_path, providers={"local": local})
    assert r.routable("gpt-4o", TARIFF)
    assert r.routable("gpt-4o", TARIFF, dialect="openai")
    assert not r.routable("gpt-4o", TARIFF, dialect="anthropic")  # not in Anthropic's list
    assert r.routable("sim-claude", TARIFF, dialect="anthropic")  # the simulator speaks all
    with pytest.raises(InvalidInput, match="does not speak the anthropic API"):
        r.resolve("gpt-4o", "anthropic", TARIFF)


def test_a_priced_model_without_a_provider_is_not_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    r = router(tmp_path)
    assert not r.routable("claude-sonnet-4", TARIFF)
    with pytest.raises(UnknownModel):
        r.resolve("claude-sonnet-4", "anthropic", TARIFF)
