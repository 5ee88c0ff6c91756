"""`/health`, `/ready` and `/metrics` of a running `mmbot run --health-port` (joined
to a real redis-server), read with a real HTTP client: the bearer token, readiness
turning 503 with its reason while an operator freeze holds, and the metrics moving."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bot.exitcodes import ExitCode

MMBOT = str(Path(sys.executable).parent / "mmbot")
TOKEN = "health-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(state_url: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(state_url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:  # not listening yet
        return 0, b""


def wait(what: str, until: Callable[[], Any], run: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        assert run.poll() is None, f"the run ended before {what}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def metric(body: bytes, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise KeyError(name)


def test_health_ready_metrics_of_a_running_bot(state_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = ("--state", state_url, "--account", "health")
    run = subprocess.Popen(
        [MMBOT, "run", "--synth", "6", "--duration", "24h", "--out", str(tmp_path / "j"),
         "--no-progress", "--log-level", "error", "--health-port", str(port), *state,
         # no edge freezes of its own: the only freeze is the operator's
         "--set", "risk.edge_freeze_bps=-10000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MMBOT_HEALTH_TOKEN": TOKEN},
    )  # fmt: skip
    try:
        wait("/health", lambda: get(f"{base}/health")[0] == 200, run)
        assert get(f"{base}/health", token=None)[0] == 401
        assert get(f"{base}/metrics", token="guess")[0] == 401
        code, body = wait("/ready", lambda: (r := get(f"{base}/ready"))[0] == 200 and r, run)
        ready = json.loads(body)
        assert ready["ready"] and ready["failing"] == []
        assert ready["checks"]["lease_held"] and ready["checks"]["redis_reachable"]
        first = wait("orders", lambda: (m := get(f"{base}/metrics")[1]) and metric(
            m, "mmbot_orders_total", outcome="placed") > 0 and m, run)  # fmt: skip
        assert 0 <= metric(first, "mmbot_heartbeat_age_seconds") < 5
        assert metric(first, "mmbot_lease_held", account="health") == 1
        done = subprocess.run([MMBOT, "freeze", "--reason", "check /ready", "--author", "ops",
                               *state, "--audit-log", str(tmp_path / "audit.jsonl")],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        code, body = wait("/ready 503", lambda: (r := get(f"{base}/ready"))[0] == 503 and r, run)
        assert json.loads(body)["failing"] == ["trading state frozen"]
        assert get(f"{base}/health")[0] == 200  # frozen, not dead
        body = get(f"{base}/metrics")[1]
        assert metric(body, "mmbot_freezes_total", kind="freeze", check="operator") == 1
        assert metric(body, "mmbot_trading_state", state="frozen") == 1
        assert metric(body, "mmbot_orders_total", outcome="placed") >= metric(
            first, "mmbot_orders_total", outcome="placed")  # fmt: skip
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=120)
    assert code == ExitCode.INTERRUPTED
    stderr = run.stderr.read() if run.stderr else ""
    assert TOKEN not in stderr
    assert get(f"{base}/health")[0] == 0  # the server went with the run
