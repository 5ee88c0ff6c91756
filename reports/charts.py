"""The report's charts: Plotly figures built from the journal frames, drawn by plotly.js.

Each chart is a figure serialised once to JSON (plotly.py's encoder: float arrays as
base64 typed arrays, '<', '>' and '/' escaped, so it sits inside a `<script>` safely).
The HTML report embeds plotly.js once (inline, no CDN) and draws every figure with it,
so the file works offline. The same frames give the same JSON bytes: figures carry no
random ids, and the div ids derive from the chart key.

Time axes are Plotly date axes in UTC (plotly.js shows epoch milliseconds as UTC).
Long series are decimated for size by min/max per time bucket, so spikes survive, and
the chart says so with the bucket length; fills are never decimated below
MAX_FILL_MARKERS.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from bot.config import Settings
from gates.accuracy import COMPARED as ACCURACY_COMPARED

MAX_POINTS: Final = 4000  # per line; above it, min/max per time bucket
MAX_FILL_MARKERS: Final = 20_000  # per chart; above it every k-th fill, and the title says so
MAX_RISK_MARKERS: Final = 2_000  # per kind of risk event
LIMIT_SHOWN_FROM: Final = 0.25
NS_PER_MS: Final = 1_000_000
HEIGHT: Final = 340

BLUE: Final = "#1f6feb"
ORANGE: Final = "#d97706"
GREY: Final = "#57606a"
BUY: Final = "#16a34a"
SELL: Final = "#dc2626"
WARN_COLOR: Final = "#bf8700"
FAIL_COLOR: Final = "#cf222e"
FREEZE_FILL: Final = "rgba(87, 96, 106, 0.16)"  # grey: apart from the red drawdown
DRAWDOWN_FILL: Final = "rgba(207, 34, 46, 0.25)"
BAND_FILL: Final = "rgba(217, 119, 6, 0.25)"

# Per-interval columns of gates.kpi.interval_series and the gate bound drawn on them.
INTERVAL_BOUNDS: Final[Mapping[str, str]] = {
    "net_bps": "net_bps",
    "maker_share": "maker_share",
    "order_latency_ms": "order_latency_p95_ms",
    "inventory_ratio": "inventory_ratio_p95",
}
UNITS: Final[Mapping[str, str]] = {
    "net_bps": "bps",
    "maker_share": "share of notional",
    "fills": "fills",
    "order_latency_ms": "ms, send to ack",
    "inventory_ratio": "ratio to limit",
    "pnl_usd": "USD",
    "turnover_usd": "USD",
    "error_rate": "share rejected",
}
FREEZE_ENDS: Final = ("unfreeze", "resume", "unhalt")
GLOBAL_SYMBOLS: Final = ("*", "")


class ChartError(ValueError):
    """Chart input that cannot be drawn (wrong columns, mismatched lengths)."""


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: a stable key (div id `chart-<key>`), a caption that states its
    interval, and the Plotly figure as JSON text."""

    key: str
    title: str
    figure: str


@dataclass(frozen=True, slots=True)
class Frames:
    """The frames a report draws; any may be absent.

    equity, edges and intervals are gates/kpi.py's; book and risk are journal tables;
    on_book is `gates.kpi.on_book_orders` (what the venue held, not what was wanted);
    interval_ns is the length of one row of `intervals` (inferred from its index when 0).
    """

    equity: pd.DataFrame | None = None
    edges: pd.DataFrame | None = None
    intervals: pd.DataFrame | None = None
    baseline_intervals: pd.DataFrame | None = None
    book: pd.DataFrame | None = None
    on_book: pd.DataFrame | None = None
    risk: pd.DataFrame | None = None
    interval_ns: int = 0


@functools.cache
def plotly_js() -> str:
    """plotly.js as shipped with plotly.py (minified), for one inline `<script>`."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


# --- formatting --------------------------------------------------------------------


def duration_text(ns: float) -> str:
    """'100 ms', '1 s', '90 s', '5 min', '2 h': the interval a chart states."""
    if not math.isfinite(ns) or ns <= 0:
        return "n/a"
    for unit, size in (("h", 3_600e9), ("min", 60e9), ("s", 1e9), ("ms", 1e6)):
        if ns >= size and (ns % size == 0 or unit == "ms"):
            return f"{ns / size:g} {unit}"
    return f"{ns / 1e9:g} s"


def number_text(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.2f}" if abs(value) < 10_000 else f"{value:,.0f}"


def _utc(ts_ns: float) -> str:
    """A date string Plotly reads on a date axis (shapes take no epoch numbers)."""
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _ms(ts_ns: np.ndarray) -> np.ndarray:
    """Epoch milliseconds: plotly.js shows them on a date axis as UTC."""
    return np.asarray(ts_ns, dtype=np.float64) / NS_PER_MS


# --- decimation ----------------------------------------------------------------------


_NICE_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000,
                   30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
                   7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000)  # fmt: skip


def bucket_ns(span_ns: float, max_points: int) -> int:
    """The shortest round bucket that keeps a span within max_points (2 per bucket)."""
    raw = span_ns / max(1, max_points // 2)
    for ms in _NICE_MS:
        if ms * NS_PER_MS >= raw:
            return ms * NS_PER_MS
    return math.ceil(raw / 86_400e9) * 86_400 * 1_000 * NS_PER_MS


def decimate(
    ts_ns: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray, int]:
    """At most about max_points points of a series in time order: per time bucket its
    minimum and its maximum, in time order; a bucket with no value keeps one NaN so a gap
    stays a gap.

    Returns (ts_ns, values, bucket length in ns; 0 when nothing was dropped). Keeping
    both extremes (rather than every n-th point) keeps the drawdown and the spikes."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if len(ts_ns) != len(values):
        raise ChartError(f"time has {len(ts_ns)} points but values have {len(values)}")
    if len(ts_ns) <= max_points:
        return ts_ns, values, 0
    step = bucket_ns(float(ts_ns.max() - ts_ns.min()), max_points)
    # epoch-aligned buckets: a 1 min bucket starts on the minute, as the interval series
    frame = pd.DataFrame({"bucket": ts_ns // step, "value": values})
    known = frame[frame["value"].notna()].groupby("bucket")["value"]
    empty = frame.groupby("bucket")["value"].count() == 0
    first_of_empty = frame.reset_index().groupby("bucket")["index"].first()[empty]
    keep = np.unique(
        np.concatenate(
            [
                known.idxmin().to_numpy(dtype=np.int64),
                known.idxmax().to_numpy(dtype=np.int64),
                first_of_empty.to_numpy(dtype=np.int64),
            ]
        )
    )
    return ts_ns[keep], values[keep], step


def _cap(frame: pd.DataFrame, cap: int) -> pd.DataFrame:
    """Every k-th row when there are more than cap (a stated cap, not a silent one)."""
    if len(frame) <= cap:
        return frame
    return frame.iloc[:: math.ceil(len(frame) / cap)]


def _sampling_text(ts_ns: np.ndarray, step: int) -> str:
    if step:
        return f"min/max per {duration_text(step)} bucket"
    diffs = np.diff(np.unique(ts_ns))
    if diffs.size == 0:
        return "one sample"
    return f"samples every {duration_text(float(np.median(diffs)))}"


# --- figure plumbing -----------------------------------------------------------------


def _time_axis_layout() -> dict[str, Any]:
    return {
        "type": "date",
        "title": {"text": "time (UTC)"},
        "hoverformat": "%Y-%m-%d %H:%M:%S.%L UTC",
        "automargin": True,
        "showgrid": True,
        "gridcolor": "#eaeef2",
        "linecolor": GREY,
        "ticks": "outside",
    }


def _layout(y_title: str, *, time_axis: bool = True) -> dict[str, Any]:
    """The common layout. No title inside the figure: the report's caption above it
    wraps where a Plotly title would be clipped."""
    x_axis = (
        _time_axis_layout()
        if time_axis
        else {"automargin": True, "linecolor": GREY, "ticks": "outside"}
    )
    return {
        "template": "none",
        "height": HEIGHT,
        "margin": {"l": 70, "r": 20, "t": 40, "b": 50},
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1f2328"},
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        "hovermode": "closest",
        "xaxis": x_axis,
        "yaxis": {
            "title": {"text": y_title},
            "automargin": True,
            "gridcolor": "#eaeef2",
            "zerolinecolor": "#d0d7de",
            "linecolor": GREY,
            "ticks": "outside",
        },
    }


def _chart(key: str, title: str, figure: go.Figure) -> Chart:
    # validate=False: go.Figure validated every property when it was built
    return Chart(key, title, pio.to_json(figure, validate=False, engine="json"))


def _empty(key: str, title: str, why: str, *, time_axis: bool = True) -> Chart:
    layout = _layout("", time_axis=time_axis)
    layout["annotations"] = [
        {"text": why, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False}
    ]
    return _chart(key, title, go.Figure(layout=layout))


def _line(name: str, ts_ns: np.ndarray, values: np.ndarray, color: str, **style: Any) -> go.Scatter:
    line = {"color": color, "width": 1.5, **style.pop("line", {})}
    return go.Scatter(
        name=name,
        x=_ms(ts_ns),
        y=np.asarray(values, dtype=np.float64),
        mode=style.pop("mode", "lines"),
        line=line,
        **style,
    )


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ChartError(f"{what}: frame lacks columns {missing}; has {list(frame.columns)}")


def _time_ns(frame: pd.DataFrame) -> np.ndarray:
    """Nanoseconds since the epoch from a `ts_ns` column or a datetime index."""
    if "ts_ns" in frame.columns:
        return np.asarray(frame["ts_ns"], dtype=np.int64)
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        return np.asarray(index.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)
    raise ChartError(f"frame has neither a ts_ns column nor a datetime index: {list(frame)}")


# --- freezes and blocks --------------------------------------------------------------


def _risk_rows(risk: pd.DataFrame | None, symbol: str | None) -> pd.DataFrame:
    if risk is None or risk.empty:
        return pd.DataFrame(columns=["ts_ns", "symbol", "kind", "check", "reason"])
    _require(risk, ["ts_ns", "symbol", "kind"], "risk events")
    rows = risk if symbol is None else risk[risk["symbol"].isin([symbol, *GLOBAL_SYMBOLS])]
    return rows.sort_values("ts_ns", kind="stable")


def freeze_spans(
    risk: pd.DataFrame | None, end_ns: int, symbol: str | None = None
) -> list[tuple[int, int]]:
    """[start, end) of each freeze (to its unfreeze or resume, else to end_ns)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for ts, kind in _risk_rows(risk, symbol)[["ts_ns", "kind"]].itertuples(index=False):
        if kind in ("freeze", "kill") and start is None:
            start = int(ts)
        elif kind in FREEZE_ENDS and start is not None:
            spans.append((start, int(ts)))
            start = None
    if start is not None:
        spans.append((start, max(end_ns, start)))
    return spans


def _shade_freezes(figure: go.Figure, spans: Sequence[tuple[int, int]]) -> None:
    # one layout update: plotly.py re-validates every shape on each add_vrect, which is
    # quadratic (a day with 500 freezes took minutes)
    shape = {"type": "rect", "xref": "x", "yref": "paper", "y0": 0, "y1": 1,
             "fillcolor": FREEZE_FILL, "line": {"width": 0}, "layer": "below"}  # fmt: skip
    figure.update_layout(
        shapes=[{**shape, "x0": _utc(start), "x1": _utc(end)} for start, end in spans]
    )
    if spans:
        # a legend entry for the shading (shapes have none of their own)
        figure.add_trace(
            go.Scatter(
                name="frozen",
                x=[None],
                y=[None],
                mode="markers",
                marker={"symbol": "square", "size": 12, "color": FREEZE_FILL},
            )
        )


def risk_chart(risk: pd.DataFrame, span_ns: tuple[int, int] | None = None) -> Chart:
    """Each risk event (block, freeze, unfreeze, reduce_only, resume, kill) on the time
    axis of the whole run (span_ns), one row per kind; the hover names check and reason."""
    rows = _risk_rows(risk, None)
    title = "Risk events: blocks, freezes and their reasons (each event)"
    if rows.empty:
        return _empty("risk", title, "no risk event")
    figure = go.Figure(layout=_layout("event"))
    shown, total = 0, len(rows)
    for kind, group in rows.groupby("kind", sort=True):
        kept = _cap(group, MAX_RISK_MARKERS)
        shown += len(kept)
        text = (kept["check"].astype(str) + ": " + kept["reason"].astype(str)).tolist()
        figure.add_trace(
            go.Scatter(
                name=str(kind),
                x=_ms(kept["ts_ns"].to_numpy()),
                y=[str(kind)] * len(kept),
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 14, "line": {"width": 2}},
                text=text,
                hovertemplate="%{x}<br>%{text}<extra>%{y}</extra>",
            )
        )
    figure.update_layout(yaxis={"type": "category", "title": {"text": "kind"}})
    if span_ns is not None:
        figure.update_layout(xaxis={"range": [_utc(span_ns[0]), _utc(span_ns[1])]})
    if shown < total:
        title = f"{title[:-1]}; {shown:,} of {total:,} shown, at most {MAX_RISK_MARKERS:,} a kind)"
    return _chart("risk", title, figure)


# --- price, quotes, fills --------------------------------------------------------------


def best_on_book(on_book: pd.DataFrame, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Our best price of one side on the venue's book as a step series: at each time an
    order of that side arrived or left, the best one working (NaN when none: a gap)."""
    mine = on_book[on_book["side"] == side]
    if mine.empty:
        return np.empty(0, dtype=np.int64), np.empty(0)
    starts = mine["start_ns"].to_numpy(dtype=np.int64)
    ends = mine["end_ns"].to_numpy(dtype=np.int64)
    prices = mine["price"].to_numpy(dtype=np.float64)
    # ends before starts at the same time: an order replaced in one instant hands over
    stamps = np.concatenate([ends, starts])
    deltas = np.concatenate([-np.ones(len(ends)), np.ones(len(starts))])
    order = np.lexsort((deltas, stamps))
    working: dict[float, int] = {}
    out_ts: list[int] = []
    out_px: list[float] = []
    pick = max if side > 0 else min
    both = np.concatenate([prices, prices])
    for i in order:
        price = float(both[i])
        count = working.get(price, 0) + int(deltas[i])
        if count:
            working[price] = count
        else:
            working.pop(price, None)
        best = pick(working) if working else math.nan
        if out_ts and out_ts[-1] == stamps[i]:
            out_px[-1] = best
        else:
            out_ts.append(int(stamps[i]))
            out_px.append(best)
    return np.asarray(out_ts, dtype=np.int64), np.asarray(out_px, dtype=np.float64)


def _fill_trace(fills: pd.DataFrame, side: int) -> go.Scatter:
    buy = side > 0
    mine = fills[fills["side"] == side]
    return go.Scatter(
        name="buy fills" if buy else "sell fills",
        x=_ms(mine["ts_ns"].to_numpy()),
        y=mine["price"].to_numpy(dtype=np.float64),
        mode="markers",
        marker={
            "symbol": "triangle-up" if buy else "triangle-down",
            "size": 9,
            "color": BUY if buy else SELL,
            "line": {"width": 0.5, "color": "#1f2328"},
        },
        customdata=mine["qty"].to_numpy(dtype=np.float64),
        hovertemplate=("buy" if buy else "sell") + " %{customdata} @ %{y}<br>%{x}<extra></extra>",
    )


def price_chart(
    symbol: str,
    book: pd.DataFrame,
    on_book: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
    risk: pd.DataFrame | None = None,
    *,
    max_points: int = MAX_POINTS,
    max_fills: int = MAX_FILL_MARKERS,
) -> Chart:
    """One symbol's mid, our best bid and ask on the venue's book (step lines, gaps when
    none was working) and every fill (up to MAX_FILL_MARKERS), freezes shaded."""
    _require(book, ["ts_ns", "symbol", "mid"], "price chart")
    rows = book[(book["symbol"].astype(str) == symbol) & book["mid"].notna()]
    rows = rows.sort_values("ts_ns", kind="stable")
    key = f"price-{symbol}"
    if rows.empty:
        return _empty(key, f"{symbol}: mid price, our quotes and fills", "no book sample")
    mid_ts, mid, step = decimate(rows["ts_ns"].to_numpy(), rows["mid"].to_numpy(), max_points)
    traces = [_line("mid", mid_ts, mid, GREY, line={"width": 1})]
    if on_book is not None:
        _require(on_book, ["symbol", "side", "price", "start_ns", "end_ns"], "price chart")
        ours = on_book[on_book["symbol"].astype(str) == symbol]
        for side, name, color in ((1, "our bid (on book)", BUY), (-1, "our ask (on book)", SELL)):
            ts, px = best_on_book(ours, side)
            ts, px, _ = decimate(ts, px, max_points)
            traces.append(_line(name, ts, px, color, line={"shape": "hv", "width": 1.2}))
    shown, total = 0, 0
    if fills is not None:
        _require(fills, ["ts_ns", "symbol", "side", "price", "qty"], "price chart fills")
        mine = fills[fills["symbol"].astype(str) == symbol].sort_values("ts_ns", kind="stable")
        kept = _cap(mine, max_fills)
        shown, total = len(kept), len(mine)
        traces += [_fill_trace(kept, 1), _fill_trace(kept, -1)]
    fills_text = f"{total:,} fills" if shown == total else f"{shown:,} of {total:,} fills shown"
    title = (
        f"{symbol}: mid price, our quotes on the book and fills "
        f"(mid {_sampling_text(rows['ts_ns'].to_numpy(), step)}; {fills_text})"
    )
    figure = go.Figure(data=traces, layout=_layout("price (USD)"))
    end = int(rows["ts_ns"].max())
    _shade_freezes(figure, freeze_spans(risk, end, symbol))
    return _chart(key, title, figure)


# --- PnL, inventory ------------------------------------------------------------------


def equity_chart(
    equity: pd.DataFrame, risk: pd.DataFrame | None = None, *, max_points: int = MAX_POINTS
) -> Chart:
    """Mark-to-market PnL with its running peak; the drawdown (between them) is shaded.

    The run starts flat, so 0 is the first peak (as gates.kpi's max_drawdown_usd)."""
    _require(equity, ["pnl_usd"], "equity chart")
    ts_all = _time_ns(equity)
    pnl_all = np.asarray(equity["pnl_usd"], dtype=np.float64)
    known = np.isfinite(pnl_all)
    ts_all, pnl_all = ts_all[known], pnl_all[known]
    if len(ts_all) == 0:
        return _empty("equity", "PnL (USD, mark-to-market)", "no data")
    peak_all = np.maximum.accumulate(np.maximum(pnl_all, 0.0))
    drawdown = float(np.max(peak_all - pnl_all))
    ts, pnl, step = decimate(ts_all, pnl_all, max_points)
    peak = peak_all[np.searchsorted(ts_all, ts, side="right") - 1]
    title = (
        f"PnL (USD, mark-to-market), drawdown shaded; max drawdown {number_text(drawdown)} USD "
        f"({_sampling_text(ts_all, step)})"
    )
    traces = [
        _line("running peak", ts, peak, GREY, line={"width": 1, "dash": "dot"}),
        _line("PnL", ts, pnl, BLUE, fill="tonexty", fillcolor=DRAWDOWN_FILL),
    ]
    figure = go.Figure(data=traces, layout=_layout("PnL (USD)"))
    _shade_freezes(figure, freeze_spans(risk, int(ts_all.max())))
    return _chart("equity", title, figure)


def _envelope(
    ts_ns: np.ndarray, values: np.ndarray, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket of `step`: start time, min, max and last value."""
    frame = pd.DataFrame({"bucket": (ts_ns // step) * step, "value": values})
    per = frame.groupby("bucket")["value"].agg(["min", "max", "last"])
    low, high, last = (per[c].to_numpy(np.float64) for c in ("min", "max", "last"))
    return per.index.to_numpy(np.int64), low, high, last


def inventory_chart(
    equity: pd.DataFrame,
    max_inventory_usd: float | None = None,
    risk: pd.DataFrame | None = None,
    *,
    max_points: int = MAX_POINTS,
) -> Chart:
    """Position notional over time; on long runs the min/max band of each bucket and its
    last value (a line through 864 k samples of a day would be a solid band). The limit
    lines only when inventory came near them: a 20 k limit drawn next to a 600 USD
    inventory flattens the curve the reader came to see."""
    _require(equity, ["inventory_usd"], "inventory chart")
    ts_all = _time_ns(equity)
    values = np.asarray(equity["inventory_usd"], dtype=np.float64)
    known = np.isfinite(values)
    ts_all, values = ts_all[known], values[known]
    if len(ts_all) == 0:
        return _empty("inventory", "Inventory (USD notional)", "no data")
    if len(ts_all) <= max_points:
        traces = [_line("inventory", ts_all, values, ORANGE, line={"shape": "hv"})]
        sampling = _sampling_text(ts_all, 0)
    else:
        step = bucket_ns(float(ts_all.max() - ts_all.min()), max_points)
        starts, low, high, last = _envelope(ts_all, values, step)
        traces = [
            _line("bucket min", starts, low, ORANGE, line={"width": 0.5}),
            _line("bucket max", starts, high, ORANGE, line={"width": 0.5},
                  fill="tonexty", fillcolor=BAND_FILL),
            _line("end of bucket", starts, last, ORANGE, line={"shape": "hv"}),
        ]  # fmt: skip
        sampling = f"min/max envelope per {duration_text(step)} bucket"
    peak = float(np.max(np.abs(values)))
    if max_inventory_usd and peak >= LIMIT_SHOWN_FROM * max_inventory_usd:
        edge = np.asarray([ts_all.min(), ts_all.max()])
        for sign, name in ((1, "+max inventory"), (-1, "-max inventory")):
            level = np.full(2, sign * float(max_inventory_usd))
            traces.append(_line(name, edge, level, FAIL_COLOR, line={"dash": "dash"}))
    title = f"Inventory (USD notional, signed; {sampling})"
    figure = go.Figure(data=traces, layout=_layout("inventory (USD)"))
    _shade_freezes(figure, freeze_spans(risk, int(ts_all.max())))
    return _chart("inventory", title, figure)


# --- edge decomposition --------------------------------------------------------------

EDGE_PARTS: Final = ("gross_bps", "fee_bps", "adverse_bps", "net_bps")


def _weighted(values: pd.Series, weights: np.ndarray | None) -> float:
    """Notional-weighted mean over the defined values, as gates.kpi's KPIs: fills near
    the end of a run have no mid at t+H, so their adverse and net parts are NaN."""
    data = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(data)
    if not keep.any():
        return math.nan
    w = None if weights is None else weights[keep]
    if w is not None and not w.sum() > 0:
        w = None
    return float(np.average(data[keep], weights=w))


def edge_contributions(edges: pd.DataFrame) -> tuple[list[tuple[str, float]], float]:
    """Signed contributions to net and net itself, in bps: gross, fee/rebate, adverse
    selection (= -adverse_bps: the KPI is a cost when > 0), and, when some fills have no
    mid after the horizon (their adverse and net are NaN, so the KPIs average fewer
    fills), the difference that makes the parts add up to the KPI net."""
    _require(edges, EDGE_PARTS, "edge decomposition")
    weights = np.asarray(edges["notional"], dtype=np.float64) if "notional" in edges else None
    if weights is not None and not np.nansum(weights) > 0:
        weights = None
    means = {part: _weighted(edges[part], weights) for part in EDGE_PARTS}
    parts = [
        ("gross (spread captured)", means["gross_bps"]),
        ("fee / rebate", means["fee_bps"]),
        ("adverse selection", -means["adverse_bps"]),
    ]
    unmarked = int((edges["gross_bps"].notna() & edges["net_bps"].isna()).sum())
    if unmarked and math.isfinite(means["net_bps"]):
        rest = means["net_bps"] - sum(value for _, value in parts)
        noun = "fill" if unmarked == 1 else "fills"
        parts.append((f"{unmarked:,} {noun} with no later mid", rest))
    return parts, means["net_bps"]


def edge_chart(edges: pd.DataFrame, horizon_ms: int = 1_000) -> Chart:
    """A waterfall: gross + fee/rebate + adverse selection (negative when a cost) = net,
    notional-weighted bps per fill, the markout at horizon_ms."""
    title = f"Net edge decomposition (bps per fill, notional-weighted, {horizon_ms:,} ms markout"
    if len(edges) == 0:
        _require(edges, EDGE_PARTS, "edge decomposition")
        return _empty("edges", title + ")", "no fills", time_axis=False)
    title = f"{title}; {len(edges):,} fills)"
    parts, net = edge_contributions(edges)
    values = [value for _, value in parts] + [net]
    figure = go.Figure(
        data=[
            go.Waterfall(
                name="edge",
                x=[name for name, _ in parts] + ["net"],
                y=[v if math.isfinite(v) else 0.0 for v in values],
                measure=["relative"] * len(parts) + ["total"],
                text=[f"{v:+.2f}" if math.isfinite(v) else "n/a" for v in values],
                textposition="outside",
                increasing={"marker": {"color": BUY}},
                decreasing={"marker": {"color": SELL}},
                totals={"marker": {"color": BLUE}},
                connector={"line": {"color": GREY, "width": 1}},
                cliponaxis=False,
            )
        ],
        layout=_layout("bps per fill", time_axis=False),
    )
    figure.update_layout(showlegend=False)
    return _chart("edges", title, figure)


# --- per-interval series ---------------------------------------------------------------


def interval_step_ns(intervals: pd.DataFrame, given_ns: int = 0) -> int:
    """The length of one interval: the one given, else the spacing of the index."""
    if given_ns:
        return given_ns
    stamps = np.unique(_time_ns(intervals))
    return int(np.min(np.diff(stamps))) if stamps.size > 1 else 0


def _bound_lines(ts_ns: np.ndarray, warn: float | None, fail: float | None) -> list[go.Scatter]:
    edge = np.asarray([ts_ns.min(), ts_ns.max()])
    out = []
    for name, value, color in (("WARN", warn, WARN_COLOR), ("FAIL", fail, FAIL_COLOR)):
        if value is not None and math.isfinite(value):
            label = f"{name} bound {value:g}"
            out.append(_line(label, edge, np.full(2, float(value)), color, line={"dash": "dash"}))
    return out


def interval_chart(
    intervals: pd.DataFrame,
    metric: str,
    warn: float | None = None,
    fail: float | None = None,
    *,
    step_ns: int = 0,
    max_points: int = MAX_POINTS,
) -> Chart:
    """One KPI per interval against its WARN and FAIL bounds."""
    _require(intervals, [metric], f"interval chart of {metric}")
    step = interval_step_ns(intervals, step_ns)
    ts_all = _time_ns(intervals)
    title = f"{metric} per interval (interval {duration_text(step)})"
    key = f"interval-{metric}"
    values_all = np.asarray(intervals[metric], dtype=np.float64)
    if len(ts_all) == 0 or not np.isfinite(values_all).any():
        return _empty(key, title, "no data")
    ts, values, bucket = decimate(ts_all, values_all, max_points)
    if bucket:
        title = f"{title[:-1]}; min/max per {duration_text(bucket)} bucket)"
    mode = "lines+markers" if len(ts) <= 200 else "lines"
    traces = [_line(metric, ts, values, BLUE, mode=mode, marker={"size": 4})]
    traces += _bound_lines(ts_all, warn, fail)
    figure = go.Figure(data=traces, layout=_layout(UNITS.get(metric, metric)))
    return _chart(key, title, figure)


def comparison_chart(
    metric: str,
    first: pd.DataFrame,
    second: pd.DataFrame,
    labels: tuple[str, str],
    *,
    step_ns: int = 0,
) -> Chart:
    """One metric per interval from two runs over the same window, as two lines."""
    _require(first, [metric], f"{labels[0]} series of {metric}")
    _require(second, [metric], f"{labels[1]} series of {metric}")
    step = interval_step_ns(first, step_ns)
    title = f"{metric} per interval: {labels[0]} vs {labels[1]} (interval {duration_text(step)})"
    traces = []
    for label, frame, color in ((labels[0], first, BLUE), (labels[1], second, ORANGE)):
        ts, values, _ = decimate(_time_ns(frame), np.asarray(frame[metric], dtype=np.float64))
        traces.append(_line(label, ts, values, color))
    figure = go.Figure(data=traces, layout=_layout(UNITS.get(metric, metric)))
    return _chart(f"compare-{metric}", title, figure)


def distribution_chart(
    metric: str,
    canary: pd.DataFrame,
    baseline: pd.DataFrame,
    bins: int = 20,
    labels: tuple[str, str] = ("canary", "baseline"),
    *,
    step_ns: int = 0,
) -> Chart:
    """Canary vs baseline: share of intervals per bin of one metric, on common bins."""
    _require(canary, [metric], f"{labels[0]} distribution of {metric}")
    _require(baseline, [metric], f"{labels[1]} distribution of {metric}")
    step = interval_step_ns(canary, step_ns)
    title = (
        f"{metric}: {labels[0]} vs {labels[1]} (share of intervals, interval {duration_text(step)})"
    )
    samples = [
        (label, values[np.isfinite(values)])
        for label, values in (
            (labels[0], np.asarray(canary[metric], dtype=np.float64)),
            (labels[1], np.asarray(baseline[metric], dtype=np.float64)),
        )
    ]
    present = [(label, v) for label, v in samples if len(v)]
    key = f"dist-{metric}"
    if not present:
        return _empty(key, title, "no data", time_axis=False)
    low = min(float(v.min()) for _, v in present)
    high = max(float(v.max()) for _, v in present)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    traces = [
        go.Bar(
            name=label,
            x=centres,
            y=np.histogram(v, bins=edges)[0] / len(v),
            width=width,
            marker={"color": color},
            opacity=0.55,
        )
        for (label, v), color in zip(present, (BLUE, ORANGE), strict=False)
    ]
    layout = _layout("share of intervals", time_axis=False)
    layout["barmode"] = "overlay"
    layout["xaxis"]["title"] = {"text": f"{metric} ({UNITS.get(metric, '')})"}
    return _chart(key, title, go.Figure(data=traces, layout=layout))


# --- what each stage shows -------------------------------------------------------------


def _interval_charts(intervals: pd.DataFrame, settings: Settings, step_ns: int) -> list[Chart]:
    out = []
    for column, kpi in INTERVAL_BOUNDS.items():
        if column in intervals.columns:
            bound = settings.gates.kpi.get(kpi)
            warn, fail = (bound.warn, bound.fail) if bound else (None, None)
            out.append(interval_chart(intervals, column, warn, fail, step_ns=step_ns))
    return out


def _comparison_charts(stage: str, frames: Frames, settings: Settings) -> list[Chart]:
    """Accuracy: shadow and sim over time; canary: distributions of its judged metrics."""
    intervals, baseline = frames.intervals, frames.baseline_intervals
    assert intervals is not None and baseline is not None  # the caller checked
    step = frames.interval_ns
    if stage == "accuracy":
        metrics = [m for m in ACCURACY_COMPARED if m in intervals and m in baseline]
        return [
            comparison_chart(m, intervals, baseline, ("shadow", "sim"), step_ns=step)
            for m in metrics
        ]
    metrics = [m for m in settings.canary.metrics if m in intervals and m in baseline]
    return [distribution_chart(m, intervals, baseline, step_ns=step) for m in metrics]


def _market_charts(frames: Frames) -> list[Chart]:
    if frames.book is None:
        return []
    symbols = sorted(str(s) for s in frames.book["symbol"].unique())
    return [
        price_chart(symbol, frames.book, frames.on_book, frames.edges, frames.risk)
        for symbol in symbols
    ]


def _run_span(frames: Frames) -> tuple[int, int] | None:
    """First and last time of the run's book samples (else its equity curve)."""
    for frame in (frames.book, frames.equity):
        if frame is not None and not frame.empty:
            stamps = _time_ns(frame)
            return int(stamps.min()), int(stamps.max())
    return None


def stage_charts(stage: str, frames: Frames, settings: Settings) -> tuple[Chart, ...]:
    """The charts a stage shows, from whichever frames are present."""
    out = _market_charts(frames)
    if frames.equity is not None:
        out.append(equity_chart(frames.equity, frames.risk))
        if "inventory_usd" in frames.equity.columns:
            out.append(inventory_chart(frames.equity, settings.risk.max_inventory_usd, frames.risk))
    if frames.edges is not None:
        out.append(edge_chart(frames.edges, settings.gates.horizon_ms))
    if frames.risk is not None and not frames.risk.empty:
        out.append(risk_chart(frames.risk, _run_span(frames)))
    if frames.intervals is not None:
        out += _interval_charts(frames.intervals, settings, frames.interval_ns)
        if frames.baseline_intervals is not None:
            out += _comparison_charts(stage, frames, settings)
    return tuple(out)
