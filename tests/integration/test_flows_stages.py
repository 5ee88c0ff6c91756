"""The stage flows against a real Prefect API (the session's test harness), on small
synthetic markets: shadow_run, dryrun_compare and soak, with their artifacts, their
failed state when a gate FAILs, and a soak killed by SIGKILL that resumes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.params import CompareParams, DataSource, ShadowParams, SoakParams
from tests.conftest import REPO

# a mm3 bot (PASSes the KPI gate on the synthetic market) with the soak's thinned book
# (250 rows/s), and bounds for 5 min iterations instead of hours: a lower activity
# floor, a net edge floor below 0 and a wider adverse tail (over a few dozen fills one
# sweep flips the net's sign and is the p95)
POLICY = """\
extends: mm3
data:
  synth:
    book_rate_hz: 250
gates:
  kpi:
    fills: {warn: 10, fail: 4, direction: min}
    net_bps: {warn: 0.0, fail: -1.0, direction: min}
    adverse_p95_bps: {warn: 10, fail: 15, direction: max}
"""


@pytest.fixture(scope="module")
def policy(flow_home: Path) -> str:
    path = flow_home / "soak-policy.yaml"
    path.write_text(POLICY)
    return str(path)


def _artifacts(key_prefix: str) -> dict[str, object]:
    """The Prefect artifacts whose key starts with `key_prefix`, latest by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=f"{key_prefix}%"))
        )
    return {a.key: a for a in found if a.key}


def test_shadow_run_publishes_its_report_and_artifacts(flow_home: Path, prefect_api: str) -> None:
    from flows.shadow import shadow_run

    params = ShadowParams(
        profile="mm3", run_key="shadow-ok", work_dir=flow_home,
        artifacts_url=f"file://{flow_home}/store", duration="10m",
        source=DataSource(kind="synth", seed=7),
    )  # fmt: skip
    state = shadow_run(params, return_state=True)
    outcome = state.result()
    assert outcome.verdict.gate == "kpi"
    assert outcome.verdict.summary["mode"] == "shadow"
    html = Path(outcome.html.removeprefix("file://"))
    assert html.is_file() and "Shadow run" in html.read_text()
    keys = set(_artifacts("shadow-shadow-ok"))
    assert {"shadow-shadow-ok-report", "shadow-shadow-ok-verdict", "shadow-shadow-ok-html",
            "shadow-shadow-ok-journal"} <= keys  # fmt: skip


def test_shadow_run_refuses_live_data_by_name(flow_home: Path, prefect_api: str) -> None:
    from flows.shadow import shadow_run

    params = ShadowParams(run_key="shadow-live", work_dir=flow_home,
                          source=DataSource(kind="live"))  # fmt: skip
    state = shadow_run(params, return_state=True)
    assert state.is_failed()
    assert "live shell" in state.message and "issue 10" in state.message


def test_dryrun_compare_fails_with_the_accuracy_gate_reason(
    flow_home: Path, prefect_api: str
) -> None:
    from flows.compare import dryrun_compare

    # 10 min is two 5 min windows; the demo profile's accuracy gate asks for six
    params = CompareParams(
        run_key="compare-short", work_dir=flow_home, artifacts_url=f"file://{flow_home}/store",
        duration="10m",
    )  # fmt: skip
    state = dryrun_compare(params, return_state=True)
    assert state.is_failed()
    assert "accuracy: accuracy FAIL" in state.message
    assert "insufficient data: 2 < 6" in state.message
    # both journals were written, and the report too, before the failed state
    assert (flow_home / "accuracy" / "compare-short" / "shadow" / "run.json").is_file()
    assert (flow_home / "accuracy" / "compare-short" / "paper" / "run.json").is_file()
    assert (flow_home / "store" / "accuracy" / "compare-short" / "report.html").is_file()


def _soak_params(policy: str, flow_home: Path, run_key: str) -> SoakParams:
    return SoakParams(
        profile=policy, run_key=run_key, work_dir=flow_home,
        artifacts_url=f"file://{flow_home}/store", hours=0.5, iteration="5m",
        source=DataSource(kind="synth", seed=7),
    )  # fmt: skip


def _summaries(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (root / "iterations.jsonl").read_text().splitlines()]


def _journal_digest(journal: Path) -> str:
    parts = sorted(journal.rglob("*.parquet"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()


@pytest.fixture(scope="module")
def reference_soak(policy: str, flow_home: Path, prefect_api: str) -> Path:
    """An uninterrupted soak: 6 iterations of 5 min."""
    from flows.soak import soak

    state = soak(_soak_params(policy, flow_home, "soak-ref"), return_state=True)
    assert state.is_completed(), state.message
    return flow_home / "soak" / "soak-ref"


def test_soak_iterates_tunes_and_reports(reference_soak: Path, flow_home: Path) -> None:
    rows = _summaries(reference_soak)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        assert {"state", "freezes", "open_orders"} <= set(row["guards"])
        assert row["rss_mb"] > 0 and "net_bps" in row["kpis"]
        assert row["open_fds"] >= 3  # stdin, stdout, stderr at least
    # the auto-tuner looked at every iteration: something was changed or refused
    assert any(r["tuning"] for r in rows) or any(r["refused"] for r in rows)
    report = flow_home / "store" / "soak-final" / "soak-ref" / "report.html"
    assert report.is_file() and "Iterations" in report.read_text()
    artifacts = _artifacts("soak-")
    assert artifacts["soak-soak-ref-progress"].data == 100.0
    assert "soak-final-soak-ref-verdict" in artifacts


def test_a_soak_killed_mid_way_resumes_without_losing_or_repeating_an_iteration(
    reference_soak: Path, policy: str, flow_home: Path, prefect_api: str
) -> None:
    from flows.soak import soak

    params = _soak_params(policy, flow_home, "soak-killed")
    root = flow_home / "soak" / "soak-killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.soak", params.model_dump_json()],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(_summaries(root)) if (root / "iterations.jsonl").exists() else 0
            if done >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the soak ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = len(_summaries(root))
    assert 2 <= killed_at < 6

    state = soak(params, return_state=True)
    assert state.is_completed(), state.message
    rows, reference = _summaries(root), _summaries(reference_soak)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    # same iterations as the soak that was never killed: same rows, same tuning, and
    # byte-identical journals (the session's state went on from the checkpoint)
    for got, want in zip(rows, reference, strict=True):
        assert (got["kpis"], got["tuning"], got["guards"]) == (
            want["kpis"], want["tuning"], want["guards"],
        )  # fmt: skip
        name = f"iteration-{got['iteration']:03d}"
        assert _journal_digest(root / name) == _journal_digest(reference_soak / name)


def test_release_stops_at_the_first_failing_gate_with_its_reason(
    flow_home: Path, prefect_api: str
) -> None:
    from flows.params import ReleaseParams
    from flows.release import release

    # quotes 10 bps away: the shadow stage FAILs on the activity floor
    params = ReleaseParams(
        profile="mm3", run_key="release-far", work_dir=flow_home,
        artifacts_url=f"file://{flow_home}/store", shadow_duration="5m",
        overrides=("strategy.min_half_spread_bps=10",),
    )  # fmt: skip
    state = release(params, return_state=True)
    assert state.is_failed()
    assert "release: release FAIL: shadow: " in state.message
    assert "fills: 0 < fail bound 20" in state.message
    assert "required stage accuracy has no verdict" in state.message
    # stopped there: no later stage ran
    assert not (flow_home / "accuracy" / "release-far").exists()
    assert not (flow_home / "soak" / "release-far").exists()
    page = (flow_home / "store" / "release" / "release-far" / "report.html").read_text()
    assert "store/shadow/release-far/report.html" in page


# every iteration FAILs the in-run gate (an activity floor no 2 min iteration reaches)
FAILING = """\
extends: mm3
data:
  synth:
    book_rate_hz: 250
soak:
  auto_tune: false
  stop_on_fail: {stop}
gates:
  kpi:
    fills: {{warn: 1000000, fail: 1000000, direction: min}}
"""


@pytest.mark.parametrize("stop", [True, False])
def test_an_in_run_fail_stops_the_soak_unless_the_policy_measures(
    stop: bool, flow_home: Path, prefect_api: str
) -> None:
    from flows.soak import soak

    word = str(stop).lower()
    policy = flow_home / f"soak-failing-{word}.yaml"
    policy.write_text(FAILING.format(stop=word))
    run_key = f"soak-fail-{word}"
    params = SoakParams(
        profile=str(policy), run_key=run_key, work_dir=flow_home,
        artifacts_url=f"file://{flow_home}/store", hours=0.2, iteration="2m",
        source=DataSource(kind="synth", seed=7),
    )  # fmt: skip
    state = soak(params, return_state=True)
    assert state.is_failed()
    rows = _summaries(flow_home / "soak" / run_key)
    statuses = [r["status"] for r in rows]
    report = flow_home / "store" / "soak-final" / run_key / "report.html"
    if stop:  # the warm-up's FAILs count as WARN; the first one after it stops the soak
        assert statuses == ["WARN"] * 4 + ["FAIL"]
        assert "StageFailed: soak iteration 5: kpi FAIL: fills: " in state.message
        assert not report.exists()
        # run again with the same key: still stopped there, no iteration added
        again = soak(params, return_state=True)
        assert again.is_failed() and "soak iteration 5: kpi FAIL" in again.message
        assert len(_summaries(flow_home / "soak" / run_key)) == 5
    else:  # the FAILs are recorded, the soak goes on, and the final gate judges
        assert statuses == ["WARN"] * 4 + ["FAIL", "FAIL"]
        assert "StageFailed: soak: " in state.message  # the final gate's FAIL
        assert "soak iteration" not in state.message
        assert report.is_file()
