"""The person in the loop, in a real browser: two promotions pause for input on a real
`prefect server start`; headless Chromium (Playwright) opens each run in the Prefect
UI, fills the approval form and submits it. The approved one resumes and ramps, the
rejected one stops, and the audit log holds both decisions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.prefect_server import REPO, Server, prefect_cli, prefect_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
POLICY = "extends: mm3\npromote:\n  required_stages: [canary]\n  ramp_step: 1m\n"
# one promotion run in its own process, as a worker would run it; prints its final state
RUN = """
import sys
from flows.promote import PromoteParams, promote
from gates.verdict import Check, Status, Verdict
passed = Verdict.of("canary", [Check("score", Status.PASS, 100.0, 95, 75)]).to_dict()
policy, home, run_key = sys.argv[1:4]
state = promote(PromoteParams(
    profile=policy, candidate=policy, run_key=run_key, work_dir=home + "/runs",
    artifacts_url="file://" + home + "/store", poll_s=1, evidence={"canary": passed},
), return_state=True)
print("STATE", state.type.value, state.message)
"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prefect_server(tmp_path_factory.mktemp("prefect-ui")) as running:
        created = prefect_cli(running, "gcl", "create", "mmbot-live", "--limit", "1")
        assert created.returncode == 0, created.stdout + created.stderr
        yield running


def paused_run_id(server: Server, run_key: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"{server.api}/flow_runs/filter", data=b"{}",
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            for run in json.loads(response.read()):
                if (run["parameters"].get("params", {}).get("run_key") == run_key
                        and run["state_type"] == "PAUSED"):  # fmt: skip
                    return str(run["id"])
        time.sleep(0.5)
    raise AssertionError(f"{run_key} did not pause for input within {timeout_s} s")


def state_of(server: Server, run_id: str) -> str:
    with urllib.request.urlopen(f"{server.api}/flow_runs/{run_id}", timeout=10) as response:
        return str(json.loads(response.read())["state_type"])


def resumed(server: Server, run_id: str, timeout_s: float = 120) -> None:
    """The run left PAUSED (the API's word, not the page's: the UI refreshes on a timer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if state_of(server, run_id) != "PAUSED":
            return
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still PAUSED {timeout_s} s after the form was submitted")


def fill_and_submit(page: Any, url: str, approve: bool, reviewer: str, comment: str,
                    screenshot: Path | None = None) -> None:  # fmt: skip
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url)
    page.get_by_role("button", name="Resume").first.click(timeout=60_000)
    form = page.locator(".p-modal")
    form.get_by_text("Promotion gate: PASS").wait_for(timeout=30_000)  # the evidence shows
    if approve:
        form.get_by_role("switch").click()
        assert form.get_by_role("switch").get_attribute("aria-checked") == "true"
    fields = form.locator("textarea")
    fields.nth(0).fill(reviewer)
    fields.nth(1).fill(comment)
    if screenshot is not None:
        form.screenshot(path=str(screenshot))
    # the form took the input and closed; a busy API can leave it open, and a person
    # then presses Submit again (three tries of 20 s, the 60 s it always had)
    for attempt in range(3):
        form.get_by_role("button", name="Submit").click()
        try:
            form.wait_for(state="detached", timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def start_run(server: Server, policy: Path, home: Path, run_key: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(policy), str(home), run_key], env=server.env,
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_approve_and_reject_in_the_prefect_ui(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    runs = {key: start_run(server, policy, tmp_path, key) for key in ("ui-approve", "ui-reject")}
    try:
        ids = {key: paused_run_id(server, key) for key in runs}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            runs_url = f"{server.url}/runs/flow-run"
            shot = tmp_path / "approval.png"
            fill_and_submit(page, f"{runs_url}/{ids['ui-approve']}", True, "alice",
                            "canary clean, ramp it", shot)  # fmt: skip
            resumed(server, ids["ui-approve"])
            fill_and_submit(page, f"{runs_url}/{ids['ui-reject']}", False, "bob",
                            "not before the venue upgrade")  # fmt: skip
            resumed(server, ids["ui-reject"])
            browser.close()
        outputs = {key: run.communicate(timeout=180)[0] for key, run in runs.items()}
    finally:
        for run in runs.values():
            run.kill()
    assert "STATE COMPLETED" in outputs["ui-approve"], outputs["ui-approve"][-3000:]
    assert "STATE FAILED" in outputs["ui-reject"], outputs["ui-reject"][-3000:]
    assert "rejected by bob: not before the venue upgrade" in outputs["ui-reject"]
    lines = (tmp_path / "store" / "audit" / "promotions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    decided = {(r["run_key"], r["event"], r.get("reviewer"), r.get("comment")) for r in records}
    assert ("ui-approve", "approved", "alice", "canary clean, ramp it") in decided
    assert ("ui-reject", "rejected", "bob", "not before the venue upgrade") in decided
    approved = [r["event"] for r in records if r["run_key"] == "ui-approve"]
    assert approved == ["approved", *["ramp_step"] * 4, "promoted"]
    assert [r["event"] for r in records if r["run_key"] == "ui-reject"] == ["rejected"]
    assert (tmp_path / "approval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
