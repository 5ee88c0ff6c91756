"""Settings loading: layers, sources, profiles, diff, redaction."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.config import SECRET_MASK, Settings
from bot.profiles import (
    PACKAGED_PROFILES,
    diff,
    find_profile,
    load_settings,
    redacted_dict,
    redacted_leaves,
    resolve,
)

SHIPPED = ("base", "demo", "shadow", "soak", "canary", "live")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with its own ./profiles (searched before the packaged ones)."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "profiles/base.yaml", "risk:\n  max_inventory_usd: 15000\n")
    write(
        tmp_path,
        "profiles/mid.yaml",
        """\
        extends: base
        risk:
          max_inventory_usd: 12000
          max_order_qty: 0.05
        run:
          seed: 11
        """,
    )
    write(tmp_path, "profiles/top.yaml", "extends: mid\nrun:\n  seed: 13\n")
    return tmp_path


# ---- shipped profiles


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_validates(name: str) -> None:
    resolved = resolve(PACKAGED_PROFILES / f"{name}.yaml", env={})
    assert isinstance(resolved.settings, Settings)
    assert Path(resolved.files[0]).name == "base.yaml"
    assert Path(resolved.files[-1]).name == f"{name}.yaml"


def test_shipped_profiles_say_what_the_issue_asks() -> None:
    demo, shadow, soak, canary, live = (
        load_settings(PACKAGED_PROFILES / f"{n}.yaml", env={})
        for n in ("demo", "shadow", "soak", "canary", "live")
    )
    assert (demo.mode, demo.data.source, demo.run.seed, demo.run.duration) == (
        "paper",
        "synth",
        7,
        "30m",
    )
    assert shadow.mode == "shadow"
    assert soak.run.duration == "24h" and soak.soak.hours == 24
    assert (canary.mode, canary.canary.fraction, canary.secrets.provider) == ("canary", 0.05, "env")
    assert (live.mode, live.secrets.provider) == ("live", "env")
    base = load_settings(PACKAGED_PROFILES / "base.yaml", env={})
    assert live.risk.max_inventory_usd < base.risk.max_inventory_usd
    assert live.risk.daily_loss_limit_usd < base.risk.daily_loss_limit_usd


def test_base_gate_thresholds_are_the_design_defaults() -> None:
    gates = load_settings(PACKAGED_PROFILES / "base.yaml", env={}).gates
    kpi, net = gates.kpi, gates.net_bps_by_tier["mm1"]  # net_bps is judged per fee tier
    assert (net.warn, net.fail) == (0.05, 0.0)
    assert (kpi["order_latency_p95_ms"].warn, kpi["order_latency_p95_ms"].fail) == (350, 400)


def test_profile_name_found_in_packaged_dir_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./profiles here
    assert find_profile("demo") == (PACKAGED_PROFILES / "demo.yaml").resolve()
    assert load_settings("demo", env={}).run.duration == "30m"


def test_local_profiles_dir_wins_over_packaged(here: Path) -> None:
    assert find_profile("base") == (here / "profiles" / "base.yaml").resolve()


# ---- precedence, one layer at a time


def test_defaults_only_without_profile() -> None:
    resolved = resolve(None, env={})
    assert resolved.settings == Settings()
    assert set(resolved.sources.values()) == {"default"}


def test_profile_chain_base_first(here: Path) -> None:
    resolved = resolve("top", env={})
    s, src = resolved.settings, resolved.sources
    assert resolved.files == ("profiles/base.yaml", "profiles/mid.yaml", "profiles/top.yaml")
    assert s.run.seed == 13 and src["run.seed"] == "profile:profiles/top.yaml"
    assert s.risk.max_inventory_usd == 12000
    assert src["risk.max_inventory_usd"] == "profile:profiles/mid.yaml"
    assert src["risk.max_order_qty"] == "profile:profiles/mid.yaml"
    assert src["risk.max_open_orders"] == "default"


def test_env_over_profile_nested_and_flat(here: Path) -> None:
    env = {
        "MMBOT_RISK__MAX_INVENTORY_USD": "5000",
        "MMBOT_REDIS_URL": "redis://localhost:6379/0",
        "MMBOT_ARTIFACTS_URL": "s3://bucket/prefix",
        "MMBOT_MODE": "shadow",
        "MMBOT_FREEZE_UTC": "2024-08-08T00:00:00Z",  # not configuration: ignored
        "MMBOT_API_KEY": "k",  # read by the env secrets provider, not the schema
    }
    resolved = resolve("top", env=env)
    s, src = resolved.settings, resolved.sources
    assert s.risk.max_inventory_usd == 5000.0
    assert src["risk.max_inventory_usd"] == "env:MMBOT_RISK__MAX_INVENTORY_USD"
    assert s.storage.redis_url == "redis://localhost:6379/0"
    assert src["storage.redis_url"] == "env:MMBOT_REDIS_URL"
    assert s.storage.artifacts_url == "s3://bucket/prefix"
    assert s.mode == "shadow" and src["mode"] == "env:MMBOT_MODE"


def test_nested_env_name_beats_flat_alias() -> None:
    env = {"MMBOT_REDIS_URL": "redis://a", "MMBOT_STORAGE__REDIS_URL": "redis://b"}
    resolved = resolve(None, env=env)
    assert resolved.settings.storage.redis_url == "redis://b"
    assert resolved.sources["storage.redis_url"] == "env:MMBOT_STORAGE__REDIS_URL"


def test_env_keeps_case_of_mapping_keys_and_parses_json() -> None:
    env = {
        "MMBOT_VENUE__SYMBOLS__BTCUSDT__TICK_SIZE": "0.5",
        "MMBOT_SIM__FAULTS__REJECT_PROB": "0.25",
        "MMBOT_CANARY__ROLLBACK": '[{"metric": "fills", "bound": 1, "direction": "min", '
        '"for_ms": 1000}]',
        "MMBOT_STORAGE__REDIS_URL": "",  # empty unsets an optional setting
    }
    s = load_settings(None, env=env)
    assert str(s.venue.symbols["BTCUSDT"].tick_size) == "0.5"
    assert s.sim.faults.reject_prob == 0.25
    assert [t.metric for t in s.canary.rollback] == ["fills"]
    assert s.storage.redis_url is None


def test_cli_over_env_over_profile(here: Path) -> None:
    env = {"MMBOT_RISK__MAX_INVENTORY_USD": "5000"}
    resolved = resolve("top", ["risk.max_inventory_usd=4000", "run.seed=99"], env=env)
    s, src = resolved.settings, resolved.sources
    assert s.risk.max_inventory_usd == 4000 and s.run.seed == 99
    assert src["risk.max_inventory_usd"] == "cli:--set risk.max_inventory_usd=4000"
    assert src["run.seed"] == "cli:--set run.seed=99"


def test_later_set_wins_and_values_are_yaml() -> None:
    s = load_settings(
        None,
        overrides=[
            "run.seed=1",
            "run.seed=2",
            "strategy.post_only=false",
            "risk.freeze_cooldown_ms=null",
            "gates.kpi.fills={warn: 10, fail: 5, direction: min}",
        ],
        env={},
    )
    assert s.run.seed == 2 and s.strategy.post_only is False
    assert s.risk.freeze_cooldown_ms is None
    assert s.gates.kpi["fills"].fail == 5


def test_set_reaches_keys_that_contain_dots() -> None:
    resolved = resolve(None, ["tuning.bounds.strategy.min_half_spread_bps.max=4"], env={})
    assert resolved.settings.tuning.bounds["strategy.min_half_spread_bps"].max == 4
    assert resolved.sources["tuning.bounds.strategy.min_half_spread_bps.max"].startswith("cli:")
    assert resolved.sources["tuning.bounds.strategy.min_half_spread_bps.min"] == "default"


def test_profile_merges_mappings_and_null_removes_an_entry(here: Path) -> None:
    write(
        here,
        "profiles/eth.yaml",
        """\
        venue:
          symbols:
            BTCUSDT: null
            ETHUSDT: {tick_size: "0.01", lot_size: "0.01", min_qty: "0.01", min_notional: "5"}
        gates:
          kpi:
            maker_share: {warn: 0.95}
        """,
    )
    resolved = resolve("eth", env={})
    s = resolved.settings
    assert list(s.venue.symbols) == ["ETHUSDT"]
    assert (s.gates.kpi["maker_share"].warn, s.gates.kpi["maker_share"].fail) == (0.95, 0.85)
    assert resolved.sources["gates.kpi.maker_share.warn"] == "profile:profiles/eth.yaml"
    assert resolved.sources["gates.kpi.maker_share.fail"] == "default"


def test_timestamps_stay_strings(here: Path) -> None:
    write(here, "profiles/t.yaml", "data:\n  synth:\n    start: 2024-09-01T00:00:00Z\n")
    assert load_settings("t", env={}).data.synth.start == "2024-09-01T00:00:00Z"


def test_every_leaf_has_a_source() -> None:
    resolved = resolve(PACKAGED_PROFILES / "live.yaml", env={})
    assert set(resolved.sources) == set(redacted_leaves(resolved.settings))


# ---- diff


def test_diff_names_both_sources(here: Path) -> None:
    changes = {c.key: c for c in diff(resolve("base", env={}), resolve("top", env={}))}
    seed = changes["run.seed"]
    assert (seed.old, seed.new) == (7, 13)
    assert (seed.old_source, seed.new_source) == ("default", "profile:profiles/top.yaml")
    inv = changes["risk.max_inventory_usd"]
    assert (inv.old, inv.new) == (15000.0, 12000.0)
    assert inv.old_source == "profile:profiles/base.yaml"
    assert "risk.max_open_orders" not in changes
    assert diff(resolve("top", env={}), resolve("top", env={})) == []


def test_diff_masks_secrets_and_marks_absent_keys() -> None:
    a = resolve(None, ["secrets.api_key=first-secret"], env={})
    b = resolve(
        None,
        ["secrets.api_key=second-secret", "gates.kpi.pnl_usd={warn: 2, fail: 1, direction: min}"],
        env={},
    )
    changes = {c.key: c for c in diff(a, b)}
    assert (changes["secrets.api_key"].old, changes["secrets.api_key"].new) == (
        SECRET_MASK,
        SECRET_MASK,
    )
    added = changes["gates.kpi.pnl_usd.warn"]  # a bound the defaults do not have
    assert added.old_source == "absent"
    assert added.old is None and added.new == 2
    assert "second-secret" not in repr(changes)


# ---- redaction


def test_redacted_dict_masks_secrets_and_url_passwords() -> None:
    s = load_settings(
        None,
        # pragma: allowlist nextline secret
        overrides=["secrets.api_key=abc123", "storage.redis_url=redis://user:pw9876@host:6379/0"],
        env={},
    )
    dumped = redacted_dict(s)
    assert dumped["secrets"]["api_key"] == SECRET_MASK
    assert dumped["storage"]["redis_url"] == f"redis://user:{SECRET_MASK}@host:6379/0"
    assert "abc123" not in str(dumped) and "pw9876" not in str(dumped)
    assert s.secrets.api_key is not None and s.secrets.api_key.get_secret_value() == "abc123"


def test_secret_set_on_cli_is_masked_in_its_source() -> None:
    resolved = resolve(None, ["secrets.api_secret=zz-top-secret"], env={})
    assert resolved.sources["secrets.api_secret"] == f"cli:--set secrets.api_secret={SECRET_MASK}"


def test_extends_by_relative_path_and_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "conf/parent.yml", "run:\n  seed: 21\n")
    child = write(tmp_path, "conf/sub/child.yaml", "extends: ../parent.yml\nrun:\n  timer_ms: 5\n")
    resolved = resolve(child, env={})
    assert resolved.files == ("conf/parent.yml", "conf/sub/child.yaml")
    assert (resolved.settings.run.seed, resolved.settings.run.timer_ms) == (21, 5)


def test_a_file_outside_profiles_extends_the_packaged_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = write(tmp_path, "mine.yaml", "extends: base\nrun:\n  seed: 5\n")
    resolved = resolve(str(mine), env={})
    assert resolved.files[0] == str((PACKAGED_PROFILES / "base.yaml").resolve())
    assert resolved.sources["fees.tier"] == f"profile:{resolved.files[0]}"
