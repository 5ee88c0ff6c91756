"""Review findings on config: masked --set labels, known KPI / series names, keyed rule errors."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import KPI_NAMES, SECRET_MASK, SERIES_NAMES, CanaryConfig, Settings
from bot.exitcodes import ExitCode
from bot.profiles import PACKAGED_PROFILES, ConfigError, mask_url_passwords, resolve

PASSWORD = "PWzz-do-not-print-93"  # pragma: allowlist secret


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("MMBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    return tmp_path


def profile(folder: Path, name: str, text: str) -> str:
    (folder / "profiles" / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def error_of(*args: object, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        resolve(*args, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- 1: a URL password given with --set stays out of the source label -------------------


def test_mask_url_passwords_keeps_user_and_host() -> None:
    assert mask_url_passwords(f"redis://:{PASSWORD}@h/0") == f"redis://:{SECRET_MASK}@h/0"
    assert mask_url_passwords(f"x http://u:{PASSWORD}@h:9/p") == f"x http://u:{SECRET_MASK}@h:9/p"
    assert mask_url_passwords("redis://h:6379/0") == "redis://h:6379/0"


def test_set_label_masks_a_url_password() -> None:
    resolved = resolve(None, [f"storage.redis_url=redis://:{PASSWORD}@h/0"], env={})
    label = resolved.sources["storage.redis_url"]
    assert label == f"cli:--set storage.redis_url=redis://:{SECRET_MASK}@h/0"


def test_set_label_masks_a_url_inside_a_mapping_value() -> None:
    override = f'storage={{redis_url: "redis://bot:{PASSWORD}@h/0"}}'
    resolved = resolve(None, [override], env={})
    assert PASSWORD not in "".join(resolved.sources.values())


def test_config_show_sources_never_prints_a_set_password(here: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "config", "show", "--sources",
            "--set", f"storage.redis_url=redis://:{PASSWORD}@h/0",
            "--set", f"storage.artifacts_url=s3://u:{PASSWORD}@b/p",
            "--set", f"secrets.api_key={PASSWORD}",
        ],
    )  # fmt: skip
    assert result.exit_code == ExitCode.OK, result.output
    assert PASSWORD not in result.output
    assert f"# cli:--set storage.redis_url=redis://:{SECRET_MASK}@h/0" in result.stdout
    assert f"# cli:--set secrets.api_key={SECRET_MASK}" in result.stdout


def test_a_bad_url_value_does_not_echo_its_password() -> None:
    err = error_of(None, [f"storage.redis_url=[redis://:{PASSWORD}@h/0]"], env={})
    assert PASSWORD not in str(err)
    assert err.key == "storage.redis_url"


# --- 4: KPI and series names are checked, with a suggestion -----------------------------


def test_misspelled_kpi_in_a_profile_names_key_line_and_suggestion(here: Path) -> None:
    name = profile(
        here,
        "x",
        """\
        gates:
          kpi:
            net_bps: {warn: 2.7, fail: 2.0, direction: min}
            net_bsp: {warn: 2.7, fail: 2.0, direction: min}
        """,
    )
    err = error_of(name, env={})
    assert err.key == "gates.kpi.net_bsp"
    assert (err.file, err.line) == ("profiles/x.yaml", 4)
    assert err.suggestion == "gates.kpi.net_bps"
    assert "unknown KPI 'net_bsp'" in str(err)
    assert "(did you mean 'gates.kpi.net_bps'?)" in str(err)


def test_misspelled_kpi_from_set_names_the_override() -> None:
    err = error_of(None, ["gates.kpi.maker_shares={warn: 0.9, fail: 0.8, direction: min}"], env={})
    assert err.key == "gates.kpi.maker_shares"
    assert err.suggestion == "gates.kpi.maker_share"
    assert str(err).startswith("cli:--set gates.kpi.maker_shares=")


def test_misspelled_canary_metric_is_refused_with_a_suggestion() -> None:
    err = error_of(None, ["canary.metrics.maker_shar={bad: decrease}"], env={})
    assert err.key == "canary.metrics.maker_shar"
    assert err.suggestion == "canary.metrics.maker_share"


def test_misspelled_rollback_metric_suggests_the_series_column() -> None:
    err = error_of(
        None,
        ["canary.rollback=[{metric: error_rat, bound: 0.1, direction: max, for_ms: 1000}]"],
        env={},
    )
    assert err.key == "canary.rollback.0.metric"
    assert err.suggestion == "error_rate"
    assert "unknown series metric 'error_rat'" in str(err)


def test_kpi_name_is_not_a_series_name() -> None:
    # the p95 KPI is not a per-interval column: a trigger on it would never see data
    err = error_of(
        None,
        [
            "canary.rollback=[{metric: order_latency_p95_ms, bound: 500, direction: max, "
            "for_ms: 1000}]"
        ],
        env={},
    )
    assert err.suggestion == "order_latency_ms"


def test_a_name_without_a_close_match_has_no_suggestion() -> None:
    err = error_of(None, ["gates.kpi.zzqq={warn: 1, fail: 2, direction: max}"], env={})
    assert err.key == "gates.kpi.zzqq" and err.suggestion is None


def test_defaults_use_only_known_names() -> None:
    settings = Settings()
    assert set(settings.gates.kpi) <= set(KPI_NAMES)
    assert set(settings.canary.metrics) <= set(SERIES_NAMES)
    assert {t.metric for t in settings.canary.rollback} <= set(SERIES_NAMES)
    assert "order_latency_ms" in {t.metric for t in settings.canary.rollback}


def test_every_known_name_is_accepted() -> None:
    resolve(
        None,
        [f"gates.kpi.{name}={{warn: 1, fail: 2, direction: max}}" for name in KPI_NAMES],
        env={},
    )
    CanaryConfig.model_validate({"metrics": {name: {"bad": "increase"} for name in SERIES_NAMES}})


def test_shipped_profiles_still_validate() -> None:
    shipped = sorted(PACKAGED_PROFILES.glob("*.yaml"))
    assert shipped
    for path in shipped:
        resolve(path, env={})


# --- 5: a rule across fields names the key it broke -------------------------------------


def test_loose_warn_bound_names_the_kpi_key(here: Path) -> None:
    name = profile(
        here,
        "y",
        """\
        gates:
          kpi:
            net_bps:
              warn: 1.0
              fail: 2.0
              direction: min
        """,
    )
    err = error_of(name, env={})
    assert "gates.kpi.net_bps" in str(err)
    assert str(err).startswith("profiles/y.yaml:")
    assert "warn 1.0 is looser than fail 2.0" in str(err)
