"""Where credentials come from, and the set of every secret value in play.

A provider answers `get(name)` with a SecretStr or None; it never logs or returns a
plain string. `secret_values` collects every secret a run can see so that logging
can redact them (telemetry.configure_logging(secrets=...)).

Providers (settings.secrets.provider):
  none  no credentials: shadow and paper runs send no orders.
  env   MMBOT_API_KEY, MMBOT_API_SECRET, MMBOT_S3_ACCESS_KEY_ID, MMBOT_S3_SECRET_ACCESS_KEY.
  file  a YAML or JSON mapping {api_key: ..., api_secret: ...} at settings.secrets.path;
        refused unless only its owner can read it (chmod 600).
A value set in the settings themselves (MMBOT_SECRETS__API_KEY, --set) wins over
the provider.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import yaml
from pydantic import SecretStr

from bot.config import SecretsConfig, Settings

SECRET_NAMES: Final = ("api_key", "api_secret", "s3_access_key_id", "s3_secret_access_key")
ENV_NAMES: Final[Mapping[str, str]] = {name: f"MMBOT_{name.upper()}" for name in SECRET_NAMES}
_URL_PASSWORD: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:(?P<password>[^@/\s]+)@")


class SecretsError(Exception):
    """A credential that is missing or unreadable. Names the secret and where it was
    looked for; never carries a secret value."""

    def __init__(self, message: str, *, name: str | None = None, provider: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.provider = provider


class SecretsProvider(Protocol):
    name: str

    def get(self, secret: str) -> SecretStr | None: ...


class NoSecrets:
    name = "none"

    def get(self, secret: str) -> SecretStr | None:
        _check_name(secret)
        return None


class EnvSecrets:
    name = "env"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env

    def get(self, secret: str) -> SecretStr | None:
        _check_name(secret)
        value = self._env.get(ENV_NAMES[secret])
        return SecretStr(value) if value else None


class FileSecrets:
    """Reads the file once, on first use, so a run sees one consistent set."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._values: dict[str, SecretStr] | None = None

    def get(self, secret: str) -> SecretStr | None:
        _check_name(secret)
        if self._values is None:
            self._values = self._load()
        return self._values.get(secret)

    def _load(self) -> dict[str, SecretStr]:
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            self._check_private(mode)
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretsError(
                f"secrets file {self.path}: cannot read ({exc.strerror})", provider=self.name
            ) from None
        try:
            raw = json.loads(text) if self.path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError):
            # The parser's message may quote the line, and the line may hold a secret.
            raise SecretsError(
                f"secrets file {self.path}: not valid {self.path.suffix.lstrip('.') or 'YAML'}",
                provider=self.name,
            ) from None
        if not isinstance(raw, dict):
            raise SecretsError(
                f"secrets file {self.path}: expected a mapping of {', '.join(SECRET_NAMES)}",
                provider=self.name,
            )
        return self._parse(raw)

    def _check_private(self, mode: int) -> None:
        """Credentials others on the host can read (or swap) are already leaked."""
        if mode & 0o077:
            raise SecretsError(
                f"secrets file {self.path}: mode {mode:04o} lets group or others read or "
                f"write it; run `chmod 600 {self.path}`",
                provider=self.name,
            )

    def _parse(self, raw: Mapping[Any, Any]) -> dict[str, SecretStr]:
        values: dict[str, SecretStr] = {}
        for key, value in raw.items():
            if key not in SECRET_NAMES:
                raise SecretsError(
                    f"secrets file {self.path}: unknown secret {key!r} "
                    f"(expected one of {', '.join(SECRET_NAMES)})",
                    name=str(key),
                    provider=self.name,
                )
            if value is None:
                continue
            if not isinstance(value, str | int):
                raise SecretsError(
                    f"secrets file {self.path}: {key} must be a string",
                    name=key,
                    provider=self.name,
                )
            values[key] = SecretStr(str(value))
        return values


def _check_name(secret: str) -> None:
    if secret not in SECRET_NAMES:
        raise SecretsError(
            f"unknown secret {secret!r} (expected one of {', '.join(SECRET_NAMES)})", name=secret
        )


def provider_for(config: SecretsConfig, env: Mapping[str, str] | None = None) -> SecretsProvider:
    if config.provider == "env":
        return EnvSecrets(env)
    if config.provider == "file":
        if not config.path:
            raise SecretsError("secrets provider 'file' needs secrets.path", provider="file")
        return FileSecrets(config.path)
    return NoSecrets()


def get_secret(
    settings: Settings, secret: str, env: Mapping[str, str] | None = None
) -> SecretStr | None:
    """One credential: the settings' own value first, then the provider."""
    _check_name(secret)
    explicit: SecretStr | None = getattr(settings.secrets, secret)
    if explicit is not None and explicit.get_secret_value():
        return explicit
    return provider_for(settings.secrets, env).get(secret)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Exchange API credentials; repr shows only the mask."""

    api_key: SecretStr
    api_secret: SecretStr


def exchange_credentials(settings: Settings, env: Mapping[str, str] | None = None) -> Credentials:
    """The API key pair for live and canary runs; SecretsError names what is missing."""
    found = {name: get_secret(settings, name, env) for name in ("api_key", "api_secret")}
    missing = [name for name, value in found.items() if value is None]
    if missing:
        provider = settings.secrets.provider
        where = {
            "env": " or ".join(ENV_NAMES[name] for name in missing),
            "file": str(settings.secrets.path),
            "none": "nowhere: secrets.provider is 'none'",
        }[provider]
        raise SecretsError(
            f"missing exchange credential {', '.join(missing)} (looked in {where})",
            name=missing[0],
            provider=provider,
        )
    api_key, api_secret = found["api_key"], found["api_secret"]
    assert api_key is not None and api_secret is not None  # checked just above
    return Credentials(api_key=api_key, api_secret=api_secret)


def secret_values(settings: Settings, env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value a run can see: SecretStr fields, what the provider holds,
    and passwords inside storage URLs. For redaction only; never print it.

    A provider that cannot be read contributes nothing (it cannot leak what it
    could not read); the run itself fails later on exchange_credentials.
    """
    values: set[str] = set()
    provider = provider_for(settings.secrets, env)
    for name in SECRET_NAMES:
        explicit: SecretStr | None = getattr(settings.secrets, name)
        if explicit is not None:
            values.add(explicit.get_secret_value())
        try:
            held = provider.get(name)
        except SecretsError:
            continue
        if held is not None:
            values.add(held.get_secret_value())
    storage = settings.storage
    for url in (storage.redis_url, storage.artifacts_url, storage.s3_endpoint_url):
        match = _URL_PASSWORD.search(url or "")
        if match:
            values.add(match["password"])
    values.discard("")
    return values
