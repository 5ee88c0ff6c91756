"""bot/tuning.py: the sweep space, constraints, out-of-sample re-check, bounded step
and the profile revisions apply_tuning writes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from bot.config import TuningBound, TuningConfig
from bot.profiles import ConfigError, load_settings
from bot.tuning import (
    Candidate,
    Constraints,
    TuningError,
    apply_tuning,
    bounded_step,
    current_values,
    finalists,
    ranked,
    revision_name,
    score,
    select_winner,
    sweep,
)

SPREAD = "strategy.min_half_spread_bps"
SKEW = "strategy.skew_bps_per_inventory"
WINDOW = "risk.edge_window_fills"  # an int setting
BOUND = TuningBound(min=0.5, max=5.0, max_step=0.5)
GOOD = {"net_bps": 0.4, "inventory_ratio_p95": 0.2, "maker_share": 0.99, "fills": 120}


@pytest.fixture(autouse=True)
def _no_mmbot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MMBOT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def constraints() -> Constraints:
    return Constraints.from_policy(load_settings("demo", env={}))


# ---- bounded step


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        (1.0, 1.3, 1.3),  # within a step: taken as asked
        (1.0, 4.0, 1.5),  # too far up: one step
        (1.0, -3.0, 0.5),  # too far down: one step, then the floor
        (4.8, 9.0, 5.0),  # one step would pass max: max
        (0.7, 0.5, 0.5),
    ],
)
def test_bounded_step_moves_at_most_max_step_within_range(
    current: float, target: float, expected: float
) -> None:
    value = bounded_step(current, target, BOUND)
    assert value == pytest.approx(expected)
    assert abs(value - current) <= BOUND.max_step + 1e-9
    assert BOUND.min <= value <= BOUND.max


def test_bounded_step_refuses_a_current_value_far_outside_the_range() -> None:
    with pytest.raises(TuningError, match=r"strategy.x: current 9 is more than max_step 0.5"):
        bounded_step(9.0, 5.0, BOUND, "strategy.x")
    # just outside by less than a step: brought back into range
    assert bounded_step(5.3, 5.3, BOUND) == 5.0


# ---- the sweep space


def _tuning(**bounds: TuningBound) -> TuningConfig:
    return TuningConfig(bounds={k.replace("__", "."): v for k, v in bounds.items()}, grid_points=3)


def test_grid_covers_every_combination_of_the_reachable_range() -> None:
    tuning = _tuning(
        strategy__min_half_spread_bps=BOUND,
        strategy__skew_bps_per_inventory=TuningBound(min=1, max=20, max_step=2),
    )
    grid = sweep(tuning, {SPREAD: 1.0, SKEW: 5.0})
    assert len(grid) == 9
    spreads = sorted({c.as_dict()[SPREAD] for c in grid})
    skews = sorted({c.as_dict()[SKEW] for c in grid})
    assert spreads == [0.5, 1.0, 1.5] and skews == [3.0, 5.0, 7.0]


def test_grid_at_a_bound_does_not_repeat_points() -> None:
    tuning = _tuning(strategy__min_half_spread_bps=BOUND)
    grid = sweep(tuning, {SPREAD: 5.0})  # pinned at max: the range is [4.5, 5.0]
    assert [c.as_dict()[SPREAD] for c in grid] == [4.5, 4.75, 5.0]


def test_int_setting_takes_whole_values() -> None:
    tuning = _tuning(risk__edge_window_fills=TuningBound(min=10, max=200, max_step=3))
    grid = sweep(tuning, {WINDOW: 20.0})
    # 17, 20, 23: the reachable range [17, 23] on three points, each a whole number
    assert [c.as_dict()[WINDOW] for c in grid] == [17.0, 20.0, 23.0]
    tight = _tuning(risk__edge_window_fills=TuningBound(min=10, max=200, max_step=1))
    halves = sweep(TuningConfig(bounds=tight.bounds, grid_points=5), {WINDOW: 20.0})
    assert [c.as_dict()[WINDOW] for c in halves] == [19.0, 20.0, 21.0]  # 19.5 -> 20 once


def test_random_sweep_is_seeded_and_stays_reachable() -> None:
    tuning = _tuning(strategy__min_half_spread_bps=BOUND)
    first = sweep(tuning, {SPREAD: 2.0}, "random", samples=6, seed=11)
    again = sweep(tuning, {SPREAD: 2.0}, "random", samples=6, seed=11)
    other = sweep(tuning, {SPREAD: 2.0}, "random", samples=6, seed=12)
    assert first == again and first != other
    assert all(1.5 <= c.as_dict()[SPREAD] <= 2.5 for c in first)


def test_bad_sweep_method_is_refused() -> None:
    with pytest.raises(TuningError, match="'grid' or 'random'"):
        sweep(_tuning(strategy__min_half_spread_bps=BOUND), {SPREAD: 1.0}, "bayes")  # type: ignore[arg-type]


def test_current_values_read_the_profile() -> None:
    settings = load_settings("demo", env={})
    values = current_values(settings, settings.tuning.bounds)
    assert values[SPREAD] == 0.05  # the demo profile's own value, not the default 1.0


# ---- objective and constraints


def test_constraints_come_from_the_policy_warn_bounds(constraints: Constraints) -> None:
    assert constraints == Constraints(max_inventory_ratio=0.40, min_maker_share=0.90, min_fills=50)


def test_infeasible_ranks_below_every_feasible_whatever_its_objective(
    constraints: Constraints,
) -> None:
    a, b, c = (Candidate.of({SPREAD: v}) for v in (1.0, 1.5, 2.0))
    feasible = score(a, GOOD, "net_bps", constraints)
    greedy = score(b, {**GOOD, "net_bps": 9.0, "inventory_ratio_p95": 0.45}, "net_bps", constraints)
    better = score(c, {**GOOD, "net_bps": 0.6}, "net_bps", constraints)
    assert not greedy.feasible
    assert greedy.violations == ("inventory_ratio_p95 0.45 not <= 0.4",)
    assert [s.candidate for s in ranked([feasible, greedy, better])] == [c, a, b]
    assert finalists([feasible, greedy, better], top=5) == [better, feasible]


@pytest.mark.parametrize(
    ("kpis", "broken"),
    [
        ({**GOOD, "maker_share": 0.8}, "maker_share 0.8 not >= 0.9"),
        ({**GOOD, "fills": 10}, "fills 10 not >= 50"),
        (
            {k: v for k, v in GOOD.items() if k != "inventory_ratio_p95"},
            "inventory_ratio_p95 is missing (must be <= 0.4)",
        ),
        ({**GOOD, "net_bps": math.nan}, "objective net_bps is not a number"),
    ],
)
def test_each_constraint_can_make_a_candidate_infeasible(
    constraints: Constraints, kpis: dict[str, float], broken: str
) -> None:
    result = score(Candidate.of({SPREAD: 1.0}), kpis, "net_bps", constraints)
    assert not result.feasible and broken in result.violations


# ---- out-of-sample re-check


def test_winner_must_hold_out_of_sample(constraints: Constraints) -> None:
    a, b = Candidate.of({SPREAD: 1.5}), Candidate.of({SPREAD: 0.5})
    best_in = score(a, {**GOOD, "net_bps": 1.0}, "net_bps", constraints)
    second_in = score(b, {**GOOD, "net_bps": 0.8}, "net_bps", constraints)
    current = score(Candidate.of({SPREAD: 1.0}), {**GOOD, "net_bps": 0.3}, "net_bps", constraints)
    # the in-sample best overfits: out of sample it trades too little
    a_out = score(a, {**GOOD, "fills": 5}, "net_bps", constraints)
    b_out = score(b, {**GOOD, "net_bps": 0.5}, "net_bps", constraints)
    chosen = select_winner([(best_in, a_out), (second_in, b_out)], current)
    assert chosen.winner == b
    assert [r.accepted for r in chosen.rechecks] == [False, True]
    assert "fills 5 not >= 50" in chosen.rechecks[0].reason


def test_no_winner_when_nothing_beats_the_current_out_of_sample(constraints: Constraints) -> None:
    a = Candidate.of({SPREAD: 1.5})
    in_sample = score(a, {**GOOD, "net_bps": 1.0}, "net_bps", constraints)
    out = score(a, {**GOOD, "net_bps": 0.1}, "net_bps", constraints)
    current = score(Candidate.of({SPREAD: 1.0}), {**GOOD, "net_bps": 0.3}, "net_bps", constraints)
    chosen = select_winner([(in_sample, out)], current)
    assert chosen.winner is None
    assert chosen.rechecks[0].reason == "out of sample 0.1 < current 0.3"


# ---- apply_tuning: the revision on disk


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_apply_tuning_writes_a_bounded_revision_that_extends_the_current(here: Path) -> None:
    out = here / "revisions"
    rev = apply_tuning("demo", {SPREAD: 3.0, SKEW: 6.0}, out)
    assert rev.path == (out / "demo.r1.yaml").resolve() and rev.number == 1
    data = yaml.safe_load(rev.path.read_text())
    assert data["extends"] == "demo"
    # demo's spread is 0.05: one step of 0.05 up (its bound) is 0.1, not the 3.0 asked for
    assert data["strategy"] == {"min_half_spread_bps": 0.1, "skew_bps_per_inventory": 6.0}
    assert [(c.key, c.clamped) for c in rev.changes] == [(SPREAD, True), (SKEW, False)]
    revised = load_settings(rev.path, env={})
    base = load_settings("demo", env={})
    assert revised.strategy.min_half_spread_bps == 0.1
    assert revised.model_copy(update={"strategy": base.strategy}) == base  # nothing else
    assert {c.key for c in rev.diff} == {SPREAD, SKEW}
    assert not list(out.glob(".*tmp"))  # the temp file is gone


def test_revisions_number_up_and_chain(here: Path) -> None:
    out = here / "revisions"
    first = apply_tuning("demo", {SPREAD: 0.1}, out)
    second = apply_tuning(first.path, {SPREAD: 0.15}, out)
    assert revision_name(second.path) == ("demo", 2)
    assert yaml.safe_load(second.path.read_text())["extends"] == "demo.r1"
    assert load_settings(second.path, env={}).strategy.min_half_spread_bps == 0.15
    # the first revision is untouched by the second
    assert load_settings(first.path, env={}).strategy.min_half_spread_bps == 0.1


def test_a_taken_revision_number_is_never_replaced(here: Path) -> None:
    out = here / "revisions"
    out.mkdir()
    squatter = out / "demo.r1.yaml"
    squatter.write_text("extends: demo\n")
    rev = apply_tuning("demo", {SPREAD: 0.3}, out)
    assert rev.number == 2 and squatter.read_text() == "extends: demo\n"


def test_apply_tuning_refuses_a_key_without_a_bound(here: Path) -> None:
    with pytest.raises(TuningError, match=r"'risk.max_inventory_usd' has no tuning bound"):
        apply_tuning("demo", {"risk.max_inventory_usd": 1.0}, here)
    assert not list(here.glob("*.yaml*")) and not list(here.glob(".*"))


def test_a_revision_that_does_not_validate_is_not_published(here: Path) -> None:
    # a profile whose tuning range admits a value the schema refuses (ge=0)
    profile = here / "odd.yaml"
    profile.write_text(
        "extends: demo\ntuning:\n  bounds:\n"
        "    strategy.min_half_spread_bps: {min: -1, max: 5, max_step: 0.5}\n"
    )
    with pytest.raises(ConfigError, match="min_half_spread_bps"):
        apply_tuning(profile, {SPREAD: -0.4}, here)
    assert sorted(p.name for p in here.iterdir()) == ["odd.yaml"]


def test_an_infeasible_current_sets_no_bar(constraints: Constraints) -> None:
    a = Candidate.of({SPREAD: 1.5})
    in_sample = score(a, {**GOOD, "net_bps": 0.2}, "net_bps", constraints)
    out = score(a, {**GOOD, "net_bps": 0.1}, "net_bps", constraints)
    # the current quotes too wide to trade: a higher net on 3 fills is no bar
    current = score(Candidate.of({SPREAD: 3.0}), {**GOOD, "fills": 3, "net_bps": 2.0}, "net_bps",
                    constraints)  # fmt: skip
    assert select_winner([(in_sample, out)], current).winner == a
