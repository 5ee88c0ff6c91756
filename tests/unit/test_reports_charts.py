"""SVG charts: coordinates worked by hand, downsampling, determinism, no URL."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from reports import charts
from reports.charts import HEIGHT, LEFT, RIGHT, TOP, WIDTH, ChartError, Level, Line
from tests.unit import reports_helpers as h

PLOT_W = WIDTH - LEFT - RIGHT  # 640
PLOT_H = HEIGHT - TOP - charts.BOTTOM  # 188


def _path_points(svg: str) -> list[tuple[float, float]]:
    match = re.search(r'<path d="M([^"]+)" fill="none"', svg)
    assert match, svg
    return [tuple(map(float, p.split(","))) for p in match.group(1).split(" L")]  # type: ignore[misc]


def test_line_coordinates_worked_by_hand() -> None:
    # y range 0..10 padded 5% -> -0.5..10.5; x 0..2 -> LEFT..LEFT+640
    chart = charts.line_chart(
        "k",
        "t",
        [Line("y", np.array([0.0, 1.0, 2.0]), np.array([0.0, 10.0, 5.0]))],
        x_is_time=False,
    )
    points = _path_points(chart.svg)

    def y_of(v: float) -> float:
        return TOP + (10.5 - v) / 11.0 * PLOT_H

    assert points == [
        (LEFT, round(y_of(0.0), 2)),
        (LEFT + PLOT_W / 2, round(y_of(10.0), 2)),
        (LEFT + PLOT_W, round(y_of(5.0), 2)),
    ]


def test_levels_widen_the_range_and_are_drawn() -> None:
    chart = charts.line_chart(
        "k",
        "t",
        [Line("y", np.array([0.0, 1.0]), np.array([1.0, 2.0]))],
        [Level("FAIL", 4.0, charts.FAIL_COLOR)],
        x_is_time=False,
    )
    # range 1..4 padded: -> 0.85..4.15; the FAIL line at 4 sits near the top
    y = TOP + (4.15 - 4.0) / 3.3 * PLOT_H
    assert f'y1="{y:.2f}"' in chart.svg and charts.FAIL_COLOR in chart.svg
    assert ">FAIL</text>" in chart.svg


def test_downsample_keeps_extremes_and_bounds_points() -> None:
    n = 100_000
    xs = np.arange(n, dtype=float)
    ys = np.zeros(n)
    ys[12_345] = 99.0
    ys[67_890] = -42.0
    dx, dy = charts.downsample(xs, ys, max_points=1000)
    assert len(dx) <= 1000
    assert 99.0 in dy and -42.0 in dy
    assert np.all(np.diff(dx) > 0)  # still in time order


def test_long_series_chart_stays_small() -> None:
    n = 72 * 3600  # a 72 h soak sampled every second
    frame = pd.DataFrame({"ts_ns": h.T0 + np.arange(n) * h.S, "pnl_usd": np.cumsum(np.ones(n))})
    chart = charts.equity_chart(frame)
    assert len(_path_points(chart.svg)) <= charts.MAX_POINTS
    assert len(chart.svg) < 40_000


def test_edge_bars_are_notional_weighted_and_add_up() -> None:
    chart = charts.edge_chart(h.edges_frame())
    # weights 600,600,600,1200 (sum 3000): gross (900+900-300+2400)/3000 = 1.30
    # fee (300+300-3300+600)/3000 = -0.70; adverse (300+900+0+1200)/3000 = 0.80 drawn as -0.80
    # net (900+300-3600+1800)/3000 = -0.20 = 1.30 - 0.70 - 0.80
    values = re.findall(r'class="bar-value">([^<]+)<', chart.svg)
    assert values == ["1.30", "-0.700", "-0.800", "-0.200"]
    assert chart.svg.count("<rect") == 4


def test_histogram_shares_worked_by_hand() -> None:
    chart = charts.histogram_chart(
        "d",
        "t",
        [("a", np.array([0.0, 0.0, 1.0, 1.0])), ("b", np.array([0.0, 1.0, 1.0, 1.0]))],
        bins=2,
    )
    # two bins over 0..1; a: 0.5/0.5, b: 0.25/0.75; y top = 0.75*1.1 = 0.825
    y_half = TOP + (0.825 - 0.5) / 0.825 * PLOT_H
    y_quarter = TOP + (0.825 - 0.25) / 0.825 * PLOT_H
    assert f",{y_half:.2f}" in chart.svg and f",{y_quarter:.2f}" in chart.svg
    assert ">a</text>" in chart.svg and ">b</text>" in chart.svg


def test_empty_and_nan_series_say_no_data() -> None:
    chart = charts.line_chart("k", "t", [Line("y", np.array([1.0, 2.0]), np.array([np.nan] * 2))])
    assert "no data" in chart.svg and "<path" not in chart.svg
    empty = pd.DataFrame({c: [] for c in charts.EDGE_PARTS})
    assert "no fills" in charts.edge_chart(empty).svg


def test_missing_column_is_a_typed_error_naming_it() -> None:
    with pytest.raises(ChartError, match="inventory_usd"):
        charts.inventory_chart(pd.DataFrame({"pnl_usd": [1.0]}))


def test_interval_chart_uses_the_datetime_index_and_draws_bounds() -> None:
    chart = charts.interval_chart(h.interval_frame(), "net_bps", warn=2.7, fail=2.0)
    assert "08-09 00:00" in chart.svg
    assert charts.WARN_COLOR in chart.svg and charts.FAIL_COLOR in chart.svg


def test_inventory_limits_only_when_inventory_comes_near() -> None:
    frame = h.equity_frame()
    assert ">+max<" not in charts.inventory_chart(frame, 20_000.0).svg
    assert ">+max<" in charts.inventory_chart(frame, 1_000.0).svg


def test_same_input_same_bytes_and_no_url() -> None:
    a = charts.distribution_chart("net_bps", h.interval_frame(), h.interval_frame(shift=0.4))
    b = charts.distribution_chart("net_bps", h.interval_frame(), h.interval_frame(shift=0.4))
    assert a.svg == b.svg
    assert "http" not in a.svg and "-0.00" not in a.svg


def test_every_chart_is_well_formed_xml() -> None:
    import xml.etree.ElementTree as ET

    made = [
        charts.equity_chart(h.equity_frame()),
        charts.inventory_chart(h.equity_frame(), 1_000.0),
        charts.edge_chart(h.edges_frame()),
        charts.interval_chart(h.interval_frame(), "maker_share", 0.9, 0.85),
        charts.distribution_chart("fills", h.interval_frame(), h.interval_frame(shift=1.0)),
        charts.comparison_chart("net_bps", h.interval_frame(), h.interval_frame(), ("a", "b")),
        charts.bar_chart("e", "empty <&>", []),
    ]
    for chart in made:
        root = ET.fromstring(chart.svg)
        assert root.tag == "svg" and root.get("id") == f"chart-{chart.key}"


def test_edge_bars_leave_out_fills_with_no_mid_after_the_horizon() -> None:
    edges = h.edges_frame()
    edges.loc[edges.index[-1], ["adverse_bps", "net_bps"]] = np.nan
    chart = charts.edge_chart(edges)
    # the last fill (weight 1200) drops out of adverse and net only:
    # adverse (300+900+0)/1800 = 0.667 drawn as -0.667; net (900+300-3600)/1800 = -1.33
    values = re.findall(r'class="bar-value">([^<]+)<', chart.svg)
    assert values == ["1.30", "-0.700", "-0.667", "-1.33"]
