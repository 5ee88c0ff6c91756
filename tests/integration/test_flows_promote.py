"""The `promote` flow against a real Prefect API: it pauses for a person, an approval
resumed through the API with input ramps the candidate, a rejection stops it, and the
audit log keeps both (earlier lines intact); missing evidence never reaches a person;
`--approve auto` only where the profile allows it."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flows.promote import (
    LIVE_LIMIT,
    LiveParams,
    PromoteParams,
    PromoteResult,
    live_bot,
    promote,
)
from gates.verdict import Check, Status, Verdict

# the mm3 demo quoter, judged on the canary only, ramped through 2 min steps
POLICY = """\
extends: mm3
promote:
  required_stages: [canary]
  auto_approve: false
  ramp_step: 2m
"""
PASSED = Verdict.of("canary", [Check("score", Status.PASS, 100.0, 95, 75)]).to_dict()


@pytest.fixture(scope="module")
def policy(flow_home: Path) -> Path:
    path = flow_home / "promote-policy.yaml"
    path.write_text(POLICY)
    return path


def params(policy: Path, flow_home: Path, run_key: str, **more: Any) -> PromoteParams:
    return PromoteParams(
        profile=str(policy), candidate=str(policy), run_key=run_key,
        work_dir=flow_home / "promote-runs", artifacts_url=(flow_home / "store").as_uri(),
        poll_s=1, **more,
    )  # fmt: skip


def audit(flow_home: Path) -> Path:
    return flow_home / "store" / "audit" / "promotions.jsonl"


def paused_run(run_key: str, timeout_s: float = 120) -> Any:
    """The flow run of `run_key` once it waits for input (its state is Paused)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            for run in client.read_flow_runs(limit=50):
                if run.parameters.get("params", {}).get("run_key") != run_key:
                    continue
                if run.state is not None and run.state.is_paused():
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no paused flow run for {run_key} within {timeout_s} s")


def in_thread(p: PromoteParams) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(state=promote(p, return_state=True)))
    thread.start()
    return thread, out


def decide(p: PromoteParams, run_input: dict[str, Any]) -> Any:
    from prefect.flow_runs import resume_flow_run

    thread, out = in_thread(p)
    run = paused_run(p.run_key)
    resume_flow_run(run.id, run_input=run_input)
    thread.join(timeout=180)
    assert not thread.is_alive(), "the flow did not finish after its input"
    return out["state"]


def set_live_limit(present: bool) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectNotFound):
            client.delete_global_concurrency_limit_by_name(LIVE_LIMIT)
        if present:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=LIVE_LIMIT, limit=1)
            )


@pytest.fixture(scope="module")
def live_limit(prefect_api: str) -> None:
    """The server's one live slot, as `make ui` creates it."""
    set_live_limit(True)


@pytest.fixture(scope="module")
def approved(policy: Path, flow_home: Path, live_limit: None) -> Any:
    p = params(policy, flow_home, "promote-yes", evidence={"canary": PASSED})
    return decide(p, {"approve": True, "reviewer": "alice", "comment": "canary clean"})


def test_an_approval_through_the_api_ramps_to_full_size(approved: Any, flow_home: Path) -> None:
    assert approved.is_completed(), approved.message
    result = approved.result()
    assert isinstance(result, PromoteResult)
    assert result.reviewer == "alice"
    assert result.steps == ((0.05, "PASS"), (0.25, "PASS"), (0.5, "PASS"), (1.0, "PASS"))
    mine = [r for r in read(audit(flow_home)) if r["run_key"] == "promote-yes"]
    assert [r["event"] for r in mine] == ["approved", *["ramp_step"] * 4, "promoted"]
    assert (mine[0]["reviewer"], mine[0]["comment"], mine[0]["how"]) == (
        "alice", "canary clean", "person",
    )  # fmt: skip
    assert mine[0]["evidence"] == {"canary": "PASS"}


def test_a_rejection_stops_the_promotion_and_keeps_earlier_lines(
    approved: Any, policy: Path, flow_home: Path
) -> None:
    before = audit(flow_home).read_bytes()
    p = params(policy, flow_home, "promote-no", evidence={"canary": PASSED})
    state = decide(p, {"approve": False, "reviewer": "bob", "comment": "not on a Friday"})
    assert state.is_failed()
    assert "rejected by bob: not on a Friday" in (state.message or "")
    after = audit(flow_home).read_bytes()
    assert after.startswith(before)  # appended, nothing rewritten
    mine = [r for r in read(audit(flow_home)) if r["run_key"] == "promote-no"]
    assert [(r["event"], r["reviewer"]) for r in mine] == [("rejected", "bob")]
    assert not (flow_home / "promote-runs" / "promote" / "promote-no").exists()  # no ramp


def test_a_ramp_step_that_trips_a_rollback_trigger_stops_the_ramp(
    policy: Path, flow_home: Path, live_limit: None
) -> None:
    # a candidate whose orders the venue rejects more often than not
    broken = flow_home / "promote-broken.yaml"
    broken.write_text(f"extends: {policy}\nsim:\n  faults:\n    reject_prob: 0.6\n")
    p = params(policy, flow_home, "promote-rollback", evidence={"canary": PASSED})
    p = p.model_copy(update={"candidate": str(broken)})
    state = decide(p, {"approve": True, "reviewer": "carol", "comment": "go"})
    assert state.is_failed()
    assert "promote ramp 5%" in (state.message or "") and "roll back" in (state.message or "")
    mine = [r for r in read(audit(flow_home)) if r["run_key"] == "promote-rollback"]
    assert [r["event"] for r in mine] == ["approved", "ramp_step", "rolled_back"]
    assert mine[1]["fraction"] == 0.05 and mine[1]["status"] == "FAIL"


def test_missing_evidence_is_blocked_before_anyone_is_asked(policy: Path, flow_home: Path) -> None:
    state = promote(params(policy, flow_home, "promote-blocked"), return_state=True)
    assert state.is_failed()
    assert "canary: no evidence" in (state.message or "")
    mine = [r for r in read(audit(flow_home)) if r["run_key"] == "promote-blocked"]
    assert [r["event"] for r in mine] == ["blocked"]


def test_auto_approval_is_refused_where_the_profile_does_not_allow_it(
    policy: Path, flow_home: Path
) -> None:
    p = params(policy, flow_home, "promote-auto", evidence={"canary": PASSED}, approve="auto")
    state = promote(p, return_state=True)
    assert state.is_failed()
    assert "promote.auto_approve is false" in (state.message or "")
    assert not [r for r in read(audit(flow_home)) if r["run_key"] == "promote-auto"]


def test_the_live_bot_refuses_to_trade_without_the_live_limit(
    policy: Path, flow_home: Path, live_limit: None
) -> None:
    p = LiveParams(profile=str(policy), run_key="live-strict", work_dir=flow_home / "live",
                   duration="1m")  # fmt: skip
    set_live_limit(False)
    try:
        state = live_bot(p, return_state=True)
    finally:
        set_live_limit(True)
    assert state.is_failed()
    assert LIVE_LIMIT in (state.message or "")
    assert not (flow_home / "live" / "live" / "live-strict").exists()  # never traded
    assert live_bot(p, return_state=True).is_completed()  # with the limit it trades


def read(path: Path) -> list[dict[str, Any]]:
    from reports.audit import FileAuditLog

    return FileAuditLog(path).records()
