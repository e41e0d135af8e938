"""Model name -> provider and upstream model. Upstream credentials live only here.

Order: an explicit ``[models."NAME"]`` route; a provider listing the model; ``sim-*`` to the
simulator (``APICREDITS_SIM_URL``); otherwise the provider the tariff names for the model,
if that provider is configured with a key. Built-in providers (``openai``, ``anthropic``,
``google``) only need their API key in the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from apicredits.errors import InvalidInput, UnknownModel
from apicredits.settings import ProviderSettings, Settings
from apicredits.tariffs import TariffVersion

BUILTIN = {
    "openai": ProviderSettings(
        base_url="https://api.openai.com", dialects=["openai"], api_key_env="OPENAI_API_KEY"
    ),
    "anthropic": ProviderSettings(
        base_url="https://api.anthropic.com",
        dialects=["anthropic"],
        api_key_env="ANTHROPIC_API_KEY",
    ),
    "google": ProviderSettings(
        base_url="https://generativelanguage.googleapis.com",
        dialects=["gemini"],
        api_key_env="GEMINI_API_KEY",
    ),
}


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base_url: str
    dialects: frozenset[str]
    api_key: str | None = None
    is_simulator: bool = False
    models: frozenset[str] = field(default_factory=frozenset)

    def auth_headers(self, dialect: str) -> dict[str, str]:
        if self.api_key is None:
            return {}
        if dialect == "anthropic":
            return {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}
        if dialect == "gemini":
            return {"x-goog-api-key": self.api_key}
        return {"authorization": f"Bearer {self.api_key}"}


@dataclass(frozen=True, slots=True)
class Target:
    upstream: Upstream
    model: str  # the name clients use, priced by the tariff
    upstream_model: str


class Router:
    def __init__(self, settings: Settings) -> None:
        self.upstreams: dict[str, Upstream] = {
            "sim": Upstream(
                "sim",
                settings.sim_url.rstrip("/"),
                frozenset({"openai", "anthropic", "gemini"}),
                is_simulator=True,
            )
        }
        for name, cfg in {**BUILTIN, **settings.providers}.items():
            key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
            if cfg.api_key_env and not key and name not in settings.providers:
                continue  # a built-in provider without a key is simply not offered
            self.upstreams[name] = Upstream(
                name,
                cfg.base_url.rstrip("/"),
                frozenset(cfg.dialects),
                key,
                models=frozenset(cfg.models),
            )
        for model, route in settings.models.items():
            if route.provider not in self.upstreams:
                raise InvalidInput(f"model {model!r} routes to unknown provider {route.provider!r}")
        self.models = settings.models

    def resolve(self, model: str, dialect: str, tariff: TariffVersion) -> Target:
        target = self._find(model, tariff)
        if dialect not in target.upstream.dialects:
            raise InvalidInput(
                f"model {model!r} is served by {target.upstream.name}, which does not speak "
                f"the {dialect} API; call it on its own route",
                field="model",
            )
        return target

    def _find(self, model: str, tariff: TariffVersion) -> Target:
        route = self.models.get(model)
        if route is not None:
            return Target(self.upstreams[route.provider], model, route.upstream_model or model)
        for upstream in self.upstreams.values():
            if model in upstream.models:
                return Target(upstream, model, model)
        if model.startswith("sim-"):
            return Target(self.upstreams["sim"], model, model)
        rate = tariff.rates.get(model)
        if rate is not None and rate.provider in self.upstreams:
            return Target(self.upstreams[rate.provider], model, model)
        raise UnknownModel(f"model {model!r} is not available on this gateway", model=model)

    def routable(self, model: str, tariff: TariffVersion, dialect: str | None = None) -> bool:
        """Whether ``model`` can be called here (on ``dialect``'s routes, if given)."""
        try:
            target = self._find(model, tariff)
        except UnknownModel:
            return False
        return dialect is None or dialect in target.upstream.dialects

    def provider_names(self) -> list[str]:
        return sorted(self.upstreams)
