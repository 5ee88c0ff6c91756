"""The gates on a real journal: a paper run over the real Binance BTCUSDT data.

The engine's own run summary is computed by different code (bot/portfolio.py and
the engine's counters); where both define the same figure they must agree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bot.config import AccuracyConfig, Settings
from bot.runtime.run import RunMode, RunResult, RunSpec, execute
from gates.accuracy import accuracy_gate, sim_to_real
from gates.kpi import KPI_NAMES, Journal, compute_kpis, interval_series, load_journal
from gates.quality import FillRules, check_fills, check_market_data, check_orders
from gates.stage import kpi_stage
from gates.verdict import Status

pytestmark = pytest.mark.slow


def run_on(data: Path, root: Path, mode: RunMode) -> tuple[Journal, Any]:
    out = root / mode
    result = execute(RunSpec(mode=mode, out_dir=out, data=data, progress=False))
    return load_journal(out), result.summary


@pytest.fixture(scope="module")
def run(real_paper_run: RunResult) -> tuple[Journal, Any]:
    return load_journal(real_paper_run.out_dir), real_paper_run.summary


@pytest.fixture(scope="module")
def shadow(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Journal, Any]:
    return run_on(binance_dir, tmp_path_factory.mktemp("real"), "shadow")


def unfrozen_share(journal: Journal) -> float:
    """Share of book samples outside every [freeze, unfreeze) span, walked row by row
    (the engine's risk rows here are all global '*' freezes lifted by a cool-down)."""
    spans, start = [], None
    for ts, kind in journal.table("risk")[["ts_ns", "kind"]].itertuples(index=False):
        if kind == "freeze" and start is None:
            start = ts
        elif kind in ("unfreeze", "resume") and start is not None:
            spans.append((start, ts))
            start = None
    if start is not None:
        spans.append((start, math.inf))
    stamps = journal.table("book")["ts_ns"].tolist()
    free = [t for t in stamps if not any(a <= t < b for a, b in spans)]
    return len(free) / len(stamps)


def test_kpis_agree_with_the_engine_summary(run: tuple[Journal, Any]) -> None:
    journal, summary = run
    kpis = compute_kpis(journal).total
    assert summary["fills"] > 10  # the run traded: the comparison means something
    assert kpis["fills"] == summary["fills"]
    assert kpis["turnover_usd"] == pytest.approx(summary["turnover_usd"])
    assert kpis["maker_share"] == pytest.approx(summary["maker_share"])
    assert kpis["pnl_usd"] == pytest.approx(summary["pnl_usd"], abs=1e-6)
    places, cancels = summary["places"], summary["cancels"]
    assert kpis["cancel_ratio"] == pytest.approx(cancels / (places + cancels))
    assert kpis["freezes"] == summary["freezes"]
    for name in KPI_NAMES:  # every KPI is defined on a run that traded
        assert math.isfinite(kpis[name]), name
    assert 0 < kpis["quote_uptime"] <= 1
    assert kpis["order_latency_p95_ms"] > 0


def test_interval_series_covers_the_run(run: tuple[Journal, Any]) -> None:
    journal, summary = run
    series = interval_series(journal, "1m")
    assert series["fills"].sum() == summary["fills"]
    # the last interval's mark is the last book sample, which is what pnl_usd marks at
    assert series["pnl_usd"].iloc[-1] == pytest.approx(compute_kpis(journal).total["pnl_usd"])
    assert len(series) == 6  # 23:54 .. 23:59


def test_quality_suites_pass_on_the_real_journal(run: tuple[Journal, Any]) -> None:
    journal, _ = run
    assert check_market_data(journal.table("book")).status is Status.PASS
    rules = FillRules.from_manifest(journal.manifest)
    assert check_fills(journal.table("fills"), rules).status is Status.PASS
    assert check_orders(journal.table("orders")).status is Status.PASS


def test_gates_judge_the_real_journal(run: tuple[Journal, Any]) -> None:
    journal, _ = run
    verdict = kpi_stage(journal, Settings())
    # the base quoting loses money after its rebate on these 6 minutes (net < 0, the
    # FAIL bound of tier mm1): the gate must say so by name
    assert verdict.summary["kpis"]["net_bps"] < 0
    assert verdict.status is Status.FAIL
    assert any(r.startswith("net_bps: ") for r in verdict.reasons)

    same = sim_to_real(journal, journal, AccuracyConfig(interval="1m", min_windows=5))
    assert same.status is Status.PASS, same.reasons
    json.dumps(same.to_dict())  # a verdict is JSON-ready


@pytest.mark.parametrize("mode", ["paper", "shadow"])
def test_quote_uptime_leaves_out_frozen_time(
    mode: str, run: tuple[Journal, Any], shadow: tuple[Journal, Any]
) -> None:
    journal, summary = run if mode == "paper" else shadow
    assert summary["freezes"] >= 1  # the default edge guard freezes on this data
    assert set(journal.table("risk")["symbol"]) == {"*"}
    share = unfrozen_share(journal)
    assert share < 0.9  # the freezes cover a real part of the run
    assert 0 < compute_kpis(journal).total["quote_uptime"] <= share


def test_shadow_vs_paper_is_not_failed_by_latency(
    run: tuple[Journal, Any], shadow: tuple[Journal, Any]
) -> None:
    cfg = AccuracyConfig(interval="10s", min_windows=10)  # 35 intervals in 5.7 min
    reference = interval_series(shadow[0], cfg.interval)
    paper = interval_series(run[0], cfg.interval)
    acked = reference["order_latency_ms"].dropna()
    assert len(acked) >= cfg.min_windows and (acked == 0).all()  # shadow acks at once
    assert (paper["order_latency_ms"].dropna() > 0).all()
    verdict = accuracy_gate(reference, paper, cfg)
    latency = next(c for c in verdict.checks if c.name == "order_latency_ms")
    assert (latency.status, latency.value) == (Status.NA, None)
    assert "not comparable" in latency.reason
    assert not any(r.startswith("order_latency_ms") for r in verdict.reasons)
    others = [c.status for c in verdict.checks if c.name != "order_latency_ms"]
    assert verdict.status is Status.worst(others)
