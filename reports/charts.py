"""SVG charts built from numbers: no plotting library, no script, no external URL.

Every chart is a plain `<svg>` string with coordinates formatted to 2 decimals,
so the same frame always yields the same bytes and a report embeds it inline.
Long series are downsampled (min/max per bucket, so spikes survive) before
they become paths: a 72 h soak stays a few hundred kB of HTML.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

WIDTH: Final = 720
HEIGHT: Final = 260
LEFT: Final = 64
RIGHT: Final = 16
TOP: Final = 28
BOTTOM: Final = 44
MAX_POINTS: Final = 1000
LIMIT_SHOWN_FROM: Final = 0.25
Y_TICKS: Final = 5
X_TICKS: Final = 5

PALETTE: Final = ("#1f6feb", "#d97706", "#16a34a", "#9333ea")
WARN_COLOR: Final = "#d97706"
FAIL_COLOR: Final = "#dc2626"
POSITIVE: Final = "#16a34a"
NEGATIVE: Final = "#dc2626"


class ChartError(ValueError):
    """Chart input that cannot be drawn (wrong columns, mismatched lengths)."""


@dataclass(frozen=True, slots=True)
class Chart:
    """One rendered chart: a stable key (for anchors), a caption and the SVG markup."""

    key: str
    title: str
    svg: str


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    xs: np.ndarray
    ys: np.ndarray
    color: str = PALETTE[0]


@dataclass(frozen=True, slots=True)
class Level:
    """A horizontal reference line, e.g. a WARN or FAIL bound."""

    label: str
    y: float
    color: str
    dashed: bool = True


def _n(value: float) -> str:
    """Coordinates: fixed 2 decimals, and never '-0.00' (same bytes on every machine)."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def label_number(value: float) -> str:
    """Axis and bar labels: short, fixed rules."""
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return "0" if magnitude == 0 else f"{value:.3f}"


def time_label(ts_ns: float) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%m-%d %H:%M")


def downsample(
    xs: np.ndarray, ys: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points: the min and the max of each bucket, in time order.

    Keeping both extremes of a bucket (rather than every n-th point) keeps the
    drawdown and the inventory spikes that a reader looks for.
    """
    if len(xs) != len(ys):
        raise ChartError(f"x has {len(xs)} points but y has {len(ys)}")
    if len(xs) <= max_points:
        return xs, ys
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, len(xs), buckets + 1).astype(np.int64)
    keep: list[int] = []
    for start, stop in itertools.pairwise(edges):
        if stop <= start:
            continue
        segment = ys[start:stop]
        low = int(start + np.argmin(segment))
        high = int(start + np.argmax(segment))
        keep.extend(sorted({low, high}))
    index = np.asarray(keep, dtype=np.int64)
    return xs[index], ys[index]


def _finite(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.isfinite(xs) & np.isfinite(ys)
    return xs[mask], ys[mask]


def _span(low: float, high: float) -> tuple[float, float]:
    """A non-empty value range with a little headroom."""
    if high == low:
        pad = abs(high) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


class _Frame:
    """Maps data coordinates to the plot area of one chart."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.width = WIDTH - LEFT - RIGHT
        self.height = HEIGHT - TOP - BOTTOM

    def x(self, value: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return LEFT + (value - self.x0) / span * self.width

    def y(self, value: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return TOP + (self.y1 - value) / span * self.height


def _open(key: str, title: str) -> list[str]:
    return [
        # Inline SVG in HTML5 needs no xmlns: the report carries no URL at all.
        f'<svg class="chart" id="chart-{escape(key)}" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="18" class="chart-title">{escape(title)}</text>',
    ]


def _empty(key: str, title: str, why: str) -> Chart:
    parts = _open(key, title)
    parts.append(
        f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle" class="chart-empty">'
        f"{escape(why)}</text>"
    )
    parts.append("</svg>")
    return Chart(key, title, "\n".join(parts))


def _y_axis(frame: _Frame) -> list[str]:
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" class="axis"/>',
    ]
    for i in range(Y_TICKS):
        value = frame.y0 + (frame.y1 - frame.y0) * i / (Y_TICKS - 1)
        y = _n(frame.y(value))
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" class="grid"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" '
            f'class="tick">{escape(label_number(value))}</text>'
        )
    return parts


def _x_axis(frame: _Frame, as_time: bool) -> list[str]:
    base = HEIGHT - BOTTOM
    parts = [f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" class="axis"/>']
    for i in range(X_TICKS):
        value = frame.x0 + (frame.x1 - frame.x0) * i / (X_TICKS - 1)
        text = time_label(value) if as_time else label_number(value)
        parts.append(
            f'<text x="{_n(frame.x(value))}" y="{base + 16}" text-anchor="middle" '
            f'class="tick">{escape(text)}</text>'
        )
    return parts


def _path(frame: _Frame, xs: np.ndarray, ys: np.ndarray) -> str:
    points = [
        f"{_n(frame.x(float(x)))},{_n(frame.y(float(y)))}" for x, y in zip(xs, ys, strict=True)
    ]
    return "M" + " L".join(points)


def _legend(entries: Sequence[tuple[str, str, bool]]) -> list[str]:
    parts: list[str] = []
    x = WIDTH - RIGHT
    for name, color, dashed in reversed(entries):
        width = 18 + 7 * len(name)
        x -= width + 12
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        parts.append(
            f'<line x1="{x}" y1="{HEIGHT - 8}" x2="{x + 14}" y2="{HEIGHT - 8}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 18}" y="{HEIGHT - 4}" class="legend">{escape(name)}</text>')
    return parts


def line_chart(
    key: str,
    title: str,
    lines: Sequence[Line],
    levels: Sequence[Level] = (),
    *,
    x_is_time: bool = True,
    max_points: int = MAX_POINTS,
) -> Chart:
    """Lines over a shared x axis, plus horizontal reference levels."""
    cleaned = []
    for line in lines:
        xs = np.asarray(line.xs, dtype=np.float64)
        xs, ys = _finite(xs, np.asarray(line.ys, dtype=np.float64))
        xs, ys = downsample(xs, ys, max_points)
        cleaned.append((line, xs, ys))
    drawn = [(line, xs, ys) for line, xs, ys in cleaned if len(xs) > 0]
    if not drawn:
        return _empty(key, title, "no data")
    all_x = np.concatenate([xs for _, xs, _ in drawn])
    all_y = np.concatenate([ys for _, _, ys in drawn] + [np.asarray([lv.y for lv in levels])])
    frame = _Frame(
        (float(all_x.min()), float(all_x.max())), _span(float(all_y.min()), float(all_y.max()))
    )
    parts = _open(key, title) + _y_axis(frame) + _x_axis(frame, x_is_time)
    for level in levels:
        y = _n(frame.y(level.y))
        dash = ' stroke-dasharray="6 4"' if level.dashed else ""
        parts.append(
            f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="{level.color}" '
            f'stroke-width="1.5"{dash}/>'
        )
    for line, xs, ys in drawn:
        parts.append(
            f'<path d="{_path(frame, xs, ys)}" fill="none" stroke="{line.color}" '
            f'stroke-width="1.5"/>'
        )
    legend = [(line.name, line.color, False) for line, _, _ in drawn]
    legend += [(level.label, level.color, level.dashed) for level in levels]
    parts += _legend(legend)
    parts.append("</svg>")
    return Chart(key, title, "\n".join(parts))


def bar_chart(key: str, title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> Chart:
    """Signed vertical bars with their values written on them."""
    finite = [(name, value) for name, value in bars if math.isfinite(value)]
    if not finite:
        return _empty(key, title, "no data")
    values = [value for _, value in finite]
    frame = _Frame((0.0, float(len(finite))), _span(min(0.0, *values), max(0.0, *values)))
    parts = _open(key, title) + _y_axis(frame)
    zero = _n(frame.y(0.0))
    parts.append(f'<line x1="{LEFT}" y1="{zero}" x2="{WIDTH - RIGHT}" y2="{zero}" class="axis"/>')
    slot = frame.width / len(finite)
    for i, (name, value) in enumerate(finite):
        x = LEFT + slot * i + slot * 0.2
        top, bottom = sorted((frame.y(value), frame.y(0.0)))
        color = POSITIVE if value >= 0 else NEGATIVE
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(top)}" width="{_n(slot * 0.6)}" '
            f'height="{_n(max(bottom - top, 0.5))}" fill="{color}"/>'
        )
        centre = _n(x + slot * 0.3)
        parts.append(
            f'<text x="{centre}" y="{_n(top - 4)}" text-anchor="middle" class="bar-value">'
            f"{escape(label_number(value) + unit)}</text>"
        )
        parts.append(
            f'<text x="{centre}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return Chart(key, title, "\n".join(parts))


def histogram_chart(
    key: str,
    title: str,
    samples: Sequence[tuple[str, np.ndarray]],
    bins: int = 20,
) -> Chart:
    """Overlaid step histograms (share of samples per bin) on common bin edges."""
    arrays = [(name, np.asarray(v, dtype=np.float64)) for name, v in samples]
    arrays = [(name, v[np.isfinite(v)]) for name, v in arrays]
    present = [(name, v) for name, v in arrays if len(v) > 0]
    if not present:
        return _empty(key, title, "no data")
    low = min(float(v.min()) for _, v in present)
    high = max(float(v.max()) for _, v in present)
    low, high = (low, high) if high > low else _span(low, high)
    edges = np.linspace(low, high, bins + 1)
    shares = [(name, np.histogram(v, bins=edges)[0] / len(v)) for name, v in present]
    top = max(float(share.max()) for _, share in shares)
    frame = _Frame((low, high), (0.0, top * 1.1 or 1.0))
    parts = _open(key, title) + _y_axis(frame) + _x_axis(frame, as_time=False)
    for i, (_, share) in enumerate(shares):
        color = PALETTE[i % len(PALETTE)]
        points = [f"{_n(frame.x(low))},{_n(frame.y(0.0))}"]
        for left, right, value in zip(edges[:-1], edges[1:], share, strict=True):
            y = _n(frame.y(float(value)))
            points.append(f"{_n(frame.x(float(left)))},{y}")
            points.append(f"{_n(frame.x(float(right)))},{y}")
        points.append(f"{_n(frame.x(high))},{_n(frame.y(0.0))}")
        parts.append(
            f'<path d="M{" L".join(points)}" fill="{color}" fill-opacity="0.15" '
            f'stroke="{color}" stroke-width="1.5"/>'
        )
    parts += _legend(
        [(name, PALETTE[i % len(PALETTE)], False) for i, (name, _) in enumerate(shares)]
    )
    parts.append("</svg>")
    return Chart(key, title, "\n".join(parts))


# --- the report's charts, from the frames gates/kpi.py produces ---------------


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ChartError(f"{what}: frame lacks columns {missing}; has {list(frame.columns)}")


def _time_axis(frame: pd.DataFrame) -> np.ndarray:
    """Nanoseconds since the epoch from a `ts` column or a datetime index."""
    if "ts" in frame.columns:
        column = frame["ts"]
    elif "ts_ns" in frame.columns:
        column = frame["ts_ns"]
    else:
        column = frame.index.to_series()
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = pd.to_datetime(column, utc=True)
        return np.asarray(stamps.astype("int64"), dtype=np.float64)
    return np.asarray(column, dtype=np.float64)


def equity_chart(equity: pd.DataFrame) -> Chart:
    """Mark-to-market PnL over time (equity_curve: ts, pnl_usd, ...)."""
    _require(equity, ["pnl_usd"], "equity chart")
    line = Line("pnl_usd", _time_axis(equity), np.asarray(equity["pnl_usd"], dtype=np.float64))
    return line_chart("equity", "PnL (USD, mark-to-market)", [line])


def inventory_chart(equity: pd.DataFrame, max_inventory_usd: float | None = None) -> Chart:
    """Position notional over time, with the inventory limit either side when known."""
    _require(equity, ["inventory_usd"], "inventory chart")
    values = np.asarray(equity["inventory_usd"], dtype=np.float64)
    line = Line("inventory_usd", _time_axis(equity), values, PALETTE[1])
    levels: list[Level] = []
    peak = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    # the limit lines only when inventory came near them: a 20 k limit drawn next to a
    # 600 USD inventory flattens the curve the reader came to see
    if max_inventory_usd and peak >= LIMIT_SHOWN_FROM * max_inventory_usd:
        levels = [
            Level("+max", max_inventory_usd, FAIL_COLOR),
            Level("-max", -max_inventory_usd, FAIL_COLOR),
        ]
    return line_chart("inventory", "Inventory (USD notional)", [line], levels)


EDGE_PARTS: Final = ("gross_bps", "fee_bps", "adverse_bps", "net_bps")


def _finite_average(values: pd.Series, weights: np.ndarray | None) -> float:
    """Weighted mean over the defined values: fills near the end of a run have no
    mid at t+H, so their adverse and net parts are NaN and are left out."""
    data = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(data)
    if not keep.any():
        return math.nan
    w = None if weights is None else weights[keep]
    if w is not None and not w.sum() > 0:
        w = None
    return float(np.average(data[keep], weights=w))


def edge_chart(edges: pd.DataFrame) -> Chart:
    """Net edge decomposition: gross + fee − adverse = net, notional-weighted when possible.

    Adverse selection is drawn as a cost (negative bar) so the bars add up to net.
    """
    _require(edges, EDGE_PARTS, "edge chart")
    if len(edges) == 0:
        return _empty("edges", "Net edge decomposition (bps)", "no fills")
    weights = np.asarray(edges["notional"], dtype=np.float64) if "notional" in edges else None
    if weights is not None and not np.nansum(weights) > 0:
        weights = None
    means = {part: _finite_average(edges[part], weights) for part in EDGE_PARTS}
    bars = [
        ("gross", means["gross_bps"]),
        ("fee/rebate", means["fee_bps"]),
        ("adverse", -means["adverse_bps"]),
        ("net", means["net_bps"]),
    ]
    return bar_chart("edges", "Net edge decomposition (bps per fill)", bars, unit="")


def bound_levels(warn: float | None, fail: float | None) -> list[Level]:
    levels = []
    if warn is not None and math.isfinite(warn):
        levels.append(Level("WARN", float(warn), WARN_COLOR))
    if fail is not None and math.isfinite(fail):
        levels.append(Level("FAIL", float(fail), FAIL_COLOR))
    return levels


def interval_chart(
    intervals: pd.DataFrame, metric: str, warn: float | None = None, fail: float | None = None
) -> Chart:
    """One KPI per interval against its WARN and FAIL bounds."""
    _require(intervals, [metric], f"interval chart of {metric}")
    line = Line(metric, _time_axis(intervals), np.asarray(intervals[metric], dtype=np.float64))
    return line_chart(
        f"interval-{metric}", f"{metric} per interval", [line], bound_levels(warn, fail)
    )


def distribution_chart(
    metric: str,
    canary: pd.DataFrame,
    baseline: pd.DataFrame,
    bins: int = 20,
    labels: tuple[str, str] = ("canary", "baseline"),
) -> Chart:
    """Canary vs baseline per-interval distributions of one metric."""
    _require(canary, [metric], f"{labels[0]} distribution of {metric}")
    _require(baseline, [metric], f"{labels[1]} distribution of {metric}")
    return histogram_chart(
        f"dist-{metric}",
        f"{metric}: {labels[0]} vs {labels[1]} (share of intervals)",
        [
            (labels[0], np.asarray(canary[metric], dtype=np.float64)),
            (labels[1], np.asarray(baseline[metric], dtype=np.float64)),
        ],
        bins,
    )


def comparison_chart(
    metric: str,
    first: pd.DataFrame,
    second: pd.DataFrame,
    labels: tuple[str, str],
) -> Chart:
    """One metric per interval from two runs over the same window, as two lines."""
    _require(first, [metric], f"{labels[0]} series of {metric}")
    _require(second, [metric], f"{labels[1]} series of {metric}")
    lines = [
        Line(labels[0], _time_axis(first), np.asarray(first[metric], dtype=np.float64)),
        Line(
            labels[1], _time_axis(second), np.asarray(second[metric], dtype=np.float64), PALETTE[1]
        ),
    ]
    return line_chart(
        f"compare-{metric}", f"{metric} per interval: {labels[0]} vs {labels[1]}", lines
    )
