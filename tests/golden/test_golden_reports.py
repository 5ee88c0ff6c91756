"""Golden reports: rendered bytes compared with files kept under tests/golden/reports/.

Inputs are hand-built frames and verdicts (tests/unit/reports_helpers.py) and the
default settings, rendered with a frozen clock. A difference is a failure; to
accept a change on purpose run `make update-golden` (MMBOT_UPDATE_GOLDEN=1),
which rewrites the files. A missing golden is a failure, never a silent write.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from bot.config import Settings
from bot.runtime.clock import FREEZE_ENV, default_clock
from gates.verdict import Check, Status, Verdict
from reports.render import STAGES, Frames, StageContext, Table, render, stage_context
from tests.unit import reports_helpers as h

GOLDEN_DIR = Path(__file__).parent / "reports"
UPDATE = os.environ.get("MMBOT_UPDATE_GOLDEN") == "1"
EXTENSION = {"md": "md", "html": "html"}


def accuracy_verdict() -> Verdict:
    # shaped like gates.accuracy: MAPE per compared KPI against mape_pass / mape_warn
    return Verdict.of(
        "accuracy",
        [
            Check("net_bps", Status.PASS, 0.08, 0.15, 0.30, "", {"windows": 60}),
            Check("net_bps median |delta|", Status.PASS, 0.4, 1.5, None),
            Check("maker_share", Status.WARN, 0.21, 0.15, 0.30, "MAPE 0.21 > pass 0.15"),
            Check("fills", Status.PASS, 0.11, 0.15, 0.30),
        ],
        {"aligned_intervals": 60, "sim_run": "sim-1"},
    )


def readiness_verdict() -> Verdict:
    # shaped like gates.readiness: points per component, then the overall score
    return Verdict.of(
        "readiness",
        [
            Check("kpi_gate", Status.WARN, 30.0, reason="1 KPI in WARN", detail={"max": 40}),
            Check("soak_stability", Status.PASS, 25.0, detail={"max": 25}),
            Check("accuracy", Status.PASS, 20.0, detail={"max": 20}),
            Check("score", Status.WARN, 75.0, 90, 70, "75 < ready 90"),
        ],
        {"score": 75.0, "iterations": 6},
    )


def golden_context(stage: str) -> StageContext:
    settings = Settings()
    facts = [("journal", "journals/golden-1"), ("mode", "paper"), ("seed", "7")]
    if stage == "shadow":
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=h.kpi_verdict(),
            kpis=h.KPIS,
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
            verdict=h.kpi_verdict(),
            kpis=h.KPIS,
            frames=Frames(equity=h.equity_frame(), intervals=h.interval_frame()),
            facts=[*facts, ("iteration", "3 of 6")],
        )
    if stage == "soak-final":
        iterations = tuple(
            (str(i), f"{3.0 + i / 10:.2f}", "PASS" if i != 4 else "WARN") for i in range(1, 7)
        )
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            verdict=readiness_verdict(),
            evidence=[h.kpi_verdict()],
            kpis=h.KPIS,
            frames=Frames(equity=h.equity_frame(), intervals=h.interval_frame()),
            tables=[
                Table("iterations", "Iterations", ("iteration", "net_bps", "gate"), iterations)
            ],
            facts=facts,
        )
    if stage == "tuning":
        sweep = (
            ("0.5", "5.0", "2.71", "0.95"),
            ("1.0", "5.0", "3.05", "0.93"),
            ("1.5", "5.0", "3.22", "0.88"),
            ("1.0", "7.0", "3.10", "0.92"),
        )
        revision = (("strategy.min_half_spread_bps", "1.0", "1.5", "0.5"),)
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            kpis=h.KPIS,
            tables=[
                Table(
                    "sweep",
                    "Sweep",
                    ("min_half_spread_bps", "skew_bps_per_inventory", "net_bps", "maker_share"),
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
            verdict=h.canary_verdict(),
            kpis=h.KPIS,
            frames=Frames(
                equity=h.equity_frame(),
                intervals=h.interval_frame(),
                baseline_intervals=h.interval_frame(shift=0.4),
            ),
            facts=[*facts, ("baseline", "journals/base-1")],
        )
    if stage == "release":
        return stage_context(
            stage,
            settings,
            run_id="golden-1",
            evidence=[h.kpi_verdict(), h.canary_verdict()],
            tables=[Table("approval", "Approval", ("who", "decision"), (("ops@desk", "approve"),))],
            links=[("kpi-gate report", "s3://mmbot-artifacts/kpi-gate/golden-1/report.html")],
        )
    return stage_context(
        stage,
        settings,
        run_id="golden-1",
        verdict=h.kpi_verdict(),
        kpis=h.KPIS,
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
