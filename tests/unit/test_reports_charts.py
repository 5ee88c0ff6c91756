"""Plotly charts: the series each figure carries, worked by hand; decimation; bytes."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot.config import Settings
from bot.runtime.clock import FrozenClock, parse_utc
from gates.kpi import fill_edges, load_journal, on_book_orders
from gates.stage import kpi_stage
from reports import charts
from reports.charts import Chart, ChartError, Frames
from reports.render import render_report, stage_context
from tests.unit import gates_helpers as gh
from tests.unit import reports_helpers as h

MS = 1_000_000


def _decode(node: Any) -> Any:
    """Figure JSON with plotly's typed arrays ({dtype, bdata}) as numpy arrays."""
    if isinstance(node, dict):
        if set(node) >= {"dtype", "bdata"}:
            return np.frombuffer(base64.b64decode(node["bdata"]), dtype=node["dtype"])
        return {k: _decode(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode(v) for v in node]
    return node


def figure(chart: Chart) -> dict[str, Any]:
    return _decode(json.loads(chart.figure))  # type: ignore[no-any-return]


def trace(chart: Chart, name: str) -> dict[str, Any]:
    found = [t for t in figure(chart)["data"] if t.get("name") == name]
    assert len(found) == 1, [t.get("name") for t in figure(chart)["data"]]
    return found[0]


def names(chart: Chart) -> list[str]:
    return [t.get("name") for t in figure(chart)["data"]]


def figures_in(html: str) -> dict[str, dict[str, Any]]:
    """Every figure a rendered report embeds, by chart key."""
    found = re.findall(r'<script type="application/json" id="figure-([^"]+)">(.*?)</script>', html)
    return {key: _decode(json.loads(text)) for key, text in found}


# --- decimation -------------------------------------------------------------------


def test_decimate_keeps_extremes_gaps_and_time_order() -> None:
    n = 100_000
    ts = h.T0 + np.arange(n, dtype=np.int64) * 100 * MS  # 100 ms samples, 10 000 s
    ys = np.zeros(n)
    ys[12_345], ys[67_890] = 99.0, -42.0
    ys[50_000:50_500] = np.nan  # 50 s without a value: wider than a bucket
    dts, dys, step = charts.decimate(ts, ys, max_points=1000)
    assert step == 20_000 * MS  # 10 000 s / 500 buckets = 20 s, a round bucket
    assert len(dts) <= 1000 + 3
    assert 99.0 in dys and -42.0 in dys
    assert np.isnan(dys).sum() >= 1  # the gap survives as a gap
    assert np.all(np.diff(dts) > 0)


def test_short_series_are_not_decimated() -> None:
    ts, ys = np.arange(10, dtype=np.int64), np.arange(10.0)
    out_ts, out_ys, step = charts.decimate(ts, ys, max_points=10)
    assert step == 0 and out_ts.tolist() == ts.tolist() and out_ys.tolist() == ys.tolist()
    with pytest.raises(ChartError, match="3 points but values have 2"):
        charts.decimate(np.arange(3), np.arange(2.0))


def test_buckets_are_round_durations() -> None:
    assert charts.bucket_ns(3_600e9, 4000) == 2_000 * MS  # 1 h over 2000 buckets: 1.8 s -> 2 s
    assert charts.bucket_ns(86_400e9, 4000) == 60_000 * MS  # 24 h: 43.2 s -> 1 min
    assert [charts.duration_text(x) for x in (100 * MS, 1e9, 90e9, 300e9, 7_200e9)] == [
        "100 ms",
        "1 s",
        "90 s",
        "5 min",
        "2 h",
    ]


# --- PnL and inventory ------------------------------------------------------------------


def test_pnl_carries_its_running_peak_so_the_drawdown_is_the_shaded_gap() -> None:
    frame = pd.DataFrame(
        {"ts_ns": h.T0 + np.arange(5) * h.S, "pnl_usd": [-1.0, 2.0, 0.5, 3.0, 1.0]}
    )
    chart = charts.equity_chart(frame)
    pnl, peak = trace(chart, "PnL"), trace(chart, "running peak")
    # the run starts flat: 0 is the first peak, so the first point is 1 below it
    assert peak["y"].tolist() == [0.0, 2.0, 2.0, 3.0, 3.0]
    assert pnl["y"].tolist() == [-1.0, 2.0, 0.5, 3.0, 1.0]
    assert pnl["fill"] == "tonexty" and names(chart).index("running peak") < names(chart).index(
        "PnL"
    )
    assert "max drawdown 2.00 USD" in chart.title and "samples every 1 s" in chart.title


def test_a_day_of_pnl_stays_small_and_says_its_bucket() -> None:
    n = 24 * 3600 * 10  # 24 h of 100 ms samples
    pnl = np.cumsum(np.where(np.arange(n) % 7 == 0, -1.0, 0.5))
    pnl[400_000] = -5_000.0  # one spike a reader must see
    frame = pd.DataFrame({"ts_ns": h.T0 + np.arange(n) * 100 * MS, "pnl_usd": pnl})
    chart = charts.equity_chart(frame)
    assert len(trace(chart, "PnL")["y"]) <= charts.MAX_POINTS + 2
    assert -5_000.0 in trace(chart, "PnL")["y"]
    assert "min/max per 1 min bucket" in chart.title
    assert len(chart.figure) < 250_000


def test_long_inventory_is_a_min_max_envelope_per_bucket() -> None:
    n = 24 * 3600  # a day at 1 s
    rng = np.random.default_rng(3)
    inventory = np.cumsum(rng.normal(0.0, 10.0, n))
    frame = pd.DataFrame({"ts_ns": h.T0 + np.arange(n) * h.S, "inventory_usd": inventory})
    chart = charts.inventory_chart(frame)
    low, high = trace(chart, "bucket min")["y"], trace(chart, "bucket max")["y"]
    # the day in 1 min buckets (T0 is on a minute), each bucket's own extremes
    by_minute = inventory.reshape(-1, 60)
    assert low.tolist() == by_minute.min(axis=1).tolist()
    assert high.tolist() == by_minute.max(axis=1).tolist()
    assert trace(chart, "bucket max")["fill"] == "tonexty"
    assert "min/max envelope per 1 min bucket" in chart.title


def test_short_inventory_is_its_line_and_the_limits_show_only_when_near() -> None:
    frame = h.equity_frame()
    far = charts.inventory_chart(frame, 20_000.0)
    assert names(far) == ["inventory"]
    near = charts.inventory_chart(frame, 1_000.0)
    assert trace(near, "+max inventory")["y"].tolist() == [1_000.0, 1_000.0]
    assert trace(near, "-max inventory")["y"].tolist() == [-1_000.0, -1_000.0]


# --- the edge waterfall ------------------------------------------------------------------


def test_edge_waterfall_is_notional_weighted_and_adds_up() -> None:
    chart = charts.edge_chart(h.edges_frame())
    # weights 600,600,600,1200 (sum 3000): gross (900+900-300+2400)/3000 = 1.30
    # fee (300+300-3300+600)/3000 = -0.70; adverse (300+900+0+1200)/3000 = 0.80,
    # whose contribution is -0.80; net (900+300-3600+1800)/3000 = -0.20
    bars = trace(chart, "edge")
    assert bars["x"] == ["gross (spread captured)", "fee / rebate", "adverse selection", "net"]
    assert bars["measure"] == ["relative", "relative", "relative", "total"]
    assert np.allclose(bars["y"], [1.30, -0.70, -0.80, -0.20])
    assert bars["text"] == ["+1.30", "-0.70", "-0.80", "-0.20"]


def test_fills_without_a_later_mid_are_a_named_bar_not_a_silent_gap() -> None:
    edges = h.edges_frame()
    edges.loc[edges.index[-1], ["adverse_bps", "net_bps"]] = np.nan
    parts, net = charts.edge_contributions(edges)
    # adverse (300+900+0)/1800 = 0.667 -> -0.667; net (900+300-3600)/1800 = -1.333;
    # gross and fee keep all four fills, so -1.333 - (1.30 - 0.70 - 0.667) is named
    assert [name for name, _ in parts][-1] == "1 fill with no later mid"
    assert net == pytest.approx(-4 / 3)
    assert sum(v for _, v in parts) == pytest.approx(net)
    assert parts[2][1] == pytest.approx(-2 / 3)


# --- price, quotes, fills, freezes --------------------------------------------------------


def test_best_on_book_is_a_step_series_with_gaps() -> None:
    on_book = pd.DataFrame(
        {
            "symbol": ["X"] * 4,
            "side": [1.0, 1.0, -1.0, 1.0],
            "price": [100.0, 101.0, 102.0, 99.0],
            "start_ns": [0, 5, 0, 10],
            "end_ns": [10, 8, 20, 15],
        }
    )
    ts, px = charts.best_on_book(on_book, 1)
    # 100 from 0, 101 better from 5 to 8, 100 again to 10, where 99 takes over at once
    assert ts.tolist() == [0, 5, 8, 10, 15]
    assert px[:4].tolist() == [100.0, 101.0, 100.0, 99.0] and np.isnan(px[4])
    ask_ts, ask = charts.best_on_book(on_book, -1)
    assert ask_ts.tolist() == [0, 20] and ask[0] == 102.0 and np.isnan(ask[1])


def test_freeze_spans_end_at_unfreeze_or_at_the_run_end() -> None:
    risk = pd.DataFrame(
        {
            "ts_ns": [10, 20, 30, 40],
            "symbol": ["*", "*", "X", "*"],
            "kind": ["freeze", "unfreeze", "block", "freeze"],
        }
    )
    assert charts.freeze_spans(risk, 100) == [(10, 20), (40, 100)]
    assert charts.freeze_spans(risk[risk["kind"] != "freeze"], 100) == []


def hand_frames() -> Frames:
    """The gates' hand journal: 4 fills, freezes at 1.0-1.1 s and 3.1-5.2 s, a block."""
    from gates.kpi import Journal

    journal = Journal.of(gh.memory_tables(), gh.MANIFEST)
    return Frames(
        edges=fill_edges(journal),
        book=journal.table("book"),
        on_book=on_book_orders(journal),
        risk=journal.table("risk"),
    )


def test_price_chart_carries_mid_quotes_every_fill_and_the_freezes() -> None:
    frames = hand_frames()
    assert frames.book is not None
    chart = charts.price_chart(gh.SYMBOL, frames.book, frames.on_book, frames.edges, frames.risk)
    assert names(chart) == [
        "mid",
        "our bid (on book)",
        "our ask (on book)",
        "buy fills",
        "sell fills",
        "frozen",
    ]
    buys, sells = trace(chart, "buy fills"), trace(chart, "sell fills")
    assert buys["y"].tolist() == [99.9, 99.9] and sells["y"].tolist() == [100.3, 100.1]
    assert buys["marker"]["symbol"] != sells["marker"]["symbol"]
    assert buys["marker"]["color"] != sells["marker"]["color"]
    # fills at 0 and 2000 ms: x in epoch milliseconds on a date axis
    assert (buys["x"] - h.T0 / MS).tolist() == [0.0, 2000.0]
    layout = figure(chart)["layout"]
    assert layout["xaxis"]["type"] == "date" and "UTC" in layout["xaxis"]["title"]["text"]
    spans = [(s["x0"], s["x1"]) for s in layout["shapes"]]
    assert spans == [
        ("2024-08-09 00:00:01.000000", "2024-08-09 00:00:01.100000"),
        ("2024-08-09 00:00:03.100000", "2024-08-09 00:00:05.200000"),
    ]
    assert "4 fills" in chart.title and "samples every 500 ms" in chart.title


def test_fills_beyond_the_cap_are_thinned_and_the_title_says_so() -> None:
    frames = hand_frames()
    assert frames.book is not None and frames.edges is not None
    chart = charts.price_chart(gh.SYMBOL, frames.book, None, frames.edges, max_fills=2)
    shown = len(trace(chart, "buy fills")["x"]) + len(trace(chart, "sell fills")["x"])
    assert shown == 2 and "2 of 4 fills shown" in chart.title


def test_risk_events_one_row_per_kind_with_their_reasons() -> None:
    chart = charts.risk_chart(hand_frames().risk)  # type: ignore[arg-type]
    assert names(chart) == ["block", "freeze", "unfreeze"]
    assert trace(chart, "freeze")["text"] == ["edge: why", "edge: why"]
    assert figure(chart)["layout"]["yaxis"]["type"] == "category"


# --- interval series and comparisons ----------------------------------------------------


def test_interval_chart_states_its_interval_and_draws_the_bounds() -> None:
    chart = charts.interval_chart(h.interval_frame(), "net_bps", warn=2.7, fail=2.0)
    assert chart.title == "net_bps per interval (interval 1 min)"
    assert trace(chart, "WARN bound 2.7")["y"].tolist() == [2.7, 2.7]
    assert trace(chart, "FAIL bound 2")["y"].tolist() == [2.0, 2.0]
    series = trace(chart, "net_bps")
    assert len(series["x"]) == 60 and series["x"][1] - series["x"][0] == 60_000.0
    one = h.interval_frame().iloc[:1]
    assert "interval 5 min" in charts.interval_chart(one, "net_bps", step_ns=300 * h.S).title


def test_distribution_shares_worked_by_hand() -> None:
    a = pd.DataFrame({"m": [0.0, 0.0, 1.0, 1.0]}, index=h.minutes(4))
    b = pd.DataFrame({"m": [0.0, 1.0, 1.0, 1.0]}, index=h.minutes(4))
    chart = charts.distribution_chart("m", a, b, bins=2)
    assert trace(chart, "canary")["y"].tolist() == [0.5, 0.5]
    assert trace(chart, "baseline")["y"].tolist() == [0.25, 0.75]
    assert "interval 1 min" in chart.title


def test_empty_inputs_say_so_and_missing_columns_are_typed_errors() -> None:
    empty = pd.DataFrame({c: [] for c in charts.EDGE_PARTS})
    note = figure(charts.edge_chart(empty))["layout"]["annotations"][0]["text"]
    assert note == "no fills"
    nan = pd.DataFrame({"ts_ns": [h.T0, h.T0 + h.S], "pnl_usd": [np.nan, np.nan]})
    assert figure(charts.equity_chart(nan))["layout"]["annotations"][0]["text"] == "no data"
    with pytest.raises(ChartError, match="inventory_usd"):
        charts.inventory_chart(pd.DataFrame({"pnl_usd": [1.0]}))
    with pytest.raises(ChartError, match="neither a ts_ns column nor a datetime index"):
        charts.equity_chart(pd.DataFrame({"pnl_usd": [1.0]}))


def test_every_time_chart_has_a_utc_date_axis() -> None:
    frames = Frames(h.equity_frame(), h.edges_frame(), h.interval_frame(), h.interval_frame())
    made = charts.stage_charts("accuracy", frames, Settings())
    timed = [c for c in made if c.key != "edges"]
    assert timed and all(
        figure(c)["layout"]["xaxis"]["type"] == "date"
        and figure(c)["layout"]["xaxis"]["title"]["text"] == "time (UTC)"
        for c in timed
    )


def test_same_frames_same_bytes() -> None:
    def make() -> list[str]:
        ctx = stage_context(
            "canary",
            Settings(),
            frames=Frames(
                h.equity_frame(), h.edges_frame(), h.interval_frame(), h.interval_frame(shift=0.4)
            ),
        )
        return [c.figure for c in ctx.charts]

    assert make() == make()


# --- in the report ------------------------------------------------------------------------


def test_a_report_embeds_plotly_once_and_every_chart_from_the_journal(tmp_path: Path) -> None:
    journal = gh.write_journal(tmp_path / "hand")
    settings = Settings()
    report = render_report(
        "kpi-gate",
        journal,
        settings,
        FrozenClock(parse_utc(h.FROZEN)),
        verdict=kpi_stage(load_journal(journal), settings),
    )
    html = report.html
    assert html.count(charts.plotly_js()) == 1
    assert html.count("<script") == 1 + len(figures_in(html)) + 1  # bundle, figures, bootstrap
    shown = figures_in(html)
    assert list(shown)[:5] == ["price-BTCUSDT", "equity", "inventory", "edges", "risk"]
    price = shown["price-BTCUSDT"]["data"]
    markers = [t for t in price if t["name"] in ("buy fills", "sell fills")]
    assert sum(len(t["x"]) for t in markers) == len(load_journal(journal).table("fills")) == 4
    for key in shown:
        assert f'<div class="plot" id="chart-{key}"></div>' in html
    assert "Charts (" in report.markdown and "<script" not in report.markdown


def test_a_day_of_freezes_is_one_shape_each() -> None:
    # 500 freezes a day happen (the edge guard's cool-down); each is one shaded rect
    starts = h.T0 + np.arange(500) * 120 * h.S
    risk = pd.DataFrame(
        {
            "ts_ns": np.ravel(np.column_stack([starts, starts + 60 * h.S])),
            "symbol": "*",
            "kind": ["freeze", "unfreeze"] * 500,
        }
    )
    frame = pd.DataFrame({"ts_ns": starts, "pnl_usd": np.zeros(500)})
    shapes = figure(charts.equity_chart(frame, risk))["layout"]["shapes"]
    assert len(shapes) == 500 and shapes[0]["x0"] == "2024-08-09 00:00:00.000000"
    assert shapes[-1]["x1"] == "2024-08-09 16:39:00.000000"
