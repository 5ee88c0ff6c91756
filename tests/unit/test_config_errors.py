"""Every way a setting can be wrong gives a ConfigError naming the key and the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.config import Settings
from bot.profiles import PACKAGED_PROFILES, ConfigError, resolve


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "base.yaml").write_text("run:\n  seed: 7\n", encoding="utf-8")
    return tmp_path


def profile(folder: Path, name: str, text: str) -> str:
    (folder / "profiles" / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def error_of(*args: object, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        resolve(*args, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_typo_names_key_file_line_and_suggestion(here: Path) -> None:
    name = profile(here, "x", "extends: base\nstrategy:\n  levels: 2\n  min_edge_bp: 0.7\n")
    err = error_of(name, env={})
    assert err.key == "strategy.min_edge_bp"
    assert err.file == "profiles/x.yaml"
    assert err.line == 4
    assert err.suggestion == "strategy.min_edge_bps"
    assert str(err) == (
        "profiles/x.yaml:4: unknown key 'strategy.min_edge_bp' "
        "(did you mean 'strategy.min_edge_bps'?)"
    )


def test_typo_in_section_name(here: Path) -> None:
    err = error_of(profile(here, "x", "stratgy:\n  levels: 2\n"), env={})
    assert (err.key, err.suggestion) == ("stratgy", "strategy")


def test_typo_without_a_close_match_has_no_suggestion() -> None:
    err = error_of(None, ["risk.zzzzqqq=1"], env={})
    assert err.key == "risk.zzzzqqq" and err.suggestion is None and err.file == "cli"


def test_typo_from_env_names_the_variable() -> None:
    err = error_of(None, env={"MMBOT_RISK__MAX_INVENTORY_US": "1"})
    assert (err.key, err.file) == ("risk.max_inventory_us", "env")
    assert err.suggestion == "risk.max_inventory_usd"
    assert "MMBOT_RISK__MAX_INVENTORY_US" in str(err)


def test_wrong_type(here: Path) -> None:
    err = error_of(profile(here, "x", "risk:\n  max_open_orders: many\n"), env={})
    assert (err.key, err.file, err.line) == ("risk.max_open_orders", "profiles/x.yaml", 2)
    assert "valid integer" in err.message and "'many'" in err.message


def test_out_of_range_from_env() -> None:
    err = error_of(None, env={"MMBOT_RISK__MAX_INVENTORY_USD": "-5"})
    assert (err.key, err.file) == ("risk.max_inventory_usd", "env")
    assert "greater than 0" in err.message


def test_wrong_type_of_secret_never_echoes_it() -> None:
    err = error_of(None, ["secrets.api_key=[12345678]"], env={})
    assert err.key == "secrets.api_key"
    assert "12345678" not in str(err)


def test_several_errors_are_all_reported(here: Path) -> None:
    err = error_of(profile(here, "x", "run:\n  seed: x\nrisk:\n  max_open_orders: -1\n"), env={})
    assert [e.key for e in err.all()] == ["run.seed", "risk.max_open_orders"]
    assert "(and 1 more)" in str(err)


def test_malformed_yaml_gives_line(here: Path) -> None:
    err = error_of(profile(here, "x", "run:\n  seed: 7\n  duration: [1h\nrisk: {}\n"), env={})
    assert err.file == "profiles/x.yaml" and err.line is not None and err.line >= 3
    assert "malformed YAML" in str(err)


def test_duplicate_key_is_an_error(here: Path) -> None:
    err = error_of(profile(here, "x", "run:\n  seed: 7\n  seed: 8\n"), env={})
    assert err.line == 3 and "duplicate key 'seed'" in err.message


def test_profile_must_be_a_mapping(here: Path) -> None:
    err = error_of(profile(here, "x", "- a\n- b\n"), env={})
    assert err.file == "profiles/x.yaml" and "mapping" in err.message


def test_missing_profile(here: Path) -> None:
    err = error_of("nope", env={})
    assert err.message.startswith("unknown profile 'nope'; profiles: base, canary, demo")
    assert "did you mean" not in err.message  # nothing is close to "nope"


def test_a_mistyped_profile_name_gets_the_nearest_one_and_the_list() -> None:
    err = error_of("dmeo", env={})
    known = sorted(p.stem for p in PACKAGED_PROFILES.glob("*.yaml"))
    assert str(err).startswith(
        f"unknown profile 'dmeo' (did you mean 'demo'?); profiles: {', '.join(known)}"
    )


def test_missing_profile_file_path(here: Path) -> None:
    err = error_of(here / "absent.yaml", env={})
    assert "not found" in err.message


def test_extends_missing_parent_blames_the_child(here: Path) -> None:
    err = error_of(profile(here, "x", "extends: ghost\n"), env={})
    assert (err.key, err.file, err.line) == ("extends", "profiles/x.yaml", 1)


def test_extends_cycle(here: Path) -> None:
    profile(here, "a", "extends: b\n")
    profile(here, "b", "extends: c\n")
    profile(here, "c", "extends: a\n")
    err = error_of("a", env={})
    assert err.key == "extends"
    assert "cycle" in err.message
    assert "profiles/a.yaml -> profiles/b.yaml -> profiles/c.yaml -> profiles/a.yaml" in (
        err.message
    )


def test_extends_self_is_a_cycle(here: Path) -> None:
    err = error_of(profile(here, "a", "extends: a\n"), env={})
    assert "cycle" in err.message


def test_bad_set_syntax() -> None:
    err = error_of(None, ["risk.max_inventory_usd"], env={})
    assert err.file == "cli" and "key=value" in err.message


# ---- consistency rules, each blamed on the file that set the key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "gates:\n  kpi:\n    net_bps: {warn: 1.5, fail: 2.0, direction: min}\n",
            "gates.kpi.net_bps.warn",
        ),
        (
            "gates:\n  kpi:\n    cancel_ratio: {warn: 0.8, fail: 0.7, direction: max}\n",
            "gates.kpi.cancel_ratio.warn",
        ),
        ("canary:\n  fraction: 0\n", "canary.fraction"),
        ("canary:\n  fraction: 1.5\n", "canary.fraction"),
        ("mode: live\n", "secrets.provider"),
        ("mode: canary\nsecrets:\n  provider: none\n", "secrets.provider"),
        ("fees:\n  tier: vip9\n", "fees.tier"),
        ("gates:\n  accuracy:\n    mape_pass: 0.4\n", "gates.accuracy.mape_pass"),
        ("canary:\n  marginal_score: 96\n", "canary.marginal_score"),
        (
            "tuning:\n  bounds:\n    strategy.levels: {min: 5, max: 2, max_step: 1}\n",
            "tuning.bounds.strategy.levels.min",
        ),
        (
            "tuning:\n  bounds:\n    strategy.nothing: {min: 1, max: 2, max_step: 1}\n",
            "tuning.bounds.strategy.nothing",
        ),
        ("risk:\n  max_total_inventory_usd: 100\n", "risk.max_total_inventory_usd"),
        ("gates:\n  readiness_hold: 95\n", "gates.readiness_hold"),
        ("secrets:\n  provider: file\n", "secrets.path"),
        ("secrets:\n  provider: aws\n", "secrets.aws_secret_id"),
        ("state:\n  poll_ms: 0\n", "state.poll_ms"),
        ("state:\n  lease_ttl_ms: 700\n  poll_ms: 250\n", "state.lease_ttl_ms"),
    ],
)
def test_inconsistent_settings(here: Path, text: str, key: str) -> None:
    err = error_of(profile(here, "x", "extends: base\n" + text), env={})
    assert err.key == key
    assert err.file == "profiles/x.yaml"


def test_consistent_edges_are_accepted() -> None:
    # equal bounds are not looser; fraction 1 is allowed; a provider makes live legal
    resolve(
        None,
        [
            "gates.kpi.net_bps={warn: 2.0, fail: 2.0, direction: min}",
            "canary.fraction=1",
            "mode=live",
            "secrets.provider=env",
            "gates.accuracy.mape_pass=0.3",
        ],
        env={},
    )


def test_inconsistency_blames_the_latest_layer(here: Path) -> None:
    # mode set in the profile, the provider left at its default: the profile broke it
    err = error_of(profile(here, "x", "mode: live\n"), env={})
    assert (err.key, err.file) == ("secrets.provider", "profiles/x.yaml")
    # the profile was fine, the env variable broke it
    ok = profile(here, "ok", "mode: live\nsecrets:\n  provider: env\n")
    err = error_of(ok, env={"MMBOT_SECRETS__PROVIDER": "none"})
    assert err.file == "env" and "MMBOT_SECRETS__PROVIDER" in str(err)
    # a bound tightened on the command line
    err = error_of(ok, ["gates.kpi.net_bps.fail=3"], env={})
    assert (err.key, err.file) == ("gates.kpi.net_bps.warn", "cli")


def test_rules_hold_for_direct_construction_too() -> None:
    with pytest.raises(ValueError, match="needs a secrets provider"):
        Settings(mode="live")


def test_lease_timings_are_settings_and_three_polls_fit_a_ttl(here: Path) -> None:
    # exactly three renewals per ttl is enough; the values reach the link and the monitor
    from bot.runtime.control import LinkSettings

    settings = resolve(
        profile(here, "x", "state:\n  lease_ttl_ms: 600\n  poll_ms: 200\n"), env={}
    ).settings
    link = LinkSettings.of("bot-a", settings.state)
    assert (link.lease_ttl_ms, link.poll_ms) == (600, 200)


def test_a_short_lease_names_both_keys_and_the_layer_that_broke_it(here: Path) -> None:
    ok = profile(here, "ok", "state:\n  lease_ttl_ms: 3000\n  poll_ms: 1000\n")
    err = error_of(ok, ["state.poll_ms=1001"], env={})
    assert (err.key, err.file) == ("state.lease_ttl_ms", "cli")
    assert "lease_ttl_ms 3000 is under 3 x poll_ms (1001)" in str(err)
