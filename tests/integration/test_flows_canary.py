"""The `canary` flow against a real Prefect API: a candidate identical to its baseline
passes; one the venue rejects trips the error-rate rollback trigger and fails the run
at the interval where a live canary would have stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.profiles import load_settings
from flows.canary import CanaryParams, CanaryResult, canary
from gates.kpi import interval_series, load_journal

# the mm3 demo quoter; 5 min canaries judged on their five 1 min intervals
BASELINE = "extends: mm3\ncanary:\n  min_intervals: 5\n"
# a version whose orders the venue rejects more often than not
REJECTED = "extends: baseline.yaml\nsim:\n  faults:\n    reject_prob: 0.6\n"


@pytest.fixture(scope="module")
def profiles(flow_home: Path) -> Path:
    folder = flow_home / "canary-profiles"
    folder.mkdir()
    (folder / "baseline.yaml").write_text(BASELINE)
    (folder / "rejected.yaml").write_text(REJECTED)
    return folder


def params(profiles: Path, flow_home: Path, candidate: str, run_key: str) -> CanaryParams:
    return CanaryParams(
        profile=str(profiles / "baseline.yaml"), candidate=str(profiles / candidate),
        run_key=run_key, work_dir=flow_home / "canary-runs",
        artifacts_url=(flow_home / "store").as_uri(), duration="5m",
    )  # fmt: skip


def test_a_candidate_like_its_baseline_passes(profiles: Path, flow_home: Path) -> None:
    result = canary(params(profiles, flow_home, "baseline.yaml", "canary-same"))
    assert isinstance(result, CanaryResult)
    assert (result.status, result.decision, result.aborted_at) == ("PASS", "PASS", None)
    verdict = json.loads(Path(result.reports[2].removeprefix("file://")).read_text())
    assert verdict["gate"] == "canary" and verdict["summary"]["score"] == 100
    assert [p["gate"] for p in verdict["parts"]] == ["rollback"]
    # both sides traded at canary size: one lot (0.001) of the profile's 0.01
    fills = load_journal(flow_home / "canary-runs" / "canary" / "canary-same" / "candidate")
    assert set(fills.table("fills")["qty"].astype(float)) == {0.001}


def test_a_rejected_candidate_rolls_back_at_the_first_breach(
    profiles: Path, flow_home: Path
) -> None:
    state = canary(params(profiles, flow_home, "rejected.yaml", "canary-bad"), return_state=True)
    assert state.is_failed()
    message = state.message or ""
    assert "canary FAIL" in message and "error_rate > 0.2" in message and "roll back" in message
    verdict = json.loads(
        (flow_home / "store" / "canary" / "canary-bad" / "verdict.json").read_text()
    )
    assert verdict["summary"]["decision"] == "ROLLBACK"
    # where it stopped: the first interval beyond the trigger, read off the journal itself
    journal = load_journal(flow_home / "canary-runs" / "canary" / "canary-bad" / "candidate")
    policy = load_settings(profiles / "baseline.yaml", env={})
    series = interval_series(journal, policy.canary.interval, policy.gates.horizon_ms)
    (trigger,) = [t for t in policy.canary.rollback if t.metric == "error_rate"]
    needed = trigger.for_ms // 60_000  # consecutive 1 min intervals beyond the bound
    beyond = (series["error_rate"] > trigger.bound).astype(int)
    first = series.index[beyond.rolling(needed).sum() == needed][0]
    assert verdict["summary"]["aborted_at"] == first.isoformat()
