"""`soak`: one long paper run in iterations, judged as it goes and at the end.

Each iteration replays `iteration` of data time (default 1 h) through the same
session (bot/runtime/session.py: positions, open orders and guards carry over),
writes its journal, gets its in-run verdict (gates.stage.warm_up: iterations 1-4
are warm-up), and the auto-tuner (bot/autotune.py) may retune the strategy within
the policy's tuning bounds before the next one. After each iteration the session,
the tuner's state and the summaries so far are checkpointed under
`<work_dir>/soak/<run_key>/`: that checkpoint is the iteration's commit. A soak
re-run with the same run key resumes after the last committed iteration: an
iteration cut short by a crash is replayed from the state before it, none is lost
or counted twice.

A FAIL of the in-run gate after the warm-up stops the soak, unless the policy says
`soak.stop_on_fail: false` (a measurement, e.g. profiles/stability.yaml: the soak goes
on with a warning and its iteration rows keep each FAIL). At the end: the KPI gate
over the steady-state iterations (gates.stage.soak_final_stage), the readiness score
(gates.readiness) and the soak-final report with the iteration table.

Run from a shell (the resume test kills such a process):
    python -m flows.soak '{"profile": "demo", "run_key": "nightly", "hours": 24}'
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from bot.autotune import Decision, TunerState, decide
from bot.config import Settings
from bot.runtime.clock import default_clock, parse_duration
from bot.runtime.run import settings_for
from bot.runtime.session import SimSession
from bot.runtime.telemetry import configure_for
from flows.artifacts import obey, publish_stage, show_stage
from flows.params import SoakParams, artifact_key
from flows.runs import StageOutcome, policy_of, run_spec
from gates.kpi import Journal, equity_curve, fill_edges, interval_series, load_journal, nan_to_none
from gates.quality import check_iterations
from gates.readiness import readiness
from gates.stage import (
    judged_kpis,
    kpi_stage,
    policy_bounds,
    policy_view,
    soak_final_stage,
    warm_up,
)
from gates.verdict import Status, Verdict
from reports.inputs import read_iterations
from reports.numbers import KPI_MEASURES
from reports.render import Frames, report_from_context, stage_context

STAGE: Final = "soak-final"
CHECKPOINT: Final = "checkpoint.pkl"
ITERATIONS: Final = "iterations.jsonl"
DEFAULTS = SoakParams()  # frozen: one default instance is safe
NS_PER_H: Final = 3_600_000_000_000


@dataclass(frozen=True, slots=True)
class SoakState:
    """What the checkpoint carries beside the session: the tuner, the summaries and the
    last iteration's in-run verdict (a soak its gate stopped stays stopped on a re-run)."""

    tuner: TunerState = field(default_factory=TunerState)
    summaries: tuple[dict[str, Any], ...] = ()
    params: dict[str, float] = field(default_factory=dict)
    last_verdict: Verdict | None = None


def iteration_count(hours: float, iteration: str) -> int:
    return max(1, math.ceil(hours * NS_PER_H / parse_duration(iteration)))


def rss_mb() -> float:
    """This process's resident set now (Linux /proc), else its peak (getrusage)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_fds() -> int | None:
    """How many file descriptors this process holds (Linux /proc), else None: a soak that
    leaks sockets or files shows it here before the system's limit stops it."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def tunable(settings: Settings) -> dict[str, float]:
    """The current values of the parameters the policy's tuning bounds name."""
    values = {}
    for key in settings.tuning.bounds:
        section, _, name = key.partition(".")
        values[key] = float(getattr(getattr(settings, section), name))
    return values


def _summary(
    iteration: int, verdict: Verdict, kpis: dict[str, Any], session: SimSession,
    decision: Decision | None,
) -> dict[str, Any]:  # fmt: skip
    """One iteration's summary, in the soak-final report's format (reports/inputs.py)."""
    engine = session.engine.summary()
    return {
        "iteration": iteration,
        "status": verdict.status.value,
        "reasons": verdict.reasons,
        # the KPIs the soak-final report knows (reports/inputs.py refuses others)
        "kpis": {k: v for k, v in nan_to_none(kpis).items() if v is not None and k in KPI_MEASURES},
        "guards": {k: engine[k] for k in ("state", "freezes", "open_orders", "blocks", "fault")},
        "tuning": {c.param: c.new for c in decision.changes} if decision else {},
        "refused": [f"{r.param}: {r.guard}" for r in decision.refused] if decision else [],
        "rss_mb": round(rss_mb(), 1),
        "open_fds": open_fds(),
    }


@task(cache_policy=NO_CACHE)
def soak_iteration(
    session: SimSession, iteration: int, length: str, root: Path, policy: Settings
) -> tuple[Path, Verdict, dict[str, Any]]:
    """Replay one iteration; its journal, in-run verdict and KPIs."""
    segment = session.run_segment(length, root / f"iteration-{iteration:03d}")
    journal = load_journal(segment.journal)
    kpis = judged_kpis(journal, policy)
    return segment.journal, warm_up(kpi_stage(journal, policy, kpis), iteration), kpis.total


def _start(
    params: SoakParams, policy: Settings, hours: float, root: Path
) -> tuple[SimSession, SoakState]:
    """The checkpointed session of this run key, else a new one."""
    checkpoint = root / CHECKPOINT
    if checkpoint.exists():
        session, state = SimSession.resume(checkpoint)
        get_run_logger().info("soak resumed after iteration %d", len(state.summaries))
        return session, state
    spec = run_spec(params, "soak", "paper", params.source, f"{hours:g}h", role="session")
    settings = settings_for(spec)
    configure_for(settings)
    return SimSession(spec, settings), SoakState(params=tunable(settings))


def _commit(root: Path, session: SimSession, state: SoakState) -> None:
    session.checkpoint(root / CHECKPOINT, state)
    lines = "".join(json.dumps(s, sort_keys=True, default=str) + "\n" for s in state.summaries)
    tmp = root / (ITERATIONS + ".tmp")
    tmp.write_text(lines)
    tmp.replace(root / ITERATIONS)


def _tune(
    session: SimSession, state: SoakState, iteration: int, kpis: dict[str, Any],
    policy: Settings,
) -> tuple[SoakState, Decision | None]:  # fmt: skip
    if not policy.soak.auto_tune:
        return state, None
    tuner, decision = decide(
        state.tuner, iteration, kpis, state.params, policy.tuning.bounds, policy_bounds(policy)
    )
    if decision.changes:
        session.retune({c.param: c.new for c in decision.changes})
    return replace(state, tuner=tuner, params=dict(decision.params)), decision


@flow(name="soak")
def soak(params: SoakParams = DEFAULTS) -> StageOutcome:
    policy = policy_of(params)
    hours = params.hours or policy.soak.hours
    total = iteration_count(hours, params.iteration)
    root = params.work_dir / "soak" / params.run_key
    root.mkdir(parents=True, exist_ok=True)
    session, state = _start(params, policy, hours, root)
    progress = _progress(params.run_key, len(state.summaries), total)
    journals = [root / f"iteration-{s['iteration']:03d}" for s in state.summaries]
    last = state.last_verdict
    if last is not None and last.status is Status.FAIL:  # its gate stopped it: still stopped
        _obey_in_run(last, len(state.summaries), policy)
    for iteration in range(len(state.summaries) + 1, total + 1):
        journal, verdict, kpis = soak_iteration(session, iteration, params.iteration, root, policy)
        state, decision = _tune(session, state, iteration, kpis, policy)
        summary = _summary(iteration, verdict, kpis, session, decision)
        state = replace(state, summaries=(*state.summaries, summary), last_verdict=verdict)
        _commit(root, session, state)
        journals.append(journal)
        update_progress_artifact(progress, 100.0 * iteration / total)
        _obey_in_run(verdict, iteration, policy)
    return _final(params, policy, root, journals, state)


def _obey_in_run(verdict: Verdict, iteration: int, policy: Settings) -> None:
    """An in-run verdict stops the soak on FAIL, unless the policy measures (a
    `soak.stop_on_fail: false` soak goes on, saying so)."""
    stage = f"soak iteration {iteration}"
    if verdict.status is Status.FAIL and not policy.soak.stop_on_fail:
        get_run_logger().warning(
            "%s: %s FAIL (soak.stop_on_fail is false: going on): %s",
            stage, verdict.gate, "; ".join(verdict.reasons),
        )  # fmt: skip
        return
    obey(verdict, stage)


def _progress(run_key: str, done: int, total: int) -> UUID:
    # Prefect types it for both sync and async callers; from a sync flow it is the id
    return create_progress_artifact(  # type: ignore[return-value]
        100.0 * done / total, key=artifact_key("soak", run_key, "progress"),
        description=f"soak {run_key}: {total} iterations",
    )  # fmt: skip


def _final(
    params: SoakParams, policy: Settings, root: Path, journals: list[Path], state: SoakState
) -> StageOutcome:
    loaded = [load_journal(j) for j in journals]
    verdict, steady = soak_final_stage(loaded, policy)
    score = soak_readiness(steady, policy, state)
    quality = check_iterations_of(state)
    table = read_iterations(root / ITERATIONS)
    frames = _frames(steady, policy, params.iteration)
    kpis = judged_kpis(steady, policy).total if steady is not None else {}
    context = stage_context(
        STAGE, policy, run_id=params.run_key, verdict=verdict, evidence=(score, quality),
        kpis=kpis, frames=frames, tables=(table,),
        facts=(("iterations", str(len(journals))), ("checkpoints", str(root))),
    )  # fmt: skip
    report = report_from_context(context, policy, default_clock())
    published = publish_stage(report, policy, params.run_key, params.artifacts_url)
    show_stage(report, published, params.run_key, journal=root, kpis=kpis)
    obey(verdict, "soak", published)
    return StageOutcome("soak", verdict, published.urls, root, evidence=(score,))


def soak_readiness(steady: Journal | None, policy: Settings, state: SoakState) -> Verdict:
    """Readiness from the steady state: edge, latency and maker share from its KPIs; guards
    the share of iterations whose in-run gate did not FAIL; chaos the share that ended
    without a venue fault (the soak profile injects faults); tests are not run by a soak
    and score 0 as missing."""
    kpis = judged_kpis(steady, policy).total if steady is not None else {}
    rows = state.summaries
    held = sum(1 for s in rows if s["status"] != Status.FAIL.value) / len(rows) if rows else None
    survived = sum(1 for s in rows if not s["guards"]["fault"]) / len(rows) if rows else None
    return readiness(
        {"edge": kpis.get("net_bps"), "latency": kpis.get("order_latency_p95_ms"),
         "maker_share": kpis.get("maker_share"), "guards": held, "chaos": survived},
        policy_bounds(policy), policy.gates.readiness_ready, policy.gates.readiness_hold,
    )  # fmt: skip


def check_iterations_of(state: SoakState) -> Verdict:
    frame = pd.DataFrame([s["kpis"] for s in state.summaries])
    return check_iterations(frame, required=("net_bps", "fills", "maker_share"))


def _frames(steady: Journal | None, policy: Settings, interval: str) -> Frames:
    """The report's charts over the steady state, one point per iteration."""
    if steady is None:
        return Frames()
    view = policy_view(steady, policy)
    horizon = policy.gates.horizon_ms
    return Frames(
        equity_curve(view), fill_edges(view, horizon), interval_series(view, interval, horizon)
    )


if __name__ == "__main__":
    soak(SoakParams.model_validate_json(sys.argv[1]))
