"""Settings: environment over TOML file over defaults; bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from apicredits.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.redis_url is None
    assert s.admin_token is None
    assert (
        s.effective_database_url
        == f"sqlite+aiosqlite:///{tmp_path / '.apicredits' / 'apicredits.db'}"
    )


def test_env_beats_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('redis_url = "redis://from-toml"\nport = 9001\ndata_dir = "/srv/x"\n')
    monkeypatch.setenv("APICREDITS_CONFIG", str(config))
    monkeypatch.setenv("APICREDITS_REDIS_URL", "redis://from-env")
    s = Settings()
    assert (s.redis_url, s.port, s.data_dir) == ("redis://from-env", 9001, Path("/srv/x"))
    assert s.effective_database_url.endswith("/srv/x/apicredits.db")


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APICREDITS_PORT", "not-a-port")
    with pytest.raises(ValidationError):
        Settings()


def test_unknown_toml_keys_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("redis_ulr = 'typo'\n")
    monkeypatch.setenv("APICREDITS_CONFIG", str(config))
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "https://api.openai.com/"])
def test_an_upstream_url_is_http_with_a_host(url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sim_url=url, providers={"p": {"base_url": url}})
    assert settings.providers["p"].base_url == settings.sim_url == url


@pytest.mark.parametrize("url", ["ftp://10.0.0.5", "localhost:9100", "http://", "/v1"])
def test_an_upstream_url_that_is_not_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="an http:// or https:// URL with a host"):
        Settings(data_dir=tmp_path, sim_url=url)
    with pytest.raises(ValidationError, match="an http:// or https:// URL with a host"):
        Settings(data_dir=tmp_path, providers={"p": {"base_url": url}})


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h", "unix:///run/r.sock"])
def test_a_redis_url_is_accepted(url: str, tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, redis_url=url).redis_url == url


@pytest.mark.parametrize("url", ["127.0.0.1:6379", "http://127.0.0.1:6379", "notredis"])
def test_a_redis_url_that_is_not_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="a redis://, rediss:// or unix:// URL"):
        Settings(data_dir=tmp_path, redis_url=url)


def test_admin_token_is_generated_once(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d")
    token = s.resolve_admin_token()
    assert token.startswith("act_")
    assert len(token) > 30
    assert Settings(data_dir=tmp_path / "d").resolve_admin_token() == token
    assert (tmp_path / "d" / "admin-token").stat().st_mode & 0o777 == 0o600
