"""Readiness score: section formulas worked by hand, READY / HOLD / BLOCK bands."""

from __future__ import annotations

import math

import pytest

from gates.readiness import ReadinessError, readiness
from gates.verdict import Check, Status, Verdict

# at or beyond the warn bounds (net 0.05 min on tier mm1, latency 350 max, maker 0.90
# min): full marks
FULL = {
    "edge": 0.3,
    "latency": 120.0,
    "maker_share": 0.95,
    "guards": 1.0,
    "chaos": 1.0,
    "tests": 1.0,
}


def test_full_marks_are_ready() -> None:
    verdict = readiness(FULL)
    assert verdict.summary == {"score": 100.0, "decision": "READY"}
    assert verdict.status is Status.PASS
    assert verdict.reasons == []


def test_section_formulas_by_hand() -> None:
    # edge: net 0.025 is half way between fail 0 and warn 0.05 (mm1) -> 12.5 of 25
    # latency: 375 ms is half way between warn 350 and fail 400 -> 10 of 20
    # maker: 0.85 is the fail bound -> 0 of 15; guards 0.9 -> 18; chaos 0.5 -> 5; tests 1 -> 10
    sections = {**FULL, "edge": 0.025, "latency": 375.0, "maker_share": 0.85, "guards": 0.9,
                "chaos": 0.5}  # fmt: skip
    verdict = readiness(sections)
    points = {c.name: c.value for c in verdict.checks}
    assert points["edge"] == pytest.approx(12.5)
    assert points["latency"] == pytest.approx(10.0)
    assert points["maker_share"] == 0.0
    assert points["guards"] == pytest.approx(18.0)
    assert points["chaos"] == pytest.approx(5.0)
    assert verdict.summary["score"] == pytest.approx(12.5 + 10 + 0 + 18 + 5 + 10)
    assert verdict.status is Status.FAIL  # 55.5 < 70: BLOCK
    assert verdict.summary["decision"] == "BLOCK"


@pytest.mark.parametrize(
    ("edge", "score", "decision", "status"),
    [
        (0.05, 100.0, "READY", Status.PASS),
        (0.03, 90.0, "READY", Status.PASS),  # 25 x 0.6 = 15 -> 90, on the READY line
        (0.02, 85.0, "HOLD", Status.WARN),  # 25 x 0.4 = 10 -> 85
        (0.0, 75.0, "HOLD", Status.WARN),
    ],
)
def test_bands(edge: float, score: float, decision: str, status: Status) -> None:
    verdict = readiness({**FULL, "edge": edge})
    assert verdict.summary["score"] == pytest.approx(score)
    assert verdict.summary["decision"] == decision
    assert verdict.status is status


def test_missing_sections_score_zero_and_are_named() -> None:
    sections = {k: v for k, v in FULL.items() if k not in ("chaos", "tests")}
    sections["guards"] = math.nan
    verdict = readiness(sections)
    assert verdict.summary["score"] == pytest.approx(60.0)
    assert verdict.status is Status.FAIL
    for name in ("chaos", "tests", "guards"):
        assert f"{name}: missing: scores 0" in verdict.reasons


def test_verdict_inputs_score_by_status() -> None:
    def verdict_of(status: Status) -> Verdict:
        return Verdict.of("x", [Check("c", status, 1.0)])

    sections = {**FULL, "guards": verdict_of(Status.WARN), "chaos": verdict_of(Status.FAIL)}
    verdict = readiness(sections)
    assert verdict.summary["score"] == pytest.approx(100 - 10 - 10)
    assert verdict.summary["decision"] == "HOLD"
    assert "HOLD" in verdict.reasons[0]


def test_custom_thresholds() -> None:
    assert readiness({**FULL, "tests": 0.5}, ready=96).summary["decision"] == "HOLD"


def test_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(ReadinessError, match="share in"):
        readiness({**FULL, "tests": 7})
    with pytest.raises(ReadinessError, match="unknown sections"):
        readiness({**FULL, "vibes": 1.0})
    with pytest.raises(ReadinessError, match="needs a bound"):
        readiness(FULL, bounds={})
