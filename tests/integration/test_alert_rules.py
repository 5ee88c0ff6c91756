"""deploy/: the Prometheus alert rules are valid and each alert fires on the series meant
to trip it and not on a healthy bot (promtool's rule unit tests, alerts.test.yml); the
alerts and the Grafana dashboard use only series the bot exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from bot.runtime.health import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "mmbot.json"
METRIC = re.compile(r"\bmmbot_[a-z_]+")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES.parent, check=False)  # fmt: skip


def test_rules_are_valid() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    spec = yaml.safe_load((RULES.parent / "alerts.test.yml").read_text())
    tested_alerts = {t["alertname"] for case in spec["tests"] for t in case["alert_rule_test"]}
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert tested_alerts == alerts  # no alert without a test


def exported() -> set[str]:
    """Every sample name the bot's /metrics can serve (with _total, _bucket, ...)."""
    metrics = Metrics()
    names = set()
    for family in metrics.registry.collect():
        names |= {family.name, f"{family.name}_total", f"{family.name}_bucket",
                  f"{family.name}_count", f"{family.name}_sum"}  # fmt: skip
    return names


def test_alerts_and_dashboard_use_only_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    charted = {m for e in exprs for m in METRIC.findall(e)}
    watched = set(METRIC.findall(RULES.read_text()))
    assert watched and charted
    assert watched - exported() == set()
    assert charted - exported() == set()
    assert watched <= charted  # what can page someone is on the dashboard too
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
