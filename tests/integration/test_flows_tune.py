"""The `tune` flow against a real Prefect API: a sweep of short paper runs on the process
pool, the same sweep on a Dask LocalCluster, the bounded revision it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.profiles import load_settings
from bot.tuning import revision_name
from flows.params import DataSource
from flows.tune import TuneParams, TuneResult, tune
from gates.kpi import load_journal
from gates.stage import kpi_stage

SPREAD = "strategy.min_half_spread_bps"

# The mm3 demo quoter, but quoting 3 bps from mid: too far to trade on a one-tick book,
# so it breaks the fills constraint and any candidate nearer the touch that keeps the
# constraints beats it. One key, three grid points: [0.05, 2.525, 5.0].
PROFILE = """\
extends: mm3
strategy:
  min_half_spread_bps: 3.0
gates:
  kpi:
    fills: {warn: 20, fail: 10, direction: min}   # 5 min windows: fewer fills
tuning:
  grid_points: 3
  bounds:
    strategy.skew_bps_per_inventory: null
    strategy.requote_threshold_bps: null
    strategy.min_half_spread_bps: {min: 0.05, max: 5.0, max_step: 2.95}
"""


def read_artifact(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    return found[0].data


@pytest.fixture(scope="module")
def profile(flow_home: Path) -> Path:
    path = flow_home / "wide.yaml"
    path.write_text(PROFILE)
    return path


def params(profile: Path, flow_home: Path, run_key: str, **more: Any) -> TuneParams:
    return TuneParams(
        profile=str(profile), run_key=run_key, work_dir=flow_home / run_key,
        artifacts_url=(flow_home / "store").as_uri(), duration="5m",
        in_sample=DataSource(kind="synth", seed=101),
        out_of_sample=DataSource(kind="synth", seed=202), **more,
    )  # fmt: skip


@pytest.fixture(scope="module")
def on_process_pool(profile: Path, flow_home: Path) -> TuneResult:
    return tune(params(profile, flow_home, "tune-pool"))


def test_the_sweep_writes_a_bounded_revision_later_stages_can_name(
    on_process_pool: TuneResult, profile: Path, flow_home: Path
) -> None:
    result = on_process_pool
    assert result.revision == 1
    path = Path(result.profile)
    assert path.parent == (flow_home / "tune-pool" / "profiles").resolve()
    assert revision_name(path) == ("wide", 1)
    written = yaml.safe_load(path.read_text())
    assert written["extends"] == str(profile.resolve())
    new = result.changes[SPREAD]
    assert abs(new - 3.0) <= 2.95 + 1e-9 and 0.05 <= new <= 5.0
    assert new != 3.0 and written["strategy"] == {"min_half_spread_bps": new}
    assert load_settings(path, env={}).strategy.min_half_spread_bps == new
    # the revision's Markdown artifact names it and carries the diff
    markdown = read_artifact("tuning-tune-pool-revision")
    assert f"revision 1 of `{profile.resolve()}`" in markdown
    assert f"{SPREAD}: 3.0 -> {new!r}" in markdown


def test_the_verdict_is_the_kpi_stage_of_the_chosen_out_of_sample_run(
    on_process_pool: TuneResult, profile: Path, flow_home: Path
) -> None:
    sweep = json.loads(read_artifact("tuning-tune-pool-sweep"))
    # the current (3.0) first, then the grid, which does not hold it
    assert [row["candidate"] for row in sweep] == [
        "min_half_spread_bps=3 (current)",
        "min_half_spread_bps=0.05",
        "min_half_spread_bps=2.525",
        "min_half_spread_bps=5",
    ]
    assert sweep[0]["feasible"] == "no" and "fills" in sweep[0]["violations"]
    chosen = [row for row in sweep if row["re-check"] == "accepted"]
    assert chosen and any(f"min_half_spread_bps={on_process_pool.changes[SPREAD]:g}" ==
                          row["candidate"] for row in chosen)  # fmt: skip
    # the journals of the out-of-sample runs: the chosen one is judged by the policy
    journals = sorted((flow_home / "tune-pool" / "tune" / "tune-pool" / "out-of-sample").iterdir())
    judged = {kpi_stage(load_journal(j), load_settings(profile, env={})).status.value
              for j in journals}  # fmt: skip
    assert on_process_pool.status in judged
    report = Path(on_process_pool.reports[1].removeprefix("file://"))
    assert report.name == "report.html" and "Sweep (in sample)" in report.read_text()


def test_a_dask_cluster_runs_the_same_sweep_to_the_same_scores(
    on_process_pool: TuneResult, profile: Path, flow_home: Path
) -> None:
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    # threads, not processes: two cores are shared by the whole suite
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:  # fmt: skip
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        result = tune.with_options(task_runner=runner)(params(profile, flow_home, "tune-dask"))
    # same seeds, same journals: a task runner changes where candidates run, not what
    assert result.changes == on_process_pool.changes
    assert read_artifact("tuning-tune-dask-sweep") == read_artifact("tuning-tune-pool-sweep")
