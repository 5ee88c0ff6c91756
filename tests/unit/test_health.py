"""The run's metrics count every journal row once, whether a poll or a flush saw it
first (a real sim run with small segments), and readiness names what fails."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.journal import read_table
from bot.runtime.health import HealthServer, Readiness, RunMonitor, reason_label
from bot.runtime.run import RunSpec, run_bot, settings_for

NS_PER_MS = 1_000_000


class SteppingClock:
    """Wall time that moves 50 ms per read: the monitor polls on most timers."""

    def __init__(self) -> None:
        self.ns = 0

    def now_ns(self) -> int:
        self.ns += 50 * NS_PER_MS
        return self.ns


def samples(monitor: RunMonitor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = monitor.metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunMonitor, Path]:
    out = tmp_path_factory.mktemp("health") / "journal"
    spec = RunSpec(mode="paper", out_dir=out, synth_seed=4, duration="10m", progress=False,
                   overrides=("storage.journal_segment_rows=700",
                              "risk.max_inventory_usd=1500"))  # fmt: skip
    monitor = RunMonitor(SteppingClock(), poll_ms=100)
    run_bot(spec, settings_for(spec), monitor=monitor)
    return monitor, out


def test_counts_equal_the_journal_rows(run: tuple[RunMonitor, Path]) -> None:
    monitor, out = run
    got = samples(monitor)
    orders = read_table(out, "orders")
    fills = read_table(out, "fills")
    risk = read_table(out, "risk")
    placed = int((orders["event"] == "place").sum())
    assert placed > 100  # enough rows that polls and flushes both met some
    assert got[("mmbot_orders_total", (("outcome", "placed"), ("reason", "")))] == placed
    by_liquidity = fills["liquidity"].value_counts()
    for liquidity, n in by_liquidity.items():
        key = ("mmbot_orders_total", (("outcome", "filled"), ("reason", str(liquidity))))
        assert got[key] == n
    blocks = risk[risk["kind"] == "block"]["check"].value_counts()
    assert not blocks.empty  # the small inventory limit blocks some orders
    for check, n in blocks.items():
        assert got[("mmbot_orders_total", (("outcome", "blocked"), ("reason", str(check))))] == n
    freezes = risk[risk["kind"] == "freeze"]["check"].value_counts()
    for check, n in freezes.items():
        assert got[("mmbot_freezes_total", (("check", str(check)), ("kind", "freeze")))] == n
    acks = orders[(orders["event"] == "ack") & (orders["ts_send_ns"] > 0)]
    assert got[("mmbot_order_latency_seconds_count", ())] == len(acks)
    latency = (acks["ts_ack_ns"] - acks["ts_send_ns"]).sum() / 1e9
    assert got[("mmbot_order_latency_seconds_sum", ())] == pytest.approx(latency)


def test_edge_and_maker_share_from_the_fills(run: tuple[RunMonitor, Path]) -> None:
    monitor, out = run
    got = samples(monitor)
    fills = read_table(out, "fills")
    notional = fills["price"] * fills["qty"]
    gross = fills["side"] * (fills["mid"] - fills["price"]) / fills["mid"] * 1e4
    want = (gross * notional).sum() / notional.sum()
    assert got[("mmbot_edge_bps", (("symbol", "BTCUSDT"),))] == pytest.approx(want)
    fee_bps = (-fills["fee"] * 1e4).sum() / notional.sum()
    assert got[("mmbot_edge_after_fees_bps", (("symbol", "BTCUSDT"),))] == pytest.approx(
        want + fee_bps
    )
    maker = notional[fills["liquidity"] == "maker"].sum() / notional.sum()
    assert got[("mmbot_maker_share", ())] == pytest.approx(maker)


def test_readiness_names_each_failing_check() -> None:
    assert Readiness().failing() == [
        "the trading loop has not polled yet", "market data is stale", "venue not connected",
    ]  # fmt: skip
    ok = Readiness(polled_ns=1, market_fresh=True, venue_connected=True, trading_state="active")
    assert ok.failing() == []
    bad = Readiness(1, True, True, lease_held=False, redis_reachable=False, trading_state="halted")
    assert bad.failing() == [
        "leader lease not held", "shared state (Redis) unreachable", "trading state halted",
    ]  # fmt: skip


class ManualClock:
    def __init__(self) -> None:
        self.ns = 1_000 * NS_PER_MS

    def now_ns(self) -> int:
        return self.ns


@pytest.mark.parametrize(
    ("poll_ms", "alive_at_s", "stale_at_s"), [(250, 5.0, 5.1), (4_000, 12.0, 12.1)]
)
def test_the_loop_is_alive_until_it_misses_a_few_polls(
    poll_ms: int, alive_at_s: float, stale_at_s: float
) -> None:
    # the default 5 s; with state.poll_ms 4000 three missed polls, not a flap between two
    clock = ManualClock()
    monitor = RunMonitor(clock, poll_ms=poll_ms)
    monitor.readiness = Readiness(polled_ns=clock.ns)
    start = clock.ns
    clock.ns = start + round(alive_at_s * 1e3) * NS_PER_MS
    assert monitor.health() == (200, {"status": "ok", "loop_age_s": alive_at_s})
    clock.ns = start + round(stale_at_s * 1e3) * NS_PER_MS
    assert monitor.health() == (503, {"status": "stale", "loop_age_s": stale_at_s})


def test_reason_labels_have_few_values() -> None:
    assert reason_label("fenced: not the leader (token 3)") == "fenced"
    assert reason_label("post-only would cross") == "post-only would cross"
    assert reason_label("") == "unknown"


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_server_answers_after_the_run_and_wants_its_token(run: tuple[RunMonitor, Path]) -> None:
    monitor, _ = run
    assert isinstance(monitor.wall, SteppingClock)
    monitor.wall.ns += 10 * 1_000 * NS_PER_MS  # ten seconds after the run's last poll
    server = HealthServer(monitor, 0, "tok").start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(f"{base}/health")[0] == 401
        assert _get(f"{base}/health", "wrong")[0] == 401
        # the loop stopped polling when the run ended: not healthy, not ready
        code, body = _get(f"{base}/health", "tok")
        assert (code, json.loads(body)["status"]) == (503, "stale")
        code, body = _get(f"{base}/ready", "tok")
        assert code == 503
        assert json.loads(body)["failing"][0] == "the trading loop is not polling"
        code, body = _get(f"{base}/metrics", "tok")
        assert code == 200 and b"mmbot_orders_total" in body
        assert _get(f"{base}/nothing", "tok")[0] == 404
    finally:
        server.close()
