"""Parameter sweeps and bounded profile revisions (the `tune` stage's rules).

Pure rules, no Prefect, no runs: the flow runs each candidate as a short paper run
and hands the KPIs back here.

- The sweep space: for each key of `tuning.bounds`, the values one revision can reach
  from the current one, [max(min, current - max_step), min(max, current + max_step)];
  a grid of `grid_points` values per key (every combination) or `samples` seeded
  uniform draws. Searching further than one step would score values the revision
  may not apply, so the winner would not be what was tested.
- The objective: `tuning.objective` (net_bps or pnl_usd), maximised subject to the
  policy's constraints (inventory_ratio_p95 at most its WARN bound, maker_share and
  fills at least theirs). A candidate that breaks a constraint, or whose objective is
  not a number, is infeasible: ranked below every feasible one whatever its score.
- The out-of-sample re-check: the best in-sample candidates run again on another
  window; the winner is the best of them that stays feasible there and scores at least
  what the current parameters score on that window (when those are feasible there).
  None passing: keep the current.
- The bounded step: a value moves at most `max_step` from the current and stays within
  [min, max]; a current value further than one step outside the range is an error
  (the profile needs a person, not a drift).
- `apply_tuning`: a new profile revision `<dir>/<name>.r<N>.yaml` (N one above the
  highest revision of that name in the directory) that `extends` the current profile
  with the tuned keys only; written to a temporary file, validated, then linked to its
  final name, which fails rather than replace a revision another writer took.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from bot.config import Settings, TuningBound, TuningConfig, leaf_annotation
from bot.profiles import Change, ConfigError, Resolved, diff, find_profile, resolve

SweepMethod = Literal["grid", "random"]
# a revision's file name: <name>.r<N>.yaml; <name> is the profile it descends from
REVISION_RE: Final = re.compile(r"^(?P<name>.+?)\.r(?P<number>\d+)$")
# decimals kept in a tuned value: enough for bps settings, no 0.30000000000000004 in YAML
DECIMALS: Final = 6
# how many times apply_tuning looks for the next free revision number when others race
_LINK_ATTEMPTS: Final = 20


class TuningError(ValueError):
    """A tuning request that cannot be honoured; the message names the key and values."""


Params = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One point of the sweep: dotted setting -> value, in `tuning.bounds` order."""

    params: Params

    @classmethod
    def of(cls, values: Mapping[str, float]) -> Candidate:
        return cls(tuple(values.items()))

    def as_dict(self) -> dict[str, float]:
        return dict(self.params)

    def overrides(self) -> tuple[str, ...]:
        """`--set` strings that make a run use these values."""
        return tuple(f"{key}={value!r}" for key, value in self.params)

    @property
    def label(self) -> str:
        return ", ".join(f"{key.rsplit('.', 1)[-1]}={value:g}" for key, value in self.params)


@dataclass(frozen=True, slots=True)
class Constraints:
    """What a tuned candidate must hold to, from the release policy's WARN bounds:
    a tuning that earns a WARN is not an improvement worth a revision."""

    max_inventory_ratio: float
    min_maker_share: float
    min_fills: float

    @classmethod
    def from_policy(cls, policy: Settings) -> Constraints:
        kpi = policy.gates.kpi
        missing = [k for k in ("inventory_ratio_p95", "maker_share", "fills") if k not in kpi]
        if missing:
            raise TuningError(
                f"the policy has no gates.kpi bound for {', '.join(missing)}: "
                "the tuning constraints come from them"
            )
        return cls(
            max_inventory_ratio=kpi["inventory_ratio_p95"].warn,
            min_maker_share=kpi["maker_share"].warn,
            min_fills=kpi["fills"].warn,
        )

    def violations(self, kpis: Mapping[str, float]) -> tuple[str, ...]:
        """Each broken constraint, named with its value; a missing KPI breaks it."""
        rules = (
            ("inventory_ratio_p95", "<=", self.max_inventory_ratio),
            ("maker_share", ">=", self.min_maker_share),
            ("fills", ">=", self.min_fills),
        )
        broken = []
        for name, op, limit in rules:
            value = _number(kpis.get(name))
            ok = value is not None and (value <= limit if op == "<=" else value >= limit)
            if value is None:
                broken.append(f"{name} is missing (must be {op} {limit:g})")
            elif not ok:
                broken.append(f"{name} {value:.4g} not {op} {limit:g}")
        return tuple(broken)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class Score:
    candidate: Candidate
    objective: float  # NaN when the KPI is missing or not a number
    violations: tuple[str, ...]

    @property
    def feasible(self) -> bool:
        return not self.violations


def score(
    candidate: Candidate,
    kpis: Mapping[str, float],
    objective: str,
    constraints: Constraints,
) -> Score:
    """The candidate's objective and every constraint it breaks."""
    value = _number(kpis.get(objective))
    violations = constraints.violations(kpis)
    if value is None:
        violations = (*violations, f"objective {objective} is not a number")
    return Score(candidate, math.nan if value is None else value, violations)


def ranked(scores: Sequence[Score]) -> list[Score]:
    """Feasible first, best objective first; ties keep sweep order (deterministic)."""
    order = sorted(
        enumerate(scores),
        key=lambda item: (not item[1].feasible, -_finite(item[1].objective), item[0]),
    )
    return [s for _, s in order]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


# ---- the sweep space and the step


def current_values(settings: Settings, bounds: Mapping[str, TuningBound]) -> dict[str, float]:
    """The value each tuned key has in `settings`."""
    dumped = settings.model_dump()
    values: dict[str, float] = {}
    for key in bounds:
        node: Any = dumped
        for segment in key.split("."):
            if not isinstance(node, dict) or segment not in node:
                raise TuningError(f"tuning bound {key!r} names no setting")
            node = node[segment]
        values[key] = float(node)
    return values


def reachable(current: float, bound: TuningBound) -> tuple[float, float]:
    """The range one revision can move `current` to (see `bounded_step`)."""
    low = bounded_step(current, -math.inf, bound)
    high = bounded_step(current, math.inf, bound)
    return low, high


def bounded_step(current: float, target: float, bound: TuningBound, key: str = "") -> float:
    """`target` moved at most `max_step` from `current`, inside [min, max]."""
    stepped = min(max(target, current - bound.max_step), current + bound.max_step)
    value = min(max(stepped, bound.min), bound.max)
    if abs(value - current) > bound.max_step + 1e-12:
        raise TuningError(
            f"{key or 'value'}: current {current:g} is more than max_step {bound.max_step:g} "
            f"outside [{bound.min:g}, {bound.max:g}]; set it within range in the profile"
        )
    return round(value, DECIMALS)


def _typed(key: str, value: float) -> float:
    # an int setting (e.g. a window in ms) takes whole values only
    return float(round(value)) if leaf_annotation(tuple(key.split("."))) is int else value


def sweep(
    tuning: TuningConfig,
    current: Mapping[str, float],
    method: SweepMethod = "grid",
    *,
    samples: int = 8,
    seed: int = 0,
) -> list[Candidate]:
    """The candidates of a sweep around `current` (the module doc says which). The grid
    holds every combination, so its size is grid_points ** len(bounds); duplicates
    (an int key, a range pinned at a bound) appear once."""
    ranges = {key: reachable(current[key], b) for key, b in tuning.bounds.items()}
    if method == "grid":
        axes = [_axis(key, low, high, tuning.grid_points) for key, (low, high) in ranges.items()]
        points = [dict(zip(ranges, combo, strict=True)) for combo in itertools.product(*axes)]
    elif method == "random":
        if samples < 1:
            raise TuningError(f"random sweep needs samples >= 1, got {samples}")
        rng = random.Random(seed)
        points = [
            {key: _typed(key, round(rng.uniform(low, high), DECIMALS)) for key, (low, high) in
             ranges.items()}
            for _ in range(samples)
        ]  # fmt: skip
    else:
        raise TuningError(f"sweep method must be 'grid' or 'random', got {method!r}")
    unique = dict.fromkeys(Candidate.of(p) for p in points)
    return list(unique)


def _axis(key: str, low: float, high: float, points: int) -> list[float]:
    if high == low:
        return [low]
    step = (high - low) / (points - 1)
    return list(dict.fromkeys(_typed(key, round(low + i * step, DECIMALS)) for i in range(points)))


# ---- the out-of-sample re-check


@dataclass(frozen=True, slots=True)
class Recheck:
    """A finalist in sample and out of sample; `accepted` when it stays feasible out of
    sample and scores at least the current parameters there."""

    in_sample: Score
    out_of_sample: Score
    accepted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    winner: Candidate | None  # None: keep the current parameters
    rechecks: tuple[Recheck, ...]
    current_out_of_sample: Score
    reason: str


def finalists(scores: Sequence[Score], top: int) -> list[Score]:
    """The best `top` feasible in-sample scores: the ones worth an out-of-sample run."""
    return [s for s in ranked(scores) if s.feasible][:top]


def select_winner(
    rechecks_in: Sequence[tuple[Score, Score]], current_out_of_sample: Score
) -> Selection:
    """(in-sample, out-of-sample) scores of the finalists, best in-sample first, and the
    current parameters' out-of-sample score -> the winner, or none."""
    # the current parameters set the bar only where they are themselves feasible: a
    # profile that breaks a constraint is beaten by any candidate that keeps them all
    floor = current_out_of_sample.objective if current_out_of_sample.feasible else math.nan
    rechecks = []
    for in_sample, out in rechecks_in:
        if not out.feasible:
            rechecks.append(Recheck(in_sample, out, False, "; ".join(out.violations)))
        elif math.isfinite(floor) and out.objective < floor:
            why = f"out of sample {out.objective:.4g} < current {floor:.4g}"
            rechecks.append(Recheck(in_sample, out, False, why))
        else:
            rechecks.append(Recheck(in_sample, out, True, ""))
    accepted = [r for r in rechecks if r.accepted]
    if not accepted:
        why = "no finalist stayed feasible and beat the current parameters out of sample"
        return Selection(None, tuple(rechecks), current_out_of_sample, why)
    best = max(accepted, key=lambda r: r.out_of_sample.objective)
    reason = f"{best.in_sample.candidate.label}: out of sample {best.out_of_sample.objective:.4g}"
    return Selection(best.in_sample.candidate, tuple(rechecks), current_out_of_sample, reason)


# ---- the profile revision


@dataclass(frozen=True, slots=True)
class ParamChange:
    key: str
    old: float
    wanted: float
    new: float

    @property
    def clamped(self) -> bool:
        return not math.isclose(self.wanted, self.new, abs_tol=10.0**-DECIMALS)


@dataclass(frozen=True, slots=True)
class Revision:
    """A profile revision on disk: later stages name `path` as their profile."""

    path: Path
    number: int
    parent: str
    changes: tuple[ParamChange, ...]
    diff: tuple[Change, ...]


def bounded_changes(
    current: Mapping[str, float], wanted: Mapping[str, float], tuning: TuningConfig
) -> tuple[ParamChange, ...]:
    """Each wanted value through `bounded_step`; unknown keys are refused."""
    changes = []
    for key, target in wanted.items():
        bound = tuning.bounds.get(key)
        if bound is None:
            raise TuningError(
                f"{key!r} has no tuning bound; tunable: {', '.join(tuning.bounds) or 'none'}"
            )
        if key not in current:
            raise TuningError(f"no current value for {key!r}")
        new = _typed(key, bounded_step(current[key], float(target), bound, key))
        changes.append(ParamChange(key, current[key], float(target), new))
    return tuple(changes)


def revision_name(profile_path: Path) -> tuple[str, int]:
    """(name, number) of a profile file: demo.yaml -> (demo, 0), demo.r3.yaml -> (demo, 3)."""
    match = REVISION_RE.match(profile_path.stem)
    if match:
        return match["name"], int(match["number"])
    return profile_path.stem, 0


def next_revision(folder: Path, name: str) -> int:
    taken = [0]
    for path in folder.glob(f"{glob_escape(name)}.r*.yaml"):
        match = REVISION_RE.match(path.stem)
        if match and match["name"] == name:
            taken.append(int(match["number"]))
    return max(taken) + 1


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _nested(changes: Sequence[ParamChange]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for change in changes:
        *parents, leaf = change.key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = int(change.new) if _is_int(change.key) else change.new
    return tree


def _is_int(key: str) -> bool:
    return leaf_annotation(tuple(key.split("."))) is int


def _parent_ref(parent: Path, folder: Path) -> str:
    """How the revision names its parent: the bare name when a lookup from the revision's
    folder finds that very file, else its absolute path."""
    try:
        if find_profile(parent.stem, near=folder) == parent.resolve():
            return parent.stem
    except ConfigError:
        pass
    return str(parent.resolve())


def revision_text(
    parent_ref: str, number: int, changes: Sequence[ParamChange], note: str = ""
) -> str:
    lines = [f"# revision {number} of {parent_ref}, written by apply_tuning (bot/tuning.py)"]
    if note:
        lines.append(f"# {note}")
    for c in changes:
        clamp = f" (wanted {c.wanted:g}, bounded by max_step)" if c.clamped else ""
        lines.append(f"# {c.key}: {c.old:g} -> {c.new:g}{clamp}")
    body = yaml.safe_dump({"extends": parent_ref, **_nested(changes)}, sort_keys=False)
    return "\n".join(lines) + "\n" + body


def apply_tuning(
    profile: str | Path,
    wanted: Mapping[str, float],
    out_dir: Path | None = None,
    note: str = "",
) -> Revision:
    """Write the next revision of `profile` holding `wanted` (bounded-stepped from the
    profile's values) into `out_dir` (default: the profile's own directory). Raises
    TuningError for a value that cannot be applied, ConfigError if the revision does not
    resolve."""
    parent_path = find_profile(profile)
    current = resolve(parent_path, env={})
    tuning = current.settings.tuning
    changes = bounded_changes(current_values(current.settings, tuning.bounds), wanted, tuning)
    folder = (out_dir or parent_path.parent).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    name, _ = revision_name(parent_path)
    parent_ref = _parent_ref(parent_path, folder)
    tmp = _write_temp(folder, name)
    try:
        number = next_revision(folder, name)
        tmp.write_text(revision_text(parent_ref, number, changes, note), encoding="utf-8")
        revised = resolve(tmp, env={})  # a revision that does not load is never published
        path = _link_free(tmp, folder, name, number, parent_ref, changes, note)
    finally:
        tmp.unlink(missing_ok=True)
    return Revision(path, revision_name(path)[1], parent_ref, changes, _diff(current, revised))


def _diff(current: Resolved, revised: Resolved) -> tuple[Change, ...]:
    return tuple(diff(current, revised))


def _write_temp(folder: Path, name: str) -> Path:
    handle, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".yaml.tmp", dir=folder)
    os.close(handle)
    return Path(tmp_name)


def _link_free(
    tmp: Path,
    folder: Path,
    name: str,
    number: int,
    parent_ref: str,
    changes: Sequence[ParamChange],
    note: str,
) -> Path:
    """Give the temp file its revision name with a hard link, which fails instead of
    replacing a revision another writer took meanwhile; then try the next number."""
    for _ in range(_LINK_ATTEMPTS):
        final = folder / f"{name}.r{number}.yaml"
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        try:
            os.link(tmp, final)
        except FileExistsError:
            number = next_revision(folder, name)
            tmp.write_text(revision_text(parent_ref, number, changes, note), encoding="utf-8")
            continue
        return final
    raise TuningError(f"no free revision number for {name!r} in {folder} after {_LINK_ATTEMPTS}")
