"""Great Expectations suites at the data boundaries (DESIGN §5), run in memory.

Each suite validates a pandas frame with GX 1.x (ephemeral context, whole-frame
batch) and returns a Verdict: one Check per expectation, FAIL with the
expectation type, the column and sample bad values (`partial_unexpected_list`).

Rules that GX has no expectation for (fee ≈ notional × rate, price within a
band of mid, time gaps) are computed here as vectorised derived columns
(`fee_error_bps`, `mid_distance_bps`, `gap_ms`) and those columns are held to
plain range expectations, so the bad values shown are the offending numbers.

GX takes seconds to import: it is imported on first use and one context and
batch definition serve the whole process. Analytics and progress bars are off.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from bot.config import Settings
from gates.kpi import BPS, KPI_NAMES, NS_PER_MS
from gates.verdict import Check, Status, Verdict

SAMPLE: Final = 5  # bad values shown per failed expectation
ORDER_EVENTS: Final = (
    "place", "ack", "reject", "cancel", "cancel_ack", "cancel_reject", "fill", "expired",
)  # fmt: skip
FEE_TOLERANCE_BPS: Final = 0.01  # venue rounding of a fee is far below 0.01 bps of notional


class QualityError(Exception):
    """Inputs a suite cannot be built from (e.g. a manifest without the fee schedule)."""


@functools.cache
def _batch_definition() -> Any:
    """The process-wide GX context's whole-dataframe batch definition (built once)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("mmbot").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


def _gxe() -> Any:
    _batch_definition()  # environment first, then the import
    import great_expectations.expectations as gxe

    return gxe


def _plain(value: Any) -> Any:
    """JSON-friendly sample values (numpy scalars and tuples from GX)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _column_of(kwargs: Mapping[str, Any]) -> str:
    for key in ("column", "column_list", "column_A"):
        if key in kwargs:
            value = kwargs[key]
            if key == "column_A":
                return f"{value},{kwargs.get('column_B')}"
            return ",".join(value) if isinstance(value, list) else str(value)
    return "table"


def _check(prefix: str, result: Any) -> Check:
    config = result.expectation_config
    kind = str(config.type)
    column = _column_of(config.kwargs)
    name = f"{prefix}{kind}({column})"
    info = result.exception_info or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message", "raised"))
        return Check(name, Status.FAIL, None, reason=f"could not run: {message}")
    outcome = result.result or {}
    bad = outcome.get("unexpected_count")
    if result.success:
        return Check(name, Status.PASS, float(bad or 0))
    sample = [_plain(v) for v in (outcome.get("partial_unexpected_list") or [])[:SAMPLE]]
    detail = {"expectation": kind, "column": column, "unexpected": sample}
    if kind == "expect_column_to_exist":
        reason = "column missing"
    elif bad is None:  # table-level expectations report an observed value instead
        detail["observed"] = _plain(outcome.get("observed_value"))
        reason = f"observed {detail['observed']}"
    else:
        reason = f"{bad} bad rows, e.g. {sample}"
    return Check(name, Status.FAIL, float(bad or 0), reason=reason, detail=detail)


def validate(frame: pd.DataFrame, expectations: Iterable[Any], prefix: str = "") -> list[Check]:
    """Run expectations against a frame; one Check per expectation, in order."""
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    import great_expectations as gx  # after _batch_definition: analytics are off by then

    suite = gx.ExpectationSuite(name=f"mmbot-{prefix or 'frame'}")
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch.validate(suite, result_format="SUMMARY")
    return [_check(prefix, r) for r in result.results]


def _not_null(columns: Sequence[str]) -> list[Any]:
    gxe = _gxe()
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _positive(columns: Sequence[str]) -> list[Any]:
    gxe = _gxe()
    return [
        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True) for c in columns
    ]


def _gaps_ms(frame: pd.DataFrame) -> pd.Series:
    """Time since the previous row of the same symbol (0 for a symbol's first row)."""
    keys = frame["symbol"] if "symbol" in frame else pd.Series(0, index=frame.index)
    # nullable Int64: a float64 diff of epoch nanoseconds would lose ~100 ns of precision
    gaps = frame["ts_ns"].astype("Int64").groupby(keys).diff().fillna(0)
    return gaps.astype("int64") / NS_PER_MS


# --- market data -------------------------------------------------------------------


def check_market_data(
    book: pd.DataFrame, trades: pd.DataFrame | None = None, max_gap_ms: float = 60_000
) -> Verdict:
    """Book tops (ts_ns, [symbol,] bid, ask, bid_qty, ask_qty) and trades (ts_ns, price, qty).

    Book: at least one row, no nulls, timestamps non-decreasing per symbol (several rows
    may share a receive time), bid < ask, prices and sizes > 0, no gap between rows
    longer than max_gap_ms. Trades: no nulls, non-decreasing time, price and qty > 0
    (trades are sparse by nature, so no gap limit).
    """
    gxe = _gxe()
    book_cols = ["ts_ns", "bid", "ask", "bid_qty", "ask_qty"]
    frame = book.assign(gap_ms=_gaps_ms(book))
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *_not_null(book_cols),
        gxe.ExpectColumnValuesToBeBetween(column="gap_ms", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="gap_ms", max_value=max_gap_ms),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="ask", column_B="bid"),
        *_positive(["bid", "ask", "bid_qty", "ask_qty"]),
    ]
    checks = validate(frame, expectations, "book.")
    if trades is not None:
        trade_frame = trades.assign(gap_ms=_gaps_ms(trades))
        checks += validate(
            trade_frame,
            [
                *_not_null(["ts_ns", "price", "qty"]),
                gxe.ExpectColumnValuesToBeBetween(column="gap_ms", min_value=0),
                *_positive(["price", "qty"]),
            ],
            "trades.",
        )
    return Verdict.of("quality.market", checks, {"book_rows": len(book)})


# --- journal fills -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillRules:
    """What a fill must respect: the fee schedule and the pre-trade limits."""

    maker_bps: float
    taker_bps: float
    price_band_bps: float
    max_order_qty: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FillRules:
        tier = settings.fees.tiers[settings.fees.tier]
        return cls(
            maker_bps=tier.maker_bps,
            taker_bps=tier.taker_bps,
            price_band_bps=settings.risk.price_band_bps,
            max_order_qty=float(settings.risk.max_order_qty),
        )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FillRules:
        """From a journal's run.json: its fee_tier and the redacted settings' risk limits."""
        try:
            tier = manifest["fee_tier"]
            risk = manifest["settings"]["risk"]
            return cls(
                maker_bps=float(tier["maker_bps"]),
                taker_bps=float(tier["taker_bps"]),
                price_band_bps=float(risk["price_band_bps"]),
                max_order_qty=float(risk["max_order_qty"]),
            )
        except (KeyError, TypeError) as exc:
            raise QualityError(f"run.json lacks the fee tier or risk limits: {exc!r}") from exc

    def rate_bps(self, liquidity: pd.Series) -> np.ndarray:
        """Each fill's fee rate in bps of notional under this schedule (maker or taker)."""
        return np.where(liquidity.astype(str) == "maker", self.maker_bps, self.taker_bps)


def _fee_sign(liquidity: str, rate_bps: float) -> list[Any]:
    """A negative rate (rebate) means fee ≤ 0 on that liquidity, a positive one fee ≥ 0."""
    gxe = _gxe()
    bound = {"max_value": 0} if rate_bps < 0 else {"min_value": 0}
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="fee", row_condition=f'liquidity=="{liquidity}"', condition_parser="pandas",
            **bound,
        )
    ]  # fmt: skip


def check_fills(fills: pd.DataFrame, rules: FillRules) -> Verdict:
    """Journal fills: no null keys and a mid on every row (KPIs need it), fee sign and
    size match the schedule, price near mid, qty within the order limit, liquidity known,
    and every trade id once: our fills' trade ids are unique per execution, so a repeat is
    a fill applied twice (across orders too, which a per-order check would miss)."""
    gxe = _gxe()
    notional = fills["price"] * fills["qty"]
    expected_fee = notional * rules.rate_bps(fills["liquidity"]) / BPS
    frame = fills.assign(
        fee_error_bps=(fills["fee"] - expected_fee) / notional * BPS,
        mid_distance_bps=(fills["price"] - fills["mid"]).abs() / fills["mid"] * BPS,
    )
    tol = FEE_TOLERANCE_BPS
    expectations = [
        *_not_null(
            ["ts_ns", "symbol", "client_order_id", "trade_id", "price", "qty", "fee", "mid"]
        ),
        gxe.ExpectColumnValuesToBeInSet(column="liquidity", value_set=["maker", "taker"]),
        gxe.ExpectColumnValuesToBeInSet(column="side", value_set=[1, -1]),
        *_fee_sign("maker", rules.maker_bps),
        *_fee_sign("taker", rules.taker_bps),
        gxe.ExpectColumnValuesToBeBetween(column="fee_error_bps", min_value=-tol, max_value=tol),
        gxe.ExpectColumnValuesToBeBetween(
            column="mid_distance_bps", max_value=rules.price_band_bps
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="qty", min_value=0, strict_min=True, max_value=rules.max_order_qty
        ),
        gxe.ExpectColumnValuesToBeUnique(column="trade_id"),
    ]
    return Verdict.of(
        "quality.fills", validate(frame, expectations, "fills."), {"rows": len(fills)}
    )


# --- journal orders --------------------------------------------------------------------


def check_orders(orders: pd.DataFrame) -> Verdict:
    """Journal orders: known events, no null keys, and an ack never before its send."""
    gxe = _gxe()
    expectations = [
        *_not_null(["ts_ns", "symbol", "client_order_id", "event"]),
        gxe.ExpectColumnValuesToBeInSet(column="event", value_set=list(ORDER_EVENTS)),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="ts_ack_ns", column_B="ts_send_ns", or_equal=True,
            row_condition='event=="ack"', condition_parser="pandas",
        ),
    ]  # fmt: skip
    return Verdict.of(
        "quality.orders", validate(orders, expectations, "orders."), {"rows": len(orders)}
    )


# --- iteration summaries -------------------------------------------------------------------

# (min, max) each KPI can take; None is unbounded on that side
KPI_RANGES: Final[Mapping[str, tuple[float | None, float | None]]] = {
    "gross_bps": (-BPS, BPS),
    "fee_bps": (-BPS, BPS),
    "adverse_bps": (-BPS, BPS),
    "net_bps": (-BPS, BPS),
    "adverse_p95_bps": (-BPS, BPS),
    "maker_share": (0, 1),
    "fills": (0, None),
    "turnover_usd": (0, None),
    "pnl_usd": (None, None),
    "max_drawdown_usd": (0, None),
    "inventory_ratio_p95": (0, None),
    "order_latency_p95_ms": (0, None),
    "cancel_ratio": (0, 1),
    "quote_uptime": (0, 1),
    "freezes": (0, None),
}


def check_iterations(frame: pd.DataFrame, required: Sequence[str] = KPI_NAMES) -> Verdict:
    """Per-iteration KPI rows (one row per soak iteration): at least one row, every
    required field present and non-null, each KPI inside the range it can take."""
    gxe = _gxe()
    expectations: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    for name in required:
        expectations.append(gxe.ExpectColumnToExist(column=name))
        if name not in frame.columns:
            continue  # the column check above fails; nothing else can run on it
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
        low, high = KPI_RANGES.get(name, (None, None))
        if low is not None or high is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high)
            )
    return Verdict.of(
        "quality.iterations", validate(frame, expectations, "iterations."), {"rows": len(frame)}
    )
