"""gates/promotion.py: PASS evidence or a recorded override; auto approval only where
the profile allows it; rollback triggers walked interval by interval."""

from __future__ import annotations

import pandas as pd
import pytest

from bot.config import RollbackTrigger, Settings
from bot.profiles import load_settings
from gates.promotion import (
    AUTO_REVIEWER,
    Override,
    PromotionRefused,
    auto_approval,
    may_promote,
    promotion_gate,
    ramp_step_verdict,
    rollback_walk,
)
from gates.verdict import Check, Status, Verdict
from tests.unit.reports_helpers import interval_frame

POLICY = Settings()  # requires shadow, accuracy, soak-final, canary


def verdict(gate: str, status: Status, reason: str = "") -> Verdict:
    return Verdict.of(gate, [Check("x", status, 1.0, reason=reason)])


def all_pass() -> dict[str, Verdict]:
    return {s: verdict(s, Status.PASS) for s in POLICY.promote.required_stages}


def test_every_required_stage_passed_is_a_pass() -> None:
    result = promotion_gate(all_pass(), POLICY)
    assert result.status is Status.PASS and may_promote(result)
    assert [c.name for c in result.checks] == ["shadow", "accuracy", "soak-final", "canary"]


@pytest.mark.parametrize(
    ("stage", "status", "expected"),
    [
        ("canary", Status.FAIL, "canary: FAIL, not PASS: x: score 40 < 75"),
        ("accuracy", Status.WARN, "accuracy: WARN, not PASS: x: score 40 < 75"),
    ],
)
def test_a_stage_short_of_pass_blocks(stage: str, status: Status, expected: str) -> None:
    evidence = {**all_pass(), stage: verdict(stage, status, "score 40 < 75")}
    result = promotion_gate(evidence, POLICY)
    assert result.status is Status.FAIL and not may_promote(result)
    assert result.reasons == [expected]


def test_missing_evidence_blocks_and_says_so() -> None:
    evidence = all_pass()
    del evidence["soak-final"]
    result = promotion_gate(evidence, POLICY)
    assert result.status is Status.FAIL
    assert result.reasons == [
        "soak-final: no evidence (the stage did not run or its verdict was not kept)"
    ]


def test_an_override_lets_the_named_stage_through_and_is_recorded() -> None:
    evidence = {**all_pass(), "canary": verdict("canary", Status.FAIL, "net_bps Low")}
    override = Override(("canary",), "alice", "venue outage during the canary window")
    result = promotion_gate(evidence, POLICY, override)
    assert result.status is Status.WARN and may_promote(result)
    (reason,) = result.reasons
    assert reason.startswith("canary: overridden by alice: venue outage during the canary")
    assert "net_bps Low" in reason  # the evidence it overrode stays visible
    assert result.summary["override"]["reviewer"] == "alice"


def test_an_override_covers_only_the_stages_it_names() -> None:
    evidence = {
        **all_pass(),
        "canary": verdict("canary", Status.FAIL, "net_bps Low"),
        "shadow": verdict("shadow", Status.FAIL, "fills 3 < 20"),
    }
    result = promotion_gate(evidence, POLICY, Override(("canary",), "alice", "outage"))
    assert result.status is Status.FAIL
    assert [c.status for c in result.checks if c.name in ("shadow", "canary")] == [
        Status.FAIL,
        Status.WARN,
    ]


@pytest.mark.parametrize(
    ("stages", "reviewer", "reason", "message"),
    [
        ((), "alice", "x", "names the stages"),
        (("canary",), " ", "x", "needs the reviewer"),
        (("canary",), "alice", "", "needs a reason"),
    ],
)
def test_an_incomplete_override_is_refused(
    stages: tuple[str, ...], reviewer: str, reason: str, message: str
) -> None:
    with pytest.raises(PromotionRefused, match=message):
        Override(stages, reviewer, reason)


def test_an_override_of_a_stage_not_required_is_refused() -> None:
    with pytest.raises(PromotionRefused, match="does not require: canery"):
        promotion_gate(all_pass(), POLICY, Override(("canery",), "alice", "typo"))


def test_auto_approval_only_where_the_profile_allows_it() -> None:
    assert auto_approval(load_settings("demo", env={})) == AUTO_REVIEWER
    for profile in ("base", "live", "canary", "soak"):
        settings = load_settings(profile, env={})
        with pytest.raises(PromotionRefused, match=r"promote\.auto_approve is false"):
            auto_approval(settings)


# ---- rollback triggers per interval


def test_a_quiet_step_passes_and_runs_to_the_end() -> None:
    series = interval_frame(30)  # inventory_ratio 0.30-0.45, below the 0.60 trigger
    walk = rollback_walk(series, POLICY)
    assert walk.aborted_at is None and walk.intervals == 30
    assert walk.verdict.status is Status.PASS
    assert ramp_step_verdict(series, POLICY, 0.25).status is Status.PASS


def test_a_breach_aborts_at_the_interval_the_trigger_fires() -> None:
    series = interval_frame(30)
    series.loc[series.index[10:], "inventory_ratio"] = 0.9  # beyond 0.60 from minute 10
    walk = rollback_walk(series, POLICY)
    # the trigger needs 120 s beyond the bound: two 1 min intervals, 10 and 11
    assert walk.aborted_at == pd.Timestamp(series.index[11]) and walk.intervals == 12
    assert walk.verdict.status is Status.FAIL
    assert any("roll back" in r for r in walk.verdict.reasons)
    step = ramp_step_verdict(series, POLICY, 0.5)
    assert step.status is Status.FAIL and step.gate == "ramp 50%"


def test_a_trigger_that_cannot_see_fails_the_step() -> None:
    series = interval_frame(10).drop(columns=["error_rate"])
    verdict_ = ramp_step_verdict(series, POLICY, 0.05)
    assert verdict_.status is Status.FAIL
    assert "error_rate > 0.05: missing" in verdict_.reasons


def test_triggers_come_from_the_policy() -> None:
    series = interval_frame(10)
    strict = POLICY.model_copy(
        update={
            "canary": POLICY.canary.model_copy(
                update={
                    "rollback": [
                        RollbackTrigger(
                            metric="maker_share", bound=0.99, direction="min", for_ms=60_000
                        )
                    ]
                }
            )
        }
    )
    assert rollback_walk(series, strict).aborted_at == pd.Timestamp(series.index[0])
