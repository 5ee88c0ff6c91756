"""Secrets providers and the set of secret values used for redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.profiles import load_settings
from bot.runtime.secrets import (
    EnvSecrets,
    FileSecrets,
    NoSecrets,
    SecretsError,
    exchange_credentials,
    get_secret,
    provider_for,
    secret_values,
)

# pragma: allowlist nextline secret
ENV = {"MMBOT_API_KEY": "key-from-env-1234", "MMBOT_API_SECRET": "secret-from-env-5678"}


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_none_provider_holds_nothing() -> None:
    assert NoSecrets().get("api_key") is None
    settings = load_settings(None, env={})
    assert secret_values(settings, env=ENV) == set()
    with pytest.raises(SecretsError, match=r"secrets\.provider is 'none'"):
        exchange_credentials(settings, env=ENV)


def test_env_provider_reads_the_two_variables() -> None:
    settings = load_settings(None, overrides=["secrets.provider=env"], env={})
    creds = exchange_credentials(settings, env=ENV)
    assert isinstance(creds.api_key, SecretStr)
    assert creds.api_key.get_secret_value() == "key-from-env-1234"
    assert creds.api_secret.get_secret_value() == "secret-from-env-5678"
    assert "key-from-env-1234" not in repr(creds)
    assert secret_values(settings, env=ENV) == set(ENV.values())


def test_env_provider_names_the_missing_variable() -> None:
    settings = load_settings(None, overrides=["secrets.provider=env"], env={})
    with pytest.raises(SecretsError, match="MMBOT_API_SECRET") as caught:
        exchange_credentials(settings, env={"MMBOT_API_KEY": "k"})
    assert caught.value.name == "api_secret"
    assert isinstance(provider_for(settings.secrets, {}), EnvSecrets)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_provider(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"creds{suffix}"
    # pragma: allowlist nextline secret
    data = {"api_key": "file-key-abcd", "api_secret": "file-secret-efgh"}
    _private(path, json.dumps(data))  # JSON is also YAML
    settings = load_settings(
        None, overrides=["secrets.provider=file", f"secrets.path={path}"], env={}
    )
    creds = exchange_credentials(settings)
    assert creds.api_secret.get_secret_value() == "file-secret-efgh"
    assert secret_values(settings) == set(data.values())


def test_file_provider_rejects_unknown_names_without_echoing_values(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    _private(path, "api_key: k\napi_sekret: hush-hush-value\n")
    with pytest.raises(SecretsError, match="unknown secret 'api_sekret'") as caught:
        FileSecrets(path).get("api_key")
    assert "hush-hush-value" not in str(caught.value)


def test_file_provider_malformed_file_does_not_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    _private(path, "api_key: [leaky-value\n")
    with pytest.raises(SecretsError, match="not valid yaml") as caught:
        FileSecrets(path).get("api_key")
    assert "leaky-value" not in str(caught.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_file_provider_refuses_a_file_others_can_open(tmp_path: Path, mode: int) -> None:
    path = _private(tmp_path / "creds.yaml", "api_key: open-to-all-9876\n")
    path.chmod(mode)
    with pytest.raises(SecretsError) as caught:
        FileSecrets(path).get("api_key")
    message = str(caught.value)
    assert f"mode {mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert "open-to-all-9876" not in message
    path.chmod(0o400)  # owner-only read is fine too
    assert FileSecrets(path).get("api_key") == SecretStr("open-to-all-9876")


def test_missing_file_fails_on_use_but_not_for_redaction(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        overrides=["secrets.provider=file", f"secrets.path={tmp_path / 'absent.yaml'}"],
        env={},
    )
    with pytest.raises(SecretsError, match="cannot read"):
        exchange_credentials(settings)
    assert secret_values(settings) == set()


def test_explicit_setting_wins_over_provider() -> None:
    settings = load_settings(
        None, overrides=["secrets.provider=env", "secrets.api_key=explicit-key"], env={}
    )
    key = get_secret(settings, "api_key", env=ENV)
    assert key is not None and key.get_secret_value() == "explicit-key"
    assert {"explicit-key", "key-from-env-1234"} <= secret_values(settings, env=ENV)


def test_unknown_secret_name() -> None:
    with pytest.raises(SecretsError, match="unknown secret 'password'"):
        EnvSecrets({}).get("password")


def test_secret_values_include_url_passwords() -> None:
    settings = load_settings(
        # pragma: allowlist nextline secret
        None, overrides=["storage.redis_url=redis://bot:url-pass-99@redis:6379/0"], env={}
    )
    assert secret_values(settings) == {"url-pass-99"}
