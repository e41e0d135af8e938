"""The one settings class. Sources, highest first: constructor arguments, ``APICREDITS_*``
environment variables, the TOML file named by ``APICREDITS_CONFIG`` (default
``apicredits.toml`` in the working directory, if present), then the defaults below."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from apicredits.errors import InvalidInput

DEFAULT_CONFIG_FILE = "apicredits.toml"
Dialect = Literal["openai", "anthropic", "gemini"]


def _upstream_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an http:// or https:// URL with a host is needed, got {value!r}")
    return value


# Checked at start, not at the first call routed there.
UpstreamUrl = Annotated[str, AfterValidator(_upstream_url)]


def _redis_url(value: str) -> str:
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"a redis://, rediss:// or unix:// URL is needed, got {value!r}")
    return value


RedisUrl = Annotated[str, AfterValidator(_redis_url)]


class ProviderSettings(BaseModel):
    """An upstream provider: ``[providers.NAME]`` in the TOML file."""

    model_config = ConfigDict(extra="forbid")

    base_url: UpstreamUrl
    dialects: list[Dialect] = Field(
        default_factory=lambda: list[Dialect](["openai"]), description="the wire formats it speaks"
    )
    api_key_env: str | None = Field(None, description="env var holding the upstream API key")
    models: list[str] = Field(default_factory=list, description="models it serves (exact)")
    usage_signer: str | None = Field(
        None, description="address whose key signs its usage events (no chain registry)"
    )
    signs_usage: bool = Field(
        False, description="send it the apicredits-usage-context header to sign usage"
    )


class ModelRoute(BaseModel):
    """``[models."NAME"]``: route a model name to a provider (and its upstream name)."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    upstream_model: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APICREDITS_", extra="forbid")

    data_dir: Path = Field(Path(".apicredits"), description="where embedded state lives")
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default: SQLite file under data_dir"
    )
    redis_url: RedisUrl | None = Field(None, description="unset = in-process limits")
    admin_token: SecretStr | None = Field(
        None, description="control-plane token; default: generated once under data_dir"
    )
    tariff_file: Path | None = Field(None, description="TOML rate cards to load at start")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    lock_timeout_seconds: int = Field(300, ge=1, le=7 * 86400)
    quote_ttl_seconds: int = Field(600, ge=1, le=86400)
    sweep_interval_seconds: float = Field(5.0, gt=0)
    db_pool_size: int = Field(10, ge=1)
    sim_url: UpstreamUrl = Field(
        "http://127.0.0.1:9100", description="the provider simulator (sim-*)"
    )
    sim_signs_usage: bool = Field(
        False, description="send the simulator usage contexts (provider-sim --signing-key)"
    )
    sim_usage_signer: str | None = Field(
        None, description="the simulator's usage signer address (no chain registry)"
    )
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    default_max_output_tokens: int = Field(4096, ge=1)
    max_output_tokens_limit: int = Field(1_000_000, ge=1)
    upstream_timeout_seconds: float = Field(120.0, gt=0)
    max_upstream_body_bytes: int = Field(
        256 * 2**20,
        ge=1024,
        description="a provider's answer, or one event of its stream, larger than this is a 502",
    )
    # On SIGTERM, how long in-flight requests (streams included) may finish before the
    # worker closes them; their locks are refunded or expire either way.
    shutdown_timeout_seconds: int = Field(30, ge=1, le=3600)
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    auth_cache_seconds: float = Field(5.0, ge=0, description="how long a key lookup is cached")
    redis_prefix: str = Field("apicredits:", description="prefix of every Redis key")
    # -- capability tokens (auth)
    public_url: str | None = Field(
        None, description="the gateway's external base URL (DPoP htu); default: from requests"
    )
    token_issuer: str = Field("apicredits", min_length=1, description="iss and aud of tokens")
    token_ttl_seconds: int = Field(900, ge=60, le=3600, description="default token lifetime")
    signing_key_overlap_seconds: int = Field(
        3600, ge=0, description="how long a retired signing key still verifies"
    )
    dpop_nonces: bool = Field(True, description="require server nonces in DPoP proofs")
    auth_refresh_seconds: float = Field(
        1.0, gt=0, description="how often workers pick up revocations and key rotations"
    )
    # -- chain (on-chain credits): unset RPC URL = the embedded chain under data_dir/chain
    chain_rpc_url: str | None = Field(None, description="JSON-RPC URL; unset = embedded chain")
    chain_id: int | None = Field(
        None, ge=1, description="expected chain id (checked against the node)"
    )
    chain_keyfile: Path | None = Field(None, description="encrypted JSON keystore of the deployer")
    chain_keyfile_password: SecretStr | None = None
    chain_keyfile_password_file: Path | None = None
    chain_private_key: SecretStr | None = Field(None, description="deployer key (hex)")
    chain_confirmations: int | None = Field(
        None, ge=0, description="blocks before a deposit counts; default 0 embedded, 2 RPC"
    )
    chain_deployment_file: Path | None = Field(
        None, description="default: data_dir/chain/deployment-<chain id>.json"
    )
    chain_withdraw_delay_seconds: int = Field(86400, ge=0, le=365 * 86400)
    chain_poll_seconds: float = Field(2.0, gt=0, description="how often the indexer polls")
    chain_log_range: int = Field(
        5000, ge=1, description="most blocks one eth_getLogs spans (RPC); wider reads are split"
    )
    # -- usage events (verifiable usage): every usage record becomes a signed usage event
    usage_events: bool = Field(
        False,
        description="sign usage events inside the gateway (else `apicredits settle` signs them: "
        "signing in the gateway costs about half its req/s at saturation, bench/gateway.py)",
    )
    metering_key_file: Path | None = Field(
        None, description="the gateway's secp256k1 metering key; default data_dir/metering-key"
    )
    usage_producer_interval_seconds: float = Field(
        1.0, gt=0, description="how often new usage records are signed"
    )
    usage_producer_batch: int = Field(500, ge=1, le=10_000)
    usage_emit_max_events: int = Field(1000, ge=1, le=10_000, description="per emit request")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("APICREDITS_CONFIG", DEFAULT_CONFIG_FILE))
        try:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{config_file} is not valid TOML: {exc}") from None
        return (init_settings, env_settings, toml)

    @property
    def effective_metering_key_file(self) -> Path:
        return self.metering_key_file or self.data_dir / "metering-key"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'apicredits.db').resolve()}"

    def resolve_admin_token(self) -> str:
        """The configured admin token, or one generated once and kept (0600) in data_dir."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        path = self.data_dir / "admin-token"
        if path.exists():
            return path.read_text().strip()
        import secrets

        self.data_dir.mkdir(parents=True, exist_ok=True)
        token = "act_" + secrets.token_urlsafe(32)
        tmp = path.with_name(f".admin-token.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        try:
            os.link(tmp, path)  # never replaces a token another process made first
        except FileExistsError:
            token = path.read_text().strip()
        finally:
            tmp.unlink()
        return token
