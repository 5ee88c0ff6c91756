"""The soak's in-run gate: a FAIL in warm-up iterations 1-4 is a WARN, after them a FAIL;
a PASS or WARN is never changed. On real journals (the Binance capture, 2 min)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.profiles import load_settings
from bot.runtime.run import RunSpec, execute
from gates.kpi import load_journal
from gates.stage import WARMUP_ITERATIONS, StageError, kpi_stage, warm_up
from gates.verdict import Status, Verdict


@pytest.fixture(scope="module")
def verdicts(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Verdict]:
    """The KPI stage of a sensible mm3 bot and of one quoting 10 bps away (too few fills)."""
    root = tmp_path_factory.mktemp("warmup")
    cases = {"sensible": (), "far": ("strategy.min_half_spread_bps=10",)}
    policy = load_settings("mm3")
    out = {}
    for name, overrides in cases.items():
        spec = RunSpec(mode="paper", out_dir=root / name, profile="mm3", data=binance_dir,
                       duration="120s", overrides=overrides, progress=False)  # fmt: skip
        execute(spec)
        out[name] = kpi_stage(load_journal(root / name), policy)
    return out


@pytest.mark.parametrize("iteration", [1, WARMUP_ITERATIONS])
def test_a_fail_in_warm_up_is_a_warn(verdicts: dict[str, Verdict], iteration: int) -> None:
    far = verdicts["far"]
    assert far.status is Status.FAIL
    verdict = warm_up(far, iteration)
    assert verdict.status is Status.WARN
    assert any(c.name == "fills" and c.status is Status.FAIL for c in verdict.checks)
    assert f"iteration {iteration} of {WARMUP_ITERATIONS} warm-up" in " ".join(verdict.reasons)
    assert verdict.summary["warm_up"] is True


def test_after_warm_up_a_fail_stays_a_fail(verdicts: dict[str, Verdict]) -> None:
    after = warm_up(verdicts["far"], WARMUP_ITERATIONS + 1)
    assert after.status is Status.FAIL
    assert after.checks == verdicts["far"].checks
    assert after.summary["warm_up"] is False


@pytest.mark.parametrize("iteration", [1, WARMUP_ITERATIONS + 1])
def test_warm_up_never_changes_a_verdict_that_is_not_a_fail(
    verdicts: dict[str, Verdict], iteration: int
) -> None:
    plain = verdicts["sensible"]
    assert plain.status is not Status.FAIL
    verdict = warm_up(plain, iteration)
    assert verdict.status is plain.status and verdict.checks == plain.checks


def test_iterations_count_from_one(verdicts: dict[str, Verdict]) -> None:
    with pytest.raises(StageError, match="count from 1"):
        warm_up(verdicts["sensible"], 0)
