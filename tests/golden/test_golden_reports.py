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
from reports.render import Frames, StageContext, Table, render, stage_context
from tests.unit import reports_helpers as h

GOLDEN_DIR = Path(__file__).parent / "reports"
UPDATE = os.environ.get("MMBOT_UPDATE_GOLDEN") == "1"
EXTENSION = {"md": "md", "html": "html"}


def golden_context(stage: str) -> StageContext:
    settings = Settings()
    facts = [("journal", "journals/golden-1"), ("mode", "paper"), ("seed", "7")]
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
@pytest.mark.parametrize("stage", ["kpi-gate", "canary", "release"])
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


def test_goldens_show_the_frozen_time_and_not_the_wall_clock() -> None:
    for path in GOLDEN_DIR.glob("*.*"):
        assert "2024-08-10T12:00:00.000000Z" in path.read_text(), path.name
