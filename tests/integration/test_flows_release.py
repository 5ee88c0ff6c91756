"""The whole release against a real Prefect API: shadow -> dry-run compare -> soak ->
KPI gate -> tune/apply -> canary -> promote (approved automatically, as the demo
profile allows) -> the release report, on small synthetic data.

The policy is the demo's on a venue without order latency: there shadow and paper
fill alike by construction (bot/venues/shadow.py), so the accuracy gate holds for the
reason it should and the test is about the release's wiring, not the market. Every
stage is shortened: a 5 min shadow run and a 10 min compare on 1 min accuracy windows, a 30 min
soak in 5 min iterations, a two-point sweep of one parameter, a 5 min canary and
1 min ramp steps. KPI bounds are widened for 5 min iterations as in test_flows_stages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.params import DataSource, ReleaseParams
from tests.conftest import REPO

POLICY = """\
extends: demo
data:
  synth:
    book_rate_hz: 250
sim:
  entry_latency_ms: 0
  response_latency_ms: 0
  cancel_latency_ms: 0
  latency_jitter_ms: 0
gates:
  accuracy:
    interval: 1m
    min_windows: 5
  kpi:
    fills: {warn: 10, fail: 4, direction: min}
    adverse_p95_bps: {warn: 10, fail: 15, direction: max}
  net_bps_by_tier:
    mm3: {warn: 0.0, fail: -1.0, direction: min}
tuning:
  grid_points: 2
  bounds:
    strategy.requote_threshold_bps: {min: 0.1, max: 2.0, max_step: 0.2}
canary:
  duration_ms: 300000
  interval: 30s
  min_intervals: 10
promote:
  ramp_step: 1m
"""


# made-up credentials in the environment, as a desk's would be (secrets.provider env):
# no byte of the release may carry them (test_no_secret_in_any_file_of_the_release)
FAKE_SECRETS = {
    "MMBOT_API_KEY": "fake-key-3b1f9a27c4",  # pragma: allowlist secret
    "MMBOT_API_SECRET": "fake-secret-8e2d41c6f0",  # pragma: allowlist secret
    "MMBOT_S3_SECRET_ACCESS_KEY": "fake-s3-secret-57ac09",  # pragma: allowlist secret
}


@pytest.fixture(scope="module")
def released(flow_home: Path, prefect_api: str) -> tuple[object, Path]:
    from flows.demo import _ensure_live_limit
    from flows.release import release

    policy = flow_home / "release-policy.yaml"
    policy.write_text(POLICY)
    params = ReleaseParams(
        profile=str(policy), run_key="release-all", work_dir=flow_home / "release-all",
        artifacts_url=(flow_home / "store").as_uri(), shadow_duration="5m",
        compare_duration="10m", soak_hours=0.5, soak_iteration="5m", approve="auto",
        source=DataSource(kind="synth", seed=7), overrides=("secrets.provider=env",),
    )  # fmt: skip
    _ensure_live_limit()
    saved = {name: os.environ.get(name) for name in FAKE_SECRETS}
    os.environ.update(FAKE_SECRETS)
    try:
        return release(params, return_state=True), flow_home / "store"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_release_that_holds_goes_all_the_way_through_promote(
    released: tuple[object, Path],
) -> None:
    state, store = released
    assert state.is_completed(), state.message  # type: ignore[attr-defined]
    outcome = state.result()  # type: ignore[attr-defined]
    verdict = outcome.verdict
    assert verdict.status.value in ("PASS", "WARN")
    judged = {c.name: c.status.value for c in verdict.checks}
    assert set(judged) >= {"shadow", "accuracy", "soak-final", "kpi-gate", "tuning", "canary"}
    assert "FAIL" not in judged.values()
    promotion = dict(outcome.facts)["promotion"]
    assert promotion.startswith("promoted ") and "approved by auto" in promotion
    assert "1 PASS" in promotion  # the ramp reached full size
    page = (store / "release" / "release-all" / "report.html").read_text()
    for stage in ("shadow", "accuracy", "soak-final", "tuning", "canary"):
        assert f"store/{stage}/release-all/report.html" in page, stage


def test_no_secret_in_any_file_of_the_release(
    released: tuple[object, Path], flow_home: Path
) -> None:
    from prefect.settings import get_current_settings

    # every journal, checkpoint, revision, report and audit line, and the Prefect API's
    # database (every log line the flows sent it, every parameter and artifact)
    database = get_current_settings().server.database.connection_url
    assert database is not None and database.get_secret_value().startswith("sqlite")
    db_file = Path(database.get_secret_value().split("///", 1)[1])
    roots = [flow_home / "release-all", flow_home / "store", Path(os.environ["PREFECT_HOME"])]
    database_files = sorted(db_file.parent.glob(db_file.name + "*"))  # with -wal, -shm
    files = [p for root in roots for p in root.rglob("*") if p.is_file()] + database_files
    assert len(files) > 100
    # the database holds what the flows sent: the run key is in their parameters
    assert any(b"release-all" in p.read_bytes() for p in database_files)
    for path in files:
        data = path.read_bytes()
        for value in FAKE_SECRETS.values():
            assert value.encode() not in data, path


def test_the_approval_is_in_the_audit_log(released: tuple[object, Path]) -> None:
    _, store = released
    lines = [json.loads(line) for line in (store / "audit" / "promotions.jsonl").open()]
    mine = [line for line in lines if line["run_key"] == "release-all"]
    assert [line["event"] for line in mine] == ["approved", *["ramp_step"] * 4, "promoted"]
    assert mine[0]["how"] == "auto" and mine[0]["reviewer"] == "auto (promote.auto_approve)"


def test_the_demo_reads_a_failing_gate_as_one_line_and_no_traceback(
    flow_home: Path, prefect_api: str
) -> None:
    # quotes 10 bps away: shadow FAILs on the activity floor, the release stops there
    out = flow_home / "demo-far"
    mmbot = Path(sys.executable).parent / "mmbot"
    args = [str(mmbot), "demo", "--release", "--approve", "auto",
            "--out", str(out), "--set", "strategy.min_half_spread_bps=10",
            "--set", "run.duration=5m"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "PREFECT_API_URL": prefect_api})  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output  # the demo shows a verdict, it does not enforce it
    assert "Traceback" not in output
    # the runs' own logs (thousands of lines over a soak) stay in the reports, not here
    assert "run_start" not in output and "risk_state_change" not in output
    lines = done.stdout.splitlines()
    shadow = next(line for line in lines if line.strip().startswith("shadow "))
    assert "FAIL" in shadow and "fills: " in shadow and "< fail bound 20" in shadow
    assert any(line.split() == ["not", "run", "accuracy,", "soak-final,", "kpi-gate,", "canary"]
               for line in lines), done.stdout  # fmt: skip
    assert "release    FAIL (stopped at shadow)" in done.stdout
    report = out / "release" / "demo" / "report.html"
    assert f"report     {report.as_uri()}" in done.stdout and report.is_file()
