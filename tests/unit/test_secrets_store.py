"""SecretStore: the TTL cache on an injected clock, invalidation, the access record."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from bot.config import Settings
from bot.runtime.clock import SimClock
from bot.runtime.secrets import (
    EnvSecrets,
    FileSecrets,
    SecretsError,
    SecretStore,
    exchange_credentials,
    fresh_credentials,
    store_for,
)

S = 1_000_000_000
FIRST = "first-value-1111"  # pragma: allowlist secret
ROTATED = "rotated-value-2222"  # pragma: allowlist secret


def env_store(ttl_s: float = 60) -> tuple[dict[str, str], SimClock, SecretStore]:
    env = {"MMBOT_API_KEY": FIRST}
    clock = SimClock(100 * S)
    return env, clock, SecretStore(EnvSecrets(env), ttl_s, clock)


def test_a_rotated_secret_is_seen_after_the_ttl_and_not_before() -> None:
    env, clock, store = env_store(ttl_s=60)
    assert store.get("api_key") == SecretStr(FIRST)
    env["MMBOT_API_KEY"] = ROTATED
    clock.advance_to(159 * S)
    assert store.get("api_key") == SecretStr(FIRST)
    clock.advance_to(160 * S)
    assert store.get("api_key") == SecretStr(ROTATED)
    assert [a.hit for a in store.accesses] == [False, True, False]


def test_invalidate_one_or_all() -> None:
    env, _, store = env_store()
    env["MMBOT_API_SECRET"] = FIRST
    store.get("api_key"), store.get("api_secret")
    env.update(MMBOT_API_KEY=ROTATED, MMBOT_API_SECRET=ROTATED)
    store.invalidate("api_key")
    assert store.get("api_key") == SecretStr(ROTATED)
    assert store.get("api_secret") == SecretStr(FIRST)
    store.invalidate()
    assert store.get("api_secret") == SecretStr(ROTATED)
    with pytest.raises(SecretsError, match="unknown secret 'api_kee'"):
        store.invalidate("api_kee")


def test_a_zero_ttl_asks_the_provider_every_time() -> None:
    env, _, store = env_store(ttl_s=0)
    store.get("api_key")
    env["MMBOT_API_KEY"] = ROTATED
    assert store.get("api_key") == SecretStr(ROTATED)


def test_every_access_is_recorded_without_its_value() -> None:
    _, clock, store = env_store()
    with capture_logs() as logs:
        store.get("api_key")
        clock.advance_to(101 * S)
        store.get("api_key")
    first, second = store.accesses
    assert (first.name, first.ts_ns, first.provider, first.hit) == (
        "api_key",
        100 * S,
        "env",
        False,
    )
    assert (second.ts_ns, second.hit) == (101 * S, True)
    # the caller is this test, not the store's own machinery
    assert first.caller == f"{__name__}.test_every_access_is_recorded_without_its_value"
    lines = [line for line in logs if line["event"] == "secret_access"]
    assert [line["cache"] for line in lines] == ["miss", "hit"]
    assert (lines[0]["caller"], lines[0]["secret"]) == (first.caller, first.name)
    assert FIRST not in repr(store.accesses) and FIRST not in repr(logs)


def test_a_failed_read_is_on_the_record(tmp_path: Path) -> None:
    store = SecretStore(FileSecrets(tmp_path / "absent.yaml"), 60, SimClock())
    with pytest.raises(SecretsError, match="cannot read"):
        store.get("api_key")
    assert [(a.name, a.provider, a.hit) for a in store.accesses] == [("api_key", "file", False)]


def test_settings_values_win_and_the_venue_reread_goes_past_the_cache() -> None:
    env = {"MMBOT_API_KEY": FIRST, "MMBOT_API_SECRET": FIRST}
    explicit = "explicit-key-3333"  # pragma: allowlist secret
    settings = Settings(mode="live", secrets={"provider": "env", "api_key": explicit})
    store = store_for(settings, env, SimClock())
    creds = exchange_credentials(settings, store=store)
    assert creds.api_key == SecretStr(explicit)
    env["MMBOT_API_SECRET"] = ROTATED
    assert exchange_credentials(settings, store=store).api_secret == SecretStr(FIRST)
    assert fresh_credentials(settings, store).api_secret == SecretStr(ROTATED)
    sources = [(a.name, a.provider, a.hit) for a in store.accesses]
    assert sources[:2] == [("api_key", "settings", True), ("api_secret", "env", False)]
    assert sources[-1] == ("api_secret", "env", False)


def test_the_ttl_setting() -> None:
    assert Settings().secrets.cache_ttl_s == 300
    settings = Settings(secrets={"provider": "env", "cache_ttl_s": 5})
    env = {"MMBOT_API_KEY": FIRST}
    clock = SimClock()
    store = store_for(settings, env, clock)
    store.get("api_key")
    env["MMBOT_API_KEY"] = ROTATED
    clock.advance_to(5 * S)
    assert store.get("api_key") == SecretStr(ROTATED)
