"""Where credentials come from, and the set of every secret value in play.

A provider answers `get(name)` with a SecretStr or None; it never logs or returns a
plain string. `secret_values` collects every secret a run can see so that logging
can redact them (telemetry.configure_logging(secrets=...)).

Providers (settings.secrets.provider):
  none  no credentials: shadow and paper runs send no orders.
  env   MMBOT_API_KEY, MMBOT_API_SECRET, MMBOT_S3_ACCESS_KEY_ID, MMBOT_S3_SECRET_ACCESS_KEY.
  file  a YAML or JSON mapping {api_key: ..., api_secret: ...} at settings.secrets.path;
        refused unless only its owner can read it (chmod 600).
  aws   one AWS Secrets Manager secret (settings.secrets.aws_secret_id) whose
        SecretString is a JSON object of the same names.
A value set in the settings themselves (MMBOT_SECRETS__API_KEY, --set) wins over
the provider.

Providers read their source on every `get`; a SecretStore in front of one reuses a
value for secrets.cache_ttl_s, so a rotated secret is picked up within the TTL (or at
once after `invalidate`), and records every access (never the value).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import stat
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import structlog
import yaml
from pydantic import SecretStr

from bot.config import SecretsConfig, Settings
from bot.profiles import mask_url_passwords
from bot.runtime.clock import Clock, default_clock, iso_utc

log = structlog.get_logger(__name__)

SECRET_NAMES: Final = ("api_key", "api_secret", "s3_access_key_id", "s3_secret_access_key")
ENV_NAMES: Final[Mapping[str, str]] = {name: f"MMBOT_{name.upper()}" for name in SECRET_NAMES}
_NS_PER_S: Final = 1_000_000_000
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
    """Reads the file on every get: a SecretStore in front decides how often."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def get(self, secret: str) -> SecretStr | None:
        _check_name(secret)
        return self._load().get(secret)

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
        return parse_mapping(raw, f"secrets file {self.path}", self.name)

    def _check_private(self, mode: int) -> None:
        """Credentials others on the host can read (or swap) are already leaked."""
        if mode & 0o077:
            raise SecretsError(
                f"secrets file {self.path}: mode {mode:04o} lets group or others read or "
                f"write it; run `chmod 600 {self.path}`",
                provider=self.name,
            )


class SecretNotFound(SecretsError):
    """The secret store has no such secret."""


class SecretDenied(SecretsError):
    """The secret store refused our identity or its permissions."""


class SecretsUnreachable(SecretsError):
    """The secret store did not answer."""


class SecretMalformed(SecretsError):
    """The secret is there but is not a JSON object of SECRET_NAMES."""


_DENIED_CODES: Final = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
     "ExpiredTokenException", "DecryptionFailure", "InvalidClientTokenId"}
)  # fmt: skip


class AwsSecrets:
    """One AWS Secrets Manager secret whose SecretString is a JSON object of
    SECRET_NAMES; asked on every get (a SecretStore in front decides how often).
    Credentials for Secrets Manager itself come from boto3's usual chain (AWS_*
    environment, profile, instance role): they cannot live in the secret they open."""

    name = "aws"

    def __init__(self, secret_id: str, region: str, endpoint_url: str | None = None) -> None:
        self.secret_id = secret_id
        self.region = region
        self.endpoint_url = endpoint_url
        # named in every message; a password in the endpoint URL is masked
        self.where = (
            f"AWS secret {secret_id} (region {region}, "
            f"endpoint {mask_url_passwords(endpoint_url or 'aws')})"
        )
        self._client: Any = None

    def get(self, secret: str) -> SecretStr | None:
        _check_name(secret)
        return self._load().get(secret)

    def _load(self) -> dict[str, SecretStr]:
        try:
            answer = self._connect().get_secret_value(SecretId=self.secret_id)
        except Exception as exc:
            # botocore quotes request URLs in its messages: ours names the secret and
            # endpoint only, and `from None` keeps the raw text out of tracebacks
            raise self._typed(exc) from None
        text = answer.get("SecretString")
        try:
            raw = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError:
            raw = None  # the decoder's message quotes the text, which is the secret
        if not isinstance(raw, dict):
            raise SecretMalformed(
                f"{self.where}: SecretString is not a JSON object of {', '.join(SECRET_NAMES)}",
                provider=self.name,
            )
        return parse_mapping(raw, self.where, self.name)

    def _connect(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                region_name=self.region,
                retries={"total_max_attempts": 2, "mode": "standard"},
                connect_timeout=3,
                read_timeout=10,
            )
            self._client = boto3.session.Session().client(
                "secretsmanager", endpoint_url=self.endpoint_url, config=config
            )
        return self._client

    def _typed(self, exc: Exception) -> SecretsError:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return SecretDenied(
                f"{self.where}: no AWS credentials to open it (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role)",
                provider=self.name,
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "ResourceNotFoundException":
                return SecretNotFound(f"{self.where}: no such secret", provider=self.name)
            # a server may answer a refused signature with a bare 403 and no code
            if code in _DENIED_CODES or status == 403:
                return SecretDenied(
                    f"{self.where}: access denied ({code}); the identity needs "
                    "secretsmanager:GetSecretValue on it",
                    provider=self.name,
                )
            return SecretsError(f"{self.where}: refused ({code})", provider=self.name)
        if isinstance(exc, BotoCoreError):
            return SecretsUnreachable(
                f"{self.where}: unreachable ({type(exc).__name__})", provider=self.name
            )
        raise exc


def parse_mapping(raw: Mapping[Any, Any], where: str, provider: str) -> dict[str, SecretStr]:
    """A provider's {name: value} mapping; `where` names the source in errors."""
    values: dict[str, SecretStr] = {}
    for key, value in raw.items():
        if key not in SECRET_NAMES:
            raise SecretsError(
                f"{where}: unknown secret {key!r} (expected one of {', '.join(SECRET_NAMES)})",
                name=str(key),
                provider=provider,
            )
        if value is None:
            continue
        if not isinstance(value, str | int):
            raise SecretsError(f"{where}: {key} must be a string", name=key, provider=provider)
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
    if config.provider == "aws":
        if not config.aws_secret_id:
            raise SecretsError("secrets provider 'aws' needs secrets.aws_secret_id", provider="aws")
        return AwsSecrets(config.aws_secret_id, config.aws_region, config.aws_endpoint_url)
    return NoSecrets()


@dataclass(frozen=True, slots=True)
class SecretAccess:
    """One read of a secret: which, when, by whom, from where. Never the value."""

    name: str
    ts_ns: int
    caller: str
    provider: str
    hit: bool


class SecretStore:
    """A provider behind a TTL cache on an injected clock.

    A value is reused for `ttl_s` and then asked of the provider again, so a rotated
    secret takes effect without a restart; `invalidate` forgets at once (the venue
    refused the key). Values set in the settings (`explicit`) win over the provider
    and are never expired. The last `history` accesses stay in `accesses`.
    """

    def __init__(
        self,
        provider: SecretsProvider,
        ttl_s: float,
        clock: Clock,
        *,
        explicit: Mapping[str, SecretStr] | None = None,
        history: int = 1024,
    ) -> None:
        self.provider = provider
        self._ttl_ns = int(ttl_s * _NS_PER_S)
        self._clock = clock
        self._explicit = dict(explicit or {})
        self._cache: dict[str, tuple[int, SecretStr | None]] = {}
        self._accesses: deque[SecretAccess] = deque(maxlen=history)

    @property
    def accesses(self) -> tuple[SecretAccess, ...]:
        return tuple(self._accesses)

    def get(self, name: str) -> SecretStr | None:
        _check_name(name)
        now = self._clock.now_ns()
        if name in self._explicit:
            self._record(name, now, "settings", hit=True)
            return self._explicit[name]
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self._ttl_ns:
            self._record(name, now, self.provider.name, hit=True)
            return cached[1]
        # recorded before the read, so a read that fails is on the record too
        self._record(name, now, self.provider.name, hit=False)
        value = self.provider.get(name)
        self._cache[name] = (now, value)
        return value

    def invalidate(self, name: str | None = None) -> None:
        """Forget one cached secret, or all of them: the next get asks the provider."""
        if name is None:
            self._cache.clear()
        else:
            _check_name(name)
            self._cache.pop(name, None)

    def _record(self, name: str, ts_ns: int, provider: str, *, hit: bool) -> None:
        access = SecretAccess(name, ts_ns, _caller(), provider, hit)
        self._accesses.append(access)
        log.info(
            "secret_access", secret=name, caller=access.caller, provider=provider,
            cache="hit" if hit else "miss", at=iso_utc(ts_ns),
        )  # fmt: skip


def _caller() -> str:
    """module.function of the first frame outside this module: who wanted the secret."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:  # pragma: no cover - only this module on the stack
        return "?"
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"


def store_for(
    settings: Settings, env: Mapping[str, str] | None = None, clock: Clock | None = None
) -> SecretStore:
    """The run's SecretStore: its provider, TTL and the settings' explicit values."""
    config = settings.secrets
    explicit = {}
    for name in SECRET_NAMES:
        value: SecretStr | None = getattr(config, name)
        if value is not None and value.get_secret_value():
            explicit[name] = value
    return SecretStore(
        provider_for(config, env), config.cache_ttl_s, clock or default_clock(), explicit=explicit
    )


def get_secret(
    settings: Settings, secret: str, env: Mapping[str, str] | None = None
) -> SecretStr | None:
    """One credential, read once: the settings' own value first, then the provider."""
    return store_for(settings, env).get(secret)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Exchange API credentials; repr shows only the mask."""

    api_key: SecretStr
    api_secret: SecretStr


def exchange_credentials(
    settings: Settings, env: Mapping[str, str] | None = None, store: SecretStore | None = None
) -> Credentials:
    """The API key pair for live and canary runs (through `store` when given);
    SecretsError names what is missing."""
    store = store or store_for(settings, env)
    found = {name: store.get(name) for name in ("api_key", "api_secret")}
    missing = [name for name, value in found.items() if value is None]
    if missing:
        config = settings.secrets
        where = {
            "env": " or ".join(ENV_NAMES[name] for name in missing),
            "file": str(config.path),
            "aws": f"AWS secret {config.aws_secret_id}",
            "none": "nowhere: secrets.provider is 'none'",
        }[config.provider]
        raise SecretsError(
            f"missing exchange credential {', '.join(missing)} (looked in {where})",
            name=missing[0],
            provider=config.provider,
        )
    api_key, api_secret = found["api_key"], found["api_secret"]
    assert api_key is not None and api_secret is not None  # checked just above
    return Credentials(api_key=api_key, api_secret=api_secret)


def fresh_credentials(settings: Settings, store: SecretStore) -> Credentials:
    """The key pair read past the cache: the venue refused the one we hold."""
    store.invalidate("api_key")
    store.invalidate("api_secret")
    return exchange_credentials(settings, store=store)


def secret_values(settings: Settings, env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value a run can see: SecretStr fields, what the provider holds,
    and passwords inside storage URLs. For redaction only; never print it.

    A provider that cannot be read contributes nothing (it cannot leak what it
    could not read); the run itself fails later on exchange_credentials.
    """
    values: set[str] = set()
    for name in SECRET_NAMES:
        explicit: SecretStr | None = getattr(settings.secrets, name)
        if explicit is not None:
            values.add(explicit.get_secret_value())
    values |= _provider_values(provider_for(settings.secrets, env))
    storage = settings.storage
    for url in (storage.redis_url, storage.artifacts_url, storage.s3_endpoint_url):
        match = _URL_PASSWORD.search(url or "")
        if match:
            values.add(match["password"])
    values.discard("")
    return values


def _provider_values(provider: SecretsProvider) -> set[str]:
    """Straight from the provider, not through a SecretStore: this runs while logging
    is being set up, before a secret_access line could be redacted or even routed."""
    values: set[str] = set()
    for name in SECRET_NAMES:
        try:
            held = provider.get(name)
        except SecretsError:
            break  # unreadable as a whole (missing file, unreachable service)
        if held is not None:
            values.add(held.get_secret_value())
    return values
