"""The soak auto-tuner, guard by guard: each guard lets a change through when its rule
holds and refuses it, naming itself, when the rule is broken."""

from __future__ import annotations

import pytest

from bot.autotune import (
    NEXT_MODE,
    Change,
    Mode,
    Rules,
    Stability,
    TunerState,
    bounded_step,
    decide,
    wishes,
)
from bot.config import Settings, TuningBound
from gates.stage import policy_bounds

SPREAD = "strategy.min_half_spread_bps"
SKEW = "strategy.skew_bps_per_inventory"
REQUOTE = "strategy.requote_threshold_bps"

POLICY = Settings()  # the base policy: its KPI bounds and tuning bounds
KPI_BOUNDS = policy_bounds(POLICY)
TUNING = POLICY.tuning.bounds
PARAMS = {SPREAD: 1.0, SKEW: 4.0, REQUOTE: 0.5}
# every watched KPI comfortably inside its bounds
GOOD = {"net_bps": 0.5, "inventory_ratio_p95": 0.1, "maker_share": 1.0, "fills": 400.0,
        "cancel_ratio": 0.2}  # fmt: skip
# net below WARN, inventory and cancels above WARN: three wishes
BAD = {**GOOD, "net_bps": 0.01, "inventory_ratio_p95": 0.45, "cancel_ratio": 0.6}


def run(state: TunerState, iteration: int, kpis: dict[str, float], params: dict[str, float]):
    return decide(state, iteration, kpis, params, TUNING, KPI_BOUNDS)


def test_every_mode_and_stability_pair_has_a_transition() -> None:
    assert set(NEXT_MODE) == {(m, s) for m in Mode for s in Stability}


def test_wishes_follow_warn_bounds() -> None:
    assert wishes(GOOD, KPI_BOUNDS) == []
    asked = {w.param for w, _ in wishes(BAD, KPI_BOUNDS)}
    assert asked == {SPREAD, SKEW, REQUOTE}


def test_bounded_step_stays_within_bounds() -> None:
    bound = TuningBound(min=0.5, max=5.0, max_step=0.5)
    assert bounded_step(1.0, +1, bound) == 1.5
    assert bounded_step(4.8, +1, bound) == 5.0
    assert bounded_step(0.6, -1, bound) == 0.5
    assert bounded_step(0.05, +1, bound) == 0.55  # below min: one step up, then clamped


def test_cap_allows_two_changes_per_iteration_and_refuses_the_third() -> None:
    _, decision = run(TunerState(), 1, BAD, PARAMS)
    assert [c.param for c in decision.changes] == [SPREAD, SKEW]
    assert [(r.param, r.guard) for r in decision.refused] == [(REQUOTE, "cap")]
    assert decision.params[SPREAD] == PARAMS[SPREAD] + TUNING[SPREAD].max_step


def test_cooldown_refuses_a_change_the_next_iteration_and_allows_it_after() -> None:
    spread_only = {**GOOD, "net_bps": 0.01}
    state, first = run(TunerState(), 1, spread_only, PARAMS)
    assert [c.param for c in first.changes] == [SPREAD]
    state, second = run(state, 2, {**spread_only, "fills": 300.0}, first.params)
    assert second.changes == ()
    assert [(r.param, r.guard) for r in second.refused] == [(SPREAD, "cooldown")]
    _, third = run(state, 3, {**spread_only, "fills": 200.0}, second.params)
    assert [c.param for c in third.changes] == [SPREAD]


def test_oscillation_refuses_a_return_to_the_previous_value() -> None:
    # spread went 1.0 -> 1.5 at iteration 1; at iteration 4 few fills ask for 1.0 again
    history = (Change(1, SPREAD, 1.0, 1.5, "net"),)
    state = TunerState(history=history, last_kpis={**GOOD, "fills": 900.0})
    few_fills = {**GOOD, "fills": 30.0}
    _, decision = run(state, 4, few_fills, {**PARAMS, SPREAD: 1.5})
    assert decision.changes == ()
    assert [(r.param, r.guard) for r in decision.refused] == [(SPREAD, "oscillation")]
    # from another value the same wish is a plain step down
    _, other = run(state, 4, few_fills, {**PARAMS, SPREAD: 2.0})
    assert [(c.param, c.new) for c in other.changes] == [(SPREAD, 1.5)]


def test_window_refuses_a_fourth_change_in_three_iterations() -> None:
    history = (
        Change(2, SKEW, 4.0, 6.0, "inv"),
        Change(3, REQUOTE, 0.5, 0.7, "cancels"),
        Change(3, "strategy.other", 0.0, 1.0, "x"),
    )
    state = TunerState(history=history, last_kpis={**GOOD, "fills": 900.0})
    spread_only = {**GOOD, "net_bps": 0.01}
    _, decision = run(state, 4, spread_only, PARAMS)
    assert [(r.param, r.guard) for r in decision.refused] == [(SPREAD, "window")]
    # at iteration 6 all three are older than the window
    _, later = run(state, 6, spread_only, PARAMS)
    assert [c.param for c in later.changes] == [SPREAD]


def test_stable_kpis_for_two_iterations_hold_the_parameters() -> None:
    state = TunerState(last_kpis=BAD)
    state, first = run(state, 1, BAD, PARAMS)  # same KPIs: stable once, still tuning
    assert first.mode is Mode.TUNING and first.changes
    state, second = run(state, 2, BAD, first.params)  # stable twice: hold
    assert second.mode is Mode.HOLDING
    assert second.changes == () and second.refused == ()
    moved = {**BAD, "net_bps": 0.02}  # net doubles: unstable, tuning again
    _, third = run(state, 3, moved, second.params)
    assert third.mode is Mode.TUNING


def test_a_parameter_at_its_bound_is_refused_by_bounds() -> None:
    at_max = {**PARAMS, SPREAD: TUNING[SPREAD].max}
    _, decision = run(TunerState(), 1, {**GOOD, "net_bps": 0.01}, at_max)
    assert [(r.param, r.guard) for r in decision.refused] == [(SPREAD, "bounds")]


@pytest.mark.parametrize("missing", ["net_bps", "fills"])
def test_a_missing_kpi_is_never_stable(missing: str) -> None:
    state = TunerState(stable_streak=5, mode=Mode.HOLDING, last_kpis=GOOD)
    kpis = {k: v for k, v in GOOD.items() if k != missing}
    _, decision = decide(state, 3, kpis, PARAMS, TUNING, KPI_BOUNDS, Rules())
    assert decision.mode is Mode.TUNING
