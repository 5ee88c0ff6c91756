"""`prefect deploy --all` of prefect.yaml against a real `prefect server start`: every
deployment lands on the process pool, the nightly soak is scheduled at 01:00 UTC, the
live bot runs one at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from flows.promote import LIVE_LIMIT
from gates.verdict import Check, Status, Verdict
from tests.integration.prefect_server import PREFECT, REPO, Server, prefect_cli, prefect_server

EXPECTED = {
    "release": "release",
    "nightly-soak": "soak",
    "shadow": "shadow_run",
    "canary": "canary",
    "promote": "promote",
    "live": "live_bot",
}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prefect_server(tmp_path_factory.mktemp("prefect-deploy")) as server:
        pool = prefect_cli(server, "work-pool", "create", "mmbot-local", "--type", "process")
        assert pool.returncode == 0, pool.stdout + pool.stderr
        result = prefect_cli(server, "deploy", "--all")
        assert result.returncode == 0, result.stdout + result.stderr
        yield server


def _busy(exc: BaseException) -> bool:
    """The answers Prefect's own client retries: a busy server, not a wrong request."""
    return isinstance(exc, urllib.error.HTTPError) and exc.code in (429, 502, 503)


@retry(retry=retry_if_exception(_busy), stop=stop_after_attempt(6),
       wait=wait_exponential(multiplier=0.5, max=5), reraise=True)  # fmt: skip
def api(server: Server, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{server.api}{path}", data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def deployments(server: Server) -> dict[str, dict[str, Any]]:
    flows = {f["id"]: f["name"] for f in api(server, "/flows/filter")}
    return {
        d["name"]: {**d, "flow": flows[d["flow_id"]]} for d in api(server, "/deployments/filter")
    }


def test_every_deployment_in_prefect_yaml_deploys(deployed: Server) -> None:
    found = deployments(deployed)
    assert {name: d["flow"] for name, d in found.items()} == EXPECTED
    assert {d["work_pool_name"] for d in found.values()} == {"mmbot-local"}
    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    assert sorted(d["name"] for d in declared) == sorted(EXPECTED)


def test_the_nightly_soak_is_scheduled_in_utc(deployed: Server) -> None:
    soak = deployments(deployed)["nightly-soak"]
    (schedule,) = soak["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == "0 1 * * *"
    assert schedule["schedule"]["timezone"] == "UTC"
    assert soak["parameters"]["params"]["hours"] == 24
    # hours in one process: pyarrow's buffers from glibc (README: Benchmarks)
    assert soak["job_variables"]["env"] == {"ARROW_DEFAULT_MEMORY_POOL": "system"}
    others = [d for name, d in deployments(deployed).items() if name != "nightly-soak"]
    assert all(not d["schedules"] for d in others)  # nothing else runs on its own


def test_one_live_bot_at_a_time_and_promote_persists_results(deployed: Server) -> None:
    found = deployments(deployed)
    assert found["live"]["global_concurrency_limit"]["limit"] == 1
    promote = found["promote"]
    assert promote["parameters"]["params"]["wait"] == "suspend"
    assert promote["job_variables"]["env"] == {"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true"}


def test_the_deployed_parameters_are_valid_flow_parameters(deployed: Server) -> None:
    from flows.canary import CanaryParams
    from flows.params import ReleaseParams, ShadowParams, SoakParams
    from flows.promote import LiveParams, PromoteParams

    models = {"release": ReleaseParams, "nightly-soak": SoakParams, "shadow": ShadowParams,
              "canary": CanaryParams, "promote": PromoteParams, "live": LiveParams}  # fmt: skip
    for name, d in deployments(deployed).items():
        models[name].model_validate(d["parameters"]["params"])


def flow_run(server: Server, run_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.api}/flow_runs/{run_id}", timeout=30) as response:
        return dict(json.loads(response.read()))


def wait_state(server: Server, run_id: str, names: set[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = flow_run(server, run_id)["state"] or {}
        if state.get("name") in names:
            return state
        if state.get("type") in ("FAILED", "CRASHED", "CANCELLED"):
            raise AssertionError(f"the flow run ended {state.get('name')}: {state.get('message')}")
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} not in {names} after {timeout_s} s: {state}")


def resume(server: Server, run_id: str, answer: dict[str, Any], timeout_s: float = 60) -> None:
    """Resume with input; the API may answer WAIT or REJECT while the suspended process
    is still winding down on a busy machine: ask again until it accepts."""
    deadline = time.monotonic() + timeout_s
    result: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = api(server, f"/flow_runs/{run_id}/resume", {"run_input": answer})
        if result.get("status") == "ACCEPT":
            return
        time.sleep(1)
    raise AssertionError(f"the resume of {run_id} was not accepted: {result}")


def test_a_suspended_promotion_resumes_in_a_new_process(deployed: Server, tmp_path: Path) -> None:
    """The deployed promote suspends (its process ends) until a person answers; resumed
    with input through the API, the worker runs it again and it ramps to full size."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("extends: mm3\npromote:\n  required_stages: [canary]\n"
                      "  auto_approve: false\n  ramp_step: 2m\n")  # fmt: skip
    passed = Verdict.of("canary", [Check("score", Status.PASS, 100.0, 95, 75)]).to_dict()
    params = {"profile": str(policy), "candidate": str(policy), "run_key": "suspended",
              "work_dir": str(tmp_path / "runs"), "artifacts_url": (tmp_path / "store").as_uri(),
              "evidence": {"canary": passed}, "wait": "suspend"}  # fmt: skip
    api(deployed, "/v2/concurrency_limits/", {"name": LIVE_LIMIT, "limit": 1})  # as `make ui`
    promote_id = deployments(deployed)["promote"]["id"]
    run = api(deployed, f"/deployments/{promote_id}/create_flow_run",
              {"parameters": {"params": params}})  # fmt: skip
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(PREFECT), "worker", "start", "--pool", "mmbot-local", "--limit", "1"],
        env=deployed.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_state(deployed, run["id"], {"Suspended"}, 240)
        answer = {"approve": True, "reviewer": "carol", "comment": "resumed after a night"}
        resume(deployed, run["id"], answer)
        wait_state(deployed, run["id"], {"Completed"}, 240)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()
    lines = (tmp_path / "store" / "audit" / "promotions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == ["approved", *["ramp_step"] * 4, "promoted"]
    assert (records[0]["reviewer"], records[0]["how"]) == ("carol", "person")
