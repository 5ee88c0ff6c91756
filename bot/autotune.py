"""The soak's auto-tuner: which strategy parameters change between iterations, and when not.

Pure: iteration KPIs, the current parameters, the tuning bounds and the tuner's
state in; the changes to apply and the next state out. Two tables hold the rules.

Wishes (`WISHES`): a KPI on the wrong side of its WARN bound asks for one bounded
step of one parameter (the step is the bound's `max_step`, clamped to [min, max]):

| KPI                  | when                | parameter                         | step |
|----------------------|---------------------|-----------------------------------|------|
| net_bps              | below its WARN      | strategy.min_half_spread_bps      | up   |
| inventory_ratio_p95  | above its WARN      | strategy.skew_bps_per_inventory   | up   |
| cancel_ratio         | above its WARN      | strategy.requote_threshold_bps    | up   |
| fills                | below its WARN      | strategy.min_half_spread_bps      | down |

Guards (`GUARDS`, checked in order; the first that refuses names the reason):
at most `max_per_iteration` (2) changes an iteration; a parameter changed at
iteration i may change again at i + `cooldown` (2) at the earliest; no A -> B -> A
(a parameter never goes back to the value it had before its last change); at most
`max_in_window` (3) changes over the last `window` (3) iterations.

Mode (`NEXT_MODE`, a transition table): TUNING until the KPIs have been stable for
`stable_iterations` (2) iterations in a row, then HOLDING (no change at all); a KPI
that moves again (unstable) returns it to TUNING. Stable: every watched KPI within
`stable_tolerance` (relative) of the previous iteration's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Final

from bot.config import Bound, TuningBound


class Mode(Enum):
    TUNING = "tuning"
    HOLDING = "holding"


class Stability(Enum):
    STABLE = "stable"  # stable for the required number of iterations
    SETTLING = "settling"  # stable, not for long enough yet
    UNSTABLE = "unstable"


NEXT_MODE: Final[Mapping[tuple[Mode, Stability], Mode]] = {
    (Mode.TUNING, Stability.UNSTABLE): Mode.TUNING,
    (Mode.TUNING, Stability.SETTLING): Mode.TUNING,
    (Mode.TUNING, Stability.STABLE): Mode.HOLDING,
    (Mode.HOLDING, Stability.STABLE): Mode.HOLDING,
    (Mode.HOLDING, Stability.SETTLING): Mode.HOLDING,
    (Mode.HOLDING, Stability.UNSTABLE): Mode.TUNING,
}


@dataclass(frozen=True, slots=True)
class Wish:
    """A KPI out of its WARN bound asks one parameter to step up (+1) or down (-1)."""

    kpi: str
    param: str
    direction: int


WISHES: Final[tuple[Wish, ...]] = (
    Wish("net_bps", "strategy.min_half_spread_bps", +1),
    Wish("inventory_ratio_p95", "strategy.skew_bps_per_inventory", +1),
    Wish("cancel_ratio", "strategy.requote_threshold_bps", +1),
    Wish("fills", "strategy.min_half_spread_bps", -1),
)
# the KPIs whose movement decides stability
WATCHED: Final = ("net_bps", "inventory_ratio_p95", "maker_share", "fills")


@dataclass(frozen=True, slots=True)
class Rules:
    max_per_iteration: int = 2
    cooldown: int = 2
    window: int = 3
    max_in_window: int = 3
    stable_iterations: int = 2
    stable_tolerance: float = 0.10


@dataclass(frozen=True, slots=True)
class Change:
    iteration: int
    param: str
    old: float
    new: float
    reason: str


@dataclass(frozen=True, slots=True)
class Refusal:
    param: str
    guard: str
    reason: str


@dataclass(frozen=True, slots=True)
class TunerState:
    mode: Mode = Mode.TUNING
    stable_streak: int = 0
    last_kpis: Mapping[str, float | None] | None = None
    history: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """One iteration's outcome: the changes to apply, the wishes refused and why."""

    iteration: int
    mode: Mode
    changes: tuple[Change, ...]
    refused: tuple[Refusal, ...] = ()
    params: Mapping[str, float] = field(default_factory=dict)


def _breached(value: float | None, bound: Bound) -> bool:
    if value is None or math.isnan(value):
        return False
    return value < bound.warn if bound.direction == "min" else value > bound.warn


def wishes(kpis: Mapping[str, float | None], bounds: Mapping[str, Bound]) -> list[tuple[Wish, str]]:
    """The wishes whose KPI is out of its WARN bound, each with its reason."""
    out = []
    for wish in WISHES:
        bound = bounds.get(wish.kpi)
        value = kpis.get(wish.kpi)
        if bound is not None and _breached(value, bound):
            side = "below" if bound.direction == "min" else "above"
            out.append((wish, f"{wish.kpi} {value:.4g} {side} WARN {bound.warn:g}"))
    return out


def bounded_step(value: float, direction: int, bound: TuningBound) -> float:
    """One step of `max_step` in `direction`, clamped to [min, max]."""
    return min(bound.max, max(bound.min, value + direction * bound.max_step))


# --- guards: (state, rules, proposed change, changes accepted so far) -> reason | None


Guard = Callable[[TunerState, Rules, Change, list[Change]], str | None]


def _cap(state: TunerState, rules: Rules, change: Change, accepted: list[Change]) -> str | None:
    if len(accepted) >= rules.max_per_iteration:
        return f"already {len(accepted)} changes this iteration (max {rules.max_per_iteration})"
    return None


def _cooldown(
    state: TunerState, rules: Rules, change: Change, accepted: list[Change]
) -> str | None:
    last = next((c for c in reversed(state.history) if c.param == change.param), None)
    if last is not None and change.iteration - last.iteration < rules.cooldown:
        return (
            f"changed at iteration {last.iteration}; cool-down until "
            f"{last.iteration + rules.cooldown}"
        )
    return None


def _oscillation(
    state: TunerState, rules: Rules, change: Change, accepted: list[Change]
) -> str | None:
    last = next((c for c in reversed(state.history) if c.param == change.param), None)
    if last is not None and math.isclose(change.new, last.old, rel_tol=1e-9, abs_tol=1e-12):
        return f"back to {change.new:g}, its value before the last change (A -> B -> A)"
    return None


def _window(state: TunerState, rules: Rules, change: Change, accepted: list[Change]) -> str | None:
    since = change.iteration - rules.window
    recent = sum(1 for c in state.history if c.iteration > since) + len(accepted)
    if recent >= rules.max_in_window:
        return f"{recent} changes in the last {rules.window} iterations (max {rules.max_in_window})"
    return None


GUARDS: Final[tuple[tuple[str, Guard], ...]] = (
    ("cap", _cap),
    ("cooldown", _cooldown),
    ("oscillation", _oscillation),
    ("window", _window),
)


def first_refusal(
    state: TunerState, rules: Rules, change: Change, accepted: list[Change]
) -> Refusal | None:
    """The first guard that refuses `change`, with its reason; None: all let it pass."""
    for name, guard in GUARDS:
        reason = guard(state, rules, change, accepted)
        if reason is not None:
            return Refusal(change.param, name, f"{change.reason}; {reason}")
    return None


def stability(
    state: TunerState, kpis: Mapping[str, float | None], rules: Rules
) -> tuple[Stability, int]:
    """Stable, settling or unstable against the previous iteration, and the new streak."""
    if state.last_kpis is None:
        return Stability.UNSTABLE, 0
    for name in WATCHED:
        now, before = kpis.get(name), state.last_kpis.get(name)
        if now is None or before is None or math.isnan(now) or math.isnan(before):
            return Stability.UNSTABLE, 0
        scale = max(abs(before), 1e-9)
        if abs(now - before) / scale > rules.stable_tolerance:
            return Stability.UNSTABLE, 0
    streak = state.stable_streak + 1
    return (Stability.STABLE if streak >= rules.stable_iterations else Stability.SETTLING), streak


def decide(
    state: TunerState,
    iteration: int,
    kpis: Mapping[str, float | None],
    params: Mapping[str, float],
    tuning: Mapping[str, TuningBound],
    kpi_bounds: Mapping[str, Bound],
    rules: Rules = Rules(),
) -> tuple[TunerState, Decision]:
    """The next state and this iteration's decision (see the module docstring).
    `params` are the current values of the tunable parameters (tuning bounds' keys)."""
    stable, streak = stability(state, kpis, rules)
    mode = NEXT_MODE[(state.mode, stable)]
    accepted: list[Change] = []
    refused: list[Refusal] = []
    if mode is Mode.TUNING:
        for wish, why in wishes(kpis, kpi_bounds):
            if wish.param not in tuning or wish.param not in params:
                continue  # not tunable under this profile's bounds
            if any(c.param == wish.param for c in accepted):
                continue  # two KPIs asked for the same parameter: one step
            old = params[wish.param]
            new = bounded_step(old, wish.direction, tuning[wish.param])
            if math.isclose(new, old):
                refused.append(Refusal(wish.param, "bounds", f"{why}; at its bound {old:g}"))
                continue
            change = Change(iteration, wish.param, old, new, why)
            refusal = first_refusal(state, rules, change, accepted)
            if refusal is None:
                accepted.append(change)
            else:
                refused.append(refusal)
    new_params = {**params, **{c.param: c.new for c in accepted}}
    next_state = replace(
        state, mode=mode, stable_streak=streak, last_kpis=dict(kpis),
        history=(*state.history, *accepted),
    )  # fmt: skip
    return next_state, Decision(iteration, mode, tuple(accepted), tuple(refused), new_params)
