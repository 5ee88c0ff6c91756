"""Numbers as a trading desk reads them: each KPI with its unit and what it measures.

A count prints as an integer with thousands separators (fills 17,320, never 1.732e+04
or 64.00), money with separators, and cents below 100,000 USD (pnl -14.85, turnover
2,764,000), bps with two decimals, milliseconds with one, ratios with three. Totals
over the run say that they are cumulative. The sign convention is the KPIs' (DESIGN
§6): fee_bps > 0 is a rebate earned, adverse_bps > 0 is a cost; where the edge is
shown as a sum, the adverse part is the signed contribution "adverse selection" =
-adverse_bps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Measure:
    """A KPI's unit (bps, USD, ms, ratio, count) and, in words, what it measures."""

    unit: str
    what: str
    label: str


KPI_MEASURES: Final[Mapping[str, Measure]] = {
    "gross_bps": Measure("bps", "spread captured per fill, notional-weighted", "gross edge"),
    "fee_bps": Measure("bps", "fee per fill, a rebate is positive", "fee"),
    "adverse_bps": Measure(
        "bps", "mid move against the fill after the horizon; > 0 is a cost", "adverse selection"
    ),
    "net_bps": Measure("bps", "gross + fee - adverse, per fill", "net edge"),
    "adverse_p95_bps": Measure("bps", "adverse_bps, p95 over fills", "adverse selection p95"),
    "maker_share": Measure("ratio", "maker notional / all notional", "maker share"),
    "fills": Measure("count", "cumulative over the run", "fills"),
    "turnover_usd": Measure("USD", "notional traded, cumulative over the run", "turnover"),
    "pnl_usd": Measure("USD", "cumulative, marked to market at the end", "PnL"),
    "max_drawdown_usd": Measure(
        "USD", "largest fall of cumulative PnL from its peak", "max drawdown"
    ),
    "inventory_ratio_p95": Measure(
        "ratio", "|position notional| / inventory limit, p95 over time", "inventory p95"
    ),
    "order_latency_p95_ms": Measure("ms", "send -> ack, p95 over orders", "order latency p95"),
    "cancel_ratio": Measure("ratio", "cancels / (placed + cancels)", "cancel ratio"),
    "quote_uptime": Measure("ratio", "share of time both quotes were on the book", "quote uptime"),
    "freezes": Measure("count", "cumulative over the run", "freezes"),
    "adverse_5s_bps": Measure("bps", "adverse_bps at a 5 s horizon", "adverse selection 5 s"),
    "net_5s_bps": Measure("bps", "net_bps at a 5 s horizon", "net edge 5 s"),
}
# the fee check's value: the largest per-fill disagreement with the policy's fee tier
CHECK_MEASURES: Final[Mapping[str, Measure]] = {
    **KPI_MEASURES,
    "fees": Measure("bps", "largest per-fill fee disagreement with the tier", "fee error"),
}


def measure(name: str) -> Measure | None:
    return CHECK_MEASURES.get(name)


def unit_of(name: str) -> str:
    found = CHECK_MEASURES.get(name)
    return found.unit if found else ""


def fmt_value(value: Any) -> str:
    """Numbers with fixed rules so the same value always prints the same way."""
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return _fmt_float(value)
    return str(value)


def _fmt_float(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    text = f"{value:.4f}"
    # 0.8800 -> 0.88 but 0.1234 stays: two decimals at least, four at most
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


_BY_UNIT: Final = {
    "count": lambda v: f"{round(v):,}",
    # cents matter on a PnL of -14.85, not on a turnover of 2,764,000
    "USD": lambda v: f"{v:,.0f}" if abs(v) >= 100_000 else f"{v:,.2f}",
    "bps": lambda v: f"{v:,.2f}",
    "ms": lambda v: f"{v:,.1f}",
    "ratio": lambda v: f"{v:.3f}",
}


def fmt_quantity(value: Any, unit: str) -> str:
    """A value in its unit's format; the generic rules for an unknown unit or a value
    that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fmt_value(value)
    if not math.isfinite(value):
        return "n/a"
    shown = _BY_UNIT.get(unit)
    return shown(value) if shown else fmt_value(value)


def fmt_kpi(name: str, value: Any) -> str:
    """A KPI's value in its unit's format."""
    return fmt_quantity(value, unit_of(name))
