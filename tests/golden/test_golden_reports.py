"""Golden reports: rendered bytes compared with files kept under tests/golden/reports/.

Inputs are hand-built frames (tests/unit/reports_helpers.py) and journals
(tests/unit/gates_helpers.py); the verdicts are the ones the gate functions make of
them (gates.stage, gates.canary, gates.accuracy, gates.readiness), so a golden shows
only the shapes the real gates emit. Rendered with the default settings and a frozen
clock. A difference is a failure; to
accept a change on purpose run `make update-golden` (MMBOT_UPDATE_GOLDEN=1),
which rewrites the files. A missing golden is a failure, never a silent write.
"""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path

import pytest

from bot.config import Settings
from bot.runtime.clock import FREEZE_ENV, default_clock
from gates.accuracy import accuracy_gate
from gates.canary import canary_judge
from gates.kpi import Journal
from gates.readiness import readiness
from gates.stage import edge_decomposition, judged_kpis, kpi_stage, policy_view, release_verdict
from gates.verdict import Verdict
from reports.render import (
    STAGES,
    Frames,
    StageContext,
    StageEvidence,
    Table,
    render,
    stage_context,
)
from tests.unit import gates_helpers as gh
from tests.unit import reports_helpers as h

GOLDEN_DIR = Path(__file__).parent / "reports"
UPDATE = os.environ.get("MMBOT_UPDATE_GOLDEN") == "1"
EXTENSION = {"md": "md", "html": "html"}


# Every verdict below is made by the gate function that makes it in a run, on fixed
# inputs: the hand journal of tests/unit/gates_helpers (its own fee tier "hand" is not
# the default policy's mm1, so the fee check FAILs) and the hand interval frames.


def hand_journal(mode: str = "paper") -> Journal:
    return Journal.of(gh.memory_tables(), {**gh.MANIFEST, "mode": mode})


@functools.cache
def kpi_verdict(mode: str = "paper") -> Verdict:
    return kpi_stage(hand_journal(mode), Settings())


@functools.cache
def judged(mode: str = "paper") -> dict[str, float]:
    """The KPIs the verdict judged, for the KPI table beside it."""
    return judged_kpis(hand_journal(mode), Settings()).total


@functools.cache
def edge(mode: str = "paper") -> dict[str, float]:
    """The signed edge decomposition of the view the verdict judged."""
    settings = Settings()
    view = policy_view(hand_journal(mode), settings)
    return edge_decomposition(view, settings.gates.horizon_ms).to_dict()


def accuracy_verdict() -> Verdict:
    return accuracy_gate(h.interval_frame(), h.interval_frame(shift=0.2), Settings().gates.accuracy)


def canary_verdict() -> Verdict:
    return canary_judge(h.interval_frame(shift=0.4), h.interval_frame(), Settings().canary)


def readiness_verdict() -> Verdict:
    kpis = kpi_verdict().summary["kpis"]
    sections = {
        "edge": kpis["net_bps"],
        "latency": kpis["order_latency_p95_ms"],
        "maker_share": kpis["maker_share"],
        "guards": 0.9,
        "chaos": 1.0,
        "tests": 1.0,
    }
    return readiness(sections)


def golden_context(stage: str) -> StageContext:
    settings = Settings()
    facts = [("journal", "journals/golden-1"), ("mode", "paper"), ("seed", "7")]
    if stage == "shadow":
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=kpi_verdict("shadow"),
            kpis=judged("shadow"),
            edge=edge("shadow"),
            by_symbol={"BTCUSDT": {"net_bps": 3.1, "fills": 200}},
            frames=Frames(equity=h.equity_frame(), edges=h.edges_frame()),
            facts=[("journal", "journals/golden-1"), ("mode", "shadow"), ("source", "replay")],
        )
    if stage == "accuracy":
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=accuracy_verdict(),
            frames=Frames(
                intervals=h.interval_frame(), baseline_intervals=h.interval_frame(shift=0.2)
            ),
            facts=[*facts, ("sim journal", "journals/sim-1")],
        )
    if stage == "soak-iteration":
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=kpi_verdict(),
            kpis=judged(),
            frames=Frames(equity=h.equity_frame(), intervals=h.interval_frame()),
            facts=[*facts, ("iteration", "3 of 6")],
        )
    if stage == "soak-final":
        iterations = tuple(
            (i, "PASS" if i != 4 else "WARN", 3.0 + i / 10, 800 + 40 * i) for i in range(1, 7)
        )
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=readiness_verdict(),
            evidence=[kpi_verdict()],
            kpis=judged(),
            frames=Frames(equity=h.equity_frame(), intervals=h.interval_frame()),
            tables=[
                Table(
                    "iterations",
                    "Iterations",
                    ("iteration", "status", "net_bps", "fills"),
                    iterations,
                )
            ],
            facts=facts,
        )
    if stage == "tuning":
        sweep = (
            (0.5, 5.0, 2.71, 0.95),
            (1.0, 5.0, 3.05, 0.93),
            (1.5, 5.0, 3.22, 0.88),
            (1.0, 7.0, 3.10, 0.92),
        )
        revision = (("strategy.min_half_spread_bps", "1.0", "1.5", "0.5"),)
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=kpi_verdict(),
            kpis=judged(),
            tables=[
                Table(
                    "sweep",
                    "Sweep",
                    (
                        "strategy.min_half_spread_bps",
                        "strategy.skew_bps_per_inventory",
                        "net_bps",
                        "maker_share",
                    ),
                    sweep,
                ),
                Table("revision", "Proposed revision", ("key", "old", "new", "max_step"), revision),
            ],
            facts=facts,
        )
    if stage == "canary":
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=canary_verdict(),
            kpis=h.KPIS,
            frames=Frames(
                equity=h.equity_frame(),
                intervals=h.interval_frame(),
                baseline_intervals=h.interval_frame(shift=0.4),
            ),
            facts=[*facts, ("baseline", "journals/base-1")],
        )
    if stage == "release":
        stages = [
            StageEvidence(
                "kpi-gate", kpi_verdict(), "s3://mmbot-artifacts/kpi-gate/golden-1/report.html"
            ),
            StageEvidence(
                "canary", canary_verdict(), "s3://mmbot-artifacts/canary/golden-1/report.html"
            ),
        ]
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=release_verdict({s.stage: s.verdict for s in stages}),
            stages=stages,
            tables=[Table("approval", "Approval", ("who", "decision"), (("ops@desk", "approve"),))],
            links=[("kpi-gate report", "s3://mmbot-artifacts/kpi-gate/golden-1/report.html")],
        )
    return stage_context(
        stage,
        settings,
        run_id="golden-1",
        verdict=kpi_verdict(),
        kpis=judged(),
        edge=edge(),
        by_symbol={
            "BTCUSDT": {"net_bps": 3.1, "fills": 200},
            "ETHUSDT": {"net_bps": 2.8, "fills": 40},
        },
        frames=Frames(equity=h.equity_frame(), edges=h.edges_frame(), intervals=h.interval_frame()),
        facts=facts,
    )


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("stage", STAGES)
def test_report_matches_golden(stage: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FREEZE_ENV, h.FROZEN)
    text = render(stage, golden_context(stage), fmt, default_clock())  # type: ignore[arg-type]
    path = GOLDEN_DIR / f"{stage}.{EXTENSION[fmt]}"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    assert path.is_file(), f"golden {path} missing: run `make update-golden` and review the diff"
    expected = path.read_bytes().decode()
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                "golden",
                "rendered",
                n=1,
            )
        )
        pytest.fail(f"{path.name} differs from its golden:\n{diff[:4000]}")


def test_every_stage_has_both_goldens() -> None:
    kept = {path.name for path in GOLDEN_DIR.glob("*.*")}
    assert kept == {f"{stage}.{fmt}" for stage in STAGES for fmt in EXTENSION.values()}


def test_goldens_show_the_frozen_time_and_not_the_wall_clock() -> None:
    for path in GOLDEN_DIR.glob("*.*"):
        assert "2024-08-10T12:00:00.000000Z" in path.read_text(), path.name
