"""One definition of every KPI (DESIGN §6), used by every gate and report.

Per fill i: s = +1 buy / -1 sell, price p, qty q, notional n = p·q, mid m at the
fill (`fills.mid`), m_H = the first `book` mid of the same symbol at or after
t + H.

- gross_bps   = s·(m − p)/m·1e4           spread captured
- fee_bps     = −fee/n·1e4                a rebate is positive
- adverse_bps = s·(m − m_H)/m·1e4         the mid moved against us
- net_bps     = gross_bps + fee_bps − adverse_bps

Aggregates are notional-weighted means over fills. A fill with no book mid at or
after t + H (the run ended first) has no adverse or net edge: it is left out of
adverse_bps / net_bps / adverse_p95_bps (and counted in `fills_without_mid_h` of
`fill_edges`), but still counts for gross_bps, fee_bps, maker_share, turnover and
PnL. Tails (adverse_p95_bps, order_latency_p95_ms, inventory_ratio_p95) are the
95th percentile by the nearest-rank rule: sort ascending, take the
ceil(0.95·N)-th value, unweighted.

quote_uptime is the share of book samples with both sides acknowledged on the
venue's book (ack .. cancel-ack / completing fill / expiry) within
max_quote_distance_bps of the sample's mid: what the venue held, not what the
strategy wanted (`quoted_samples`).

A KPI that the journal cannot define is NaN, never 0 (e.g. net_bps with no fills,
order_latency_p95_ms with no acks). Counts (fills, freezes) and sums
(turnover_usd) are 0 when nothing happened, because that is their true value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from bot import edge
from bot.config import KPI_NAMES as ALL_KPI_NAMES
from bot.config import StrategyConfig
from bot.journal import OPENING, SCHEMAS, TABLES, final_pnl_usd, read_manifest, read_tables
from bot.runtime.clock import parse_duration

EXTRA_NAMES: Final = ("adverse_5s_bps", "net_5s_bps")
# the DESIGN §6 KPIs; the names are kept once, in bot/config.py, for validation too
KPI_NAMES: Final = tuple(name for name in ALL_KPI_NAMES if name not in EXTRA_NAMES)
LONG_HORIZON_MS: Final = 5_000
NS_PER_MS: Final = 1_000_000
BPS: Final = 1e4
TAIL_PCT: Final = 95
GLOBAL_SYMBOLS: Final = ("*", "")  # risk rows that concern the whole bot

_DEFAULT_QUOTE_DISTANCE_BPS: Final = float(
    StrategyConfig.model_fields["max_quote_distance_bps"].default
)


class KpiError(Exception):
    """A journal whose contents cannot be turned into KPIs as DESIGN §6 defines them."""


@dataclass(frozen=True, slots=True, eq=False)
class Journal:
    """A run's journal tables (the `bot/journal.py` columns) and its `run.json` manifest."""

    tables: Mapping[str, pd.DataFrame]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    # The release policy's limits (max_inventory_usd, max_quote_distance_bps), set by
    # `judged_by`: a gate judges by them, never by the ones the candidate ran with.
    limits: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(
        cls, tables: Mapping[str, pd.DataFrame], manifest: Mapping[str, Any] | None = None
    ) -> Journal:
        """A journal from frames; missing tables become empty frames with the contract columns."""
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise KpiError(f"unknown journal tables {sorted(unknown)}; tables are {TABLES}")
        full = {
            name: tables[name] if name in tables else SCHEMAS[name].empty_table().to_pandas()
            for name in TABLES
        }
        return cls(full, dict(manifest or {}))

    def table(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def symbols(self) -> list[str]:
        """Symbols that were traded, quoted or sampled (risk rows may be global: '*')."""
        seen: set[str] = set()
        for name in ("book", "fills", "quotes", "orders", "positions"):
            seen.update(str(s) for s in self.tables[name]["symbol"].unique())
        return sorted(seen - set(GLOBAL_SYMBOLS))

    def for_symbol(self, symbol: str) -> Journal:
        """The rows of one symbol; global risk rows ('*' or '') apply to every symbol."""
        tables = {name: frame[frame["symbol"] == symbol] for name, frame in self.tables.items()}
        risk = self.tables["risk"]
        tables["risk"] = risk[risk["symbol"].isin([symbol, *GLOBAL_SYMBOLS])]
        opening = {s: held for s, held in self.opening.items() if s == symbol}
        return Journal(tables, {**self.manifest, OPENING: opening}, self.limits)

    def judged_by(self, **limits: float) -> Journal:
        """The same rows held to other limits (the policy's); run.json stays as evidence."""
        return Journal(self.tables, self.manifest, {**self.limits, **limits})

    @property
    def max_inventory_usd(self) -> float:
        """Per-symbol inventory limit: the policy's when judged by one, else the manifest's
        (top level, else the settings)."""
        value = self.limits.get("max_inventory_usd", self.manifest.get("max_inventory_usd"))
        if value is None:
            value = _setting(self.manifest, "risk", "max_inventory_usd")
        return float(value) if value is not None else math.nan

    @property
    def opening(self) -> Mapping[str, Mapping[str, float]]:
        """Positions the run started with (a live restart onto the venue's), if any."""
        return self.manifest.get(OPENING) or {}

    @property
    def max_quote_distance_bps(self) -> float:
        """The policy's when judged by one, else the run's settings; the schema default
        when the manifest has no settings."""
        value = self.limits.get(
            "max_quote_distance_bps", self.manifest.get("max_quote_distance_bps")
        )
        if value is None:
            value = _setting(self.manifest, "strategy", "max_quote_distance_bps")
        return float(value) if value is not None else _DEFAULT_QUOTE_DISTANCE_BPS


def _setting(manifest: Mapping[str, Any], section: str, key: str) -> Any:
    settings = manifest.get("settings")
    if not isinstance(settings, Mapping):
        return None
    part = settings.get(section)
    return part.get(key) if isinstance(part, Mapping) else None


def load_journal(path: Path | str) -> Journal:
    """Read every table and the manifest of a journal directory written by JournalWriter."""
    root = Path(path)
    return Journal(read_tables(root), read_manifest(root))


@dataclass(frozen=True, slots=True)
class KpiReport:
    total: dict[str, float]
    by_symbol: dict[str, dict[str, float]]
    horizon_ms: int = 1_000

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": dict(self.total),
            "by_symbol": {s: dict(k) for s, k in self.by_symbol.items()},
        }

    def to_json_dict(self) -> dict[str, Any]:
        """`to_dict` with NaN as None: the stable JSON interface of `mmbot kpi --json`."""
        return nan_to_none(self.to_dict())


def nan_to_none(value: Any) -> Any:
    """A copy of dicts/lists/tuples (lists out) with every non-finite float as None: JSON
    has no NaN, and a KPI the journal cannot define must read as absent, not as 0."""
    if isinstance(value, Mapping):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- small numeric helpers ------------------------------------------------------


def nearest_rank(values: np.ndarray | pd.Series, pct: int = TAIL_PCT) -> float:
    """The pct-th percentile by the nearest-rank rule; NaN values ignored; NaN if none."""
    arr = np.asarray(values, dtype=float)
    arr = np.sort(arr[~np.isnan(arr)])
    if arr.size == 0:
        return math.nan
    rank = -(-pct * arr.size // 100)  # ceil(pct·N/100) in integers: no float rounding at N·0.95
    return float(arr[rank - 1])


def nearest_rank_by(keys: pd.Series, values: pd.Series, pct: int = TAIL_PCT) -> pd.Series:
    """Nearest-rank percentile per key, vectorised (sort once, pick one row per group)."""
    frame = pd.DataFrame({"key": keys.to_numpy(), "value": values.to_numpy(dtype=float)})
    frame = frame[frame["value"].notna()].sort_values(["key", "value"], kind="stable")
    if frame.empty:
        return pd.Series(dtype=float)
    position = frame.groupby("key").cumcount().to_numpy()
    size = frame.groupby("key")["value"].transform("size").to_numpy()
    rank = -(-pct * size // 100)
    picked = frame[position == rank - 1]
    return pd.Series(picked["value"].to_numpy(), index=picked["key"].to_numpy())


def _weighted(values: pd.Series, weights: pd.Series) -> float:
    mask = values.notna()
    total = float(weights[mask].sum())
    if total <= 0:
        return math.nan
    return float((values[mask] * weights[mask]).sum() / total)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("ts_ns", kind="stable").reset_index(drop=True)


def _asof(left: pd.DataFrame, right: pd.DataFrame, **how: Any) -> pd.DataFrame:
    """pd.merge_asof that also takes an empty side (pandas fails on empty string keys)."""
    if left.empty or right.empty:
        taken = {"ts_ns", "symbol"} | set(left.columns)
        extra = {c: np.nan for c in right.columns if c not in taken}
        return left.reset_index(drop=True).assign(**extra)
    return pd.merge_asof(left, right, **how)


# --- per-fill edges ---------------------------------------------------------------


def fill_edges(journal: Journal, horizon_ms: int = 1_000) -> pd.DataFrame:
    """Per fill: ts_ns, symbol, side, price, qty, notional, liquidity, fee, mid, mid_h,
    gross_bps, fee_bps, adverse_bps, net_bps (adverse/net NaN where no mid_h exists)."""
    fills = _sorted(journal.table("fills"))
    out = pd.DataFrame(
        {
            "ts_ns": fills["ts_ns"].astype("int64"),
            "symbol": fills["symbol"].astype(str),
            "side": fills["side"].astype(float),
            "price": fills["price"].astype(float),
            "qty": fills["qty"].astype(float),
            "liquidity": fills["liquidity"].astype(str),
            "fee": fills["fee"].astype(float),
            "mid": fills["mid"].astype(float),
        }
    )
    out["notional"] = out["price"] * out["qty"]
    out["mid_h"] = _mid_at_or_after(journal.table("book"), out, horizon_ms)
    side, mid = out["side"], out["mid"]
    # the per-fill formulas are bot/edge.py's, shared with the risk engine's edge guard
    out["gross_bps"] = edge.gross_bps(side, out["price"], mid)
    out["fee_bps"] = edge.fee_bps(out["fee"], out["notional"])
    out["adverse_bps"] = edge.adverse_bps(side, mid, out["mid_h"])
    out["net_bps"] = edge.net_bps(out["gross_bps"], out["fee_bps"], out["adverse_bps"])
    return out


def _mid_at_or_after(book: pd.DataFrame, fills: pd.DataFrame, horizon_ms: int) -> np.ndarray:
    """m_H: the first book mid of the fill's symbol at or after ts + H (NaN if none)."""
    if fills.empty:
        return np.empty(0, dtype=float)
    mids = book.loc[book["mid"].notna() & (book["mid"] > 0), ["ts_ns", "symbol", "mid"]]
    mids = mids.assign(symbol=mids["symbol"].astype(str), ts_ns=mids["ts_ns"].astype("int64"))
    mids = mids.sort_values("ts_ns", kind="stable").rename(columns={"mid": "mid_h"})
    probe = pd.DataFrame(
        {
            "t_h": fills["ts_ns"].to_numpy() + horizon_ms * NS_PER_MS,
            "symbol": fills["symbol"].to_numpy(),
            "row": np.arange(len(fills)),
        }
    ).sort_values("t_h", kind="stable")
    merged = _asof(
        probe,
        mids,
        left_on="t_h",
        right_on="ts_ns",
        by="symbol",
        direction="forward",
        allow_exact_matches=True,
    )
    result = np.full(len(fills), np.nan)
    result[merged["row"].to_numpy()] = merged["mid_h"].to_numpy(dtype=float)
    return result


# --- equity, inventory -------------------------------------------------------------


def _marked(
    marks: pd.DataFrame, fills: pd.DataFrame, opening: Mapping[str, Mapping[str, float]]
) -> pd.DataFrame:
    """The one mark-to-market: at each mark (ts_ns, symbol, mid) the symbol's position and
    cash from its opening position (bought at its entry price before the first row) and
    its fills at or before it; pnl = cash + position·mid, where
    cash = Σ(−s·p·q) − Σfee (realized + unrealized − fees)."""
    fills = _sorted(fills)
    held = pd.DataFrame(
        {
            "ts_ns": np.zeros(len(opening), dtype="int64"),
            "symbol": list(opening),
            "d_pos": [float(h["qty"]) for h in opening.values()],
            "d_cash": [-float(h["qty"]) * float(h["price"]) for h in opening.values()],
        }
    )
    traded = pd.DataFrame(
        {
            "ts_ns": fills["ts_ns"].astype("int64"),
            "symbol": fills["symbol"].astype(str),
            "d_pos": fills["side"].astype(float) * fills["qty"].astype(float),
            "d_cash": -fills["side"].astype(float) * fills["price"] * fills["qty"] - fills["fee"],
        }
    )
    flows = pd.concat([held, traded], ignore_index=True) if opening else traded
    flows["position"] = flows.groupby("symbol")["d_pos"].cumsum()
    flows["cash"] = flows.groupby("symbol")["d_cash"].cumsum()
    merged = _asof(
        _sorted(marks),
        flows[["ts_ns", "symbol", "position", "cash"]],
        on="ts_ns",
        by="symbol",
        direction="backward",
        allow_exact_matches=True,
    )
    merged[["position", "cash"]] = merged[["position", "cash"]].astype(float).fillna(0.0)
    merged["inventory_usd"] = merged["position"] * merged["mid"]
    merged["pnl_usd"] = merged["cash"] + merged["inventory_usd"]
    return merged


def symbol_equity(journal: Journal) -> pd.DataFrame:
    """Per symbol, on its book rows: ts_ns, symbol, mid, position, cash, pnl_usd,
    inventory_usd (see `_marked`)."""
    book = journal.table("book")
    book = book.loc[book["mid"].notna(), ["ts_ns", "symbol", "mid"]]
    marks = book.assign(symbol=book["symbol"].astype(str), ts_ns=book["ts_ns"].astype("int64"))
    return _marked(marks, journal.table("fills"), journal.opening)


def equity_curve(journal: Journal) -> pd.DataFrame:
    """The run's mark-to-market curve on the book time grid: ts_ns, pnl_usd, position,
    inventory_usd, inventory_ratio.

    Several symbols: each symbol's last value is carried forward to every book time and
    pnl_usd / inventory_usd (signed) are summed; position is NaN because base units of
    different symbols do not add; inventory_ratio is the worst symbol's
    |notional| / max_inventory_usd (the limit is per symbol). Before a symbol's first
    book row it contributes 0.
    """
    per = symbol_equity(journal)
    per["inventory_ratio"] = per["inventory_usd"].abs() / journal.max_inventory_usd
    columns = ["ts_ns", "pnl_usd", "position", "inventory_usd", "inventory_ratio"]
    symbols = per["symbol"].unique()
    if len(symbols) <= 1:
        return per[columns].reset_index(drop=True)

    def wide(value: str) -> pd.DataFrame:
        table = per.pivot_table(index="ts_ns", columns="symbol", values=value, aggfunc="last")
        return table.ffill().fillna(0.0)

    pnl, inventory, ratio = wide("pnl_usd"), wide("inventory_usd"), wide("inventory_ratio")
    return pd.DataFrame(
        {
            "ts_ns": pnl.index.to_numpy(dtype="int64"),
            "pnl_usd": pnl.to_numpy().sum(axis=1),
            "position": np.nan,
            "inventory_usd": inventory.to_numpy().sum(axis=1),
            "inventory_ratio": ratio.to_numpy().max(axis=1),
        }
    )


def _max_drawdown(pnl: pd.Series) -> float:
    """Largest fall from a running peak; the run starts flat at 0, so 0 is the first peak."""
    if pnl.empty:
        return math.nan
    values = pnl.to_numpy(dtype=float)
    peak = np.maximum.accumulate(np.maximum(values, 0.0))
    return float(np.max(peak - values))


def _pnl_usd(journal: Journal) -> float:
    """The run's final mark-to-market, summed over symbols: `final_pnl_usd`, the one
    definition, which `mmbot run` prints too."""
    return final_pnl_usd(journal.table("fills"), journal.table("book"), journal.opening)


# --- orders, quotes, risk ------------------------------------------------------------


def ack_latencies_ms(journal: Journal) -> pd.DataFrame:
    """ts_ns and latency_ms (ack − send) of every `ack` row whose both stamps are known."""
    orders = journal.table("orders")
    acks = orders[
        (orders["event"] == "ack") & (orders["ts_send_ns"] > 0) & (orders["ts_ack_ns"] > 0)
    ]
    return pd.DataFrame(
        {
            "ts_ns": acks["ts_ns"].astype("int64").to_numpy(),
            "latency_ms": (acks["ts_ack_ns"] - acks["ts_send_ns"]).to_numpy(dtype=float)
            / NS_PER_MS,
        }
    )


def _cancel_ratio(orders: pd.DataFrame) -> float:
    placed = int((orders["event"] == "place").sum())
    cancels = int((orders["event"] == "cancel").sum())
    if placed + cancels == 0:
        return math.nan
    return cancels / (placed + cancels)


ON_BOOK_END_EVENTS: Final = ("cancel_ack", "expired")
FILLED: Final = "FILLED"  # the order status a fill row carries when nothing remains


def on_book_orders(journal: Journal) -> pd.DataFrame:
    """Per acknowledged order: symbol, side, price, start_ns (its first ack) and end_ns
    (its first cancel-ack, expiry or completing fill; past the journal's end while it
    was still working). An order is on the venue's book only between the two: before the
    ack it is in flight, and a cancel sent is not a cancel done."""
    orders = journal.table("orders")
    columns = ["symbol", "side", "price", "start_ns", "end_ns"]
    keyed = orders.assign(
        symbol=orders["symbol"].astype(str), cid=orders["client_order_id"].astype(str)
    )
    events = keyed["event"].astype(str)
    acks = keyed[events == "ack"].sort_values("ts_ns", kind="stable")
    acks = acks.drop_duplicates(["symbol", "cid"])  # a duplicated ack report changes nothing
    if acks.empty:
        return pd.DataFrame(columns=columns)
    ended = events.isin(ON_BOOK_END_EVENTS) | (
        (events == "fill") & (keyed["status"].astype(str) == FILLED)
    )
    first_end = keyed[ended].groupby(["symbol", "cid"])["ts_ns"].min().rename("end_ns")
    merged = acks.join(first_end, on=["symbol", "cid"])
    after_all = _last_ts(journal) + 1
    return pd.DataFrame(
        {
            "symbol": merged["symbol"].to_numpy(),
            "side": merged["side"].to_numpy(dtype=float),
            "price": merged["price"].to_numpy(dtype=float),
            "start_ns": merged["ts_ns"].to_numpy(dtype="int64"),
            "end_ns": merged["end_ns"].fillna(after_all).to_numpy(dtype="int64"),
        }
    )


def _last_ts(journal: Journal) -> int:
    stamps = [int(frame["ts_ns"].max()) for frame in journal.tables.values() if not frame.empty]
    return max(stamps, default=0)


def _side_covered(
    stamps: np.ndarray, mids: np.ndarray, orders: pd.DataFrame, side: int, limit_bps: float
) -> np.ndarray:
    """True at each sample where an order of `side` was on the book within limit_bps of
    the sample's mid (a bid at most that far below it, an ask at most that far above).

    Vectorised as (order, sample) pairs: each order covers the contiguous run of samples
    in [start, end), so the pairs number about samples x orders working at once."""
    mine = orders[orders["side"] == side]
    covered = np.zeros(stamps.size, dtype=bool)
    if mine.empty or stamps.size == 0:
        return covered
    lo = np.searchsorted(stamps, mine["start_ns"].to_numpy(dtype="int64"), side="left")
    hi = np.searchsorted(stamps, mine["end_ns"].to_numpy(dtype="int64"), side="left")
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    if total == 0:
        return covered
    order_of = np.repeat(np.arange(len(mine)), counts)
    # sample index of each pair: lo of its order plus its position within the order's run
    offsets = np.cumsum(counts) - counts
    sample = lo[order_of] + np.arange(total) - offsets[order_of]
    price, mid = mine["price"].to_numpy(dtype=float)[order_of], mids[sample]
    distance = (mid - price) / mid * BPS if side > 0 else (price - mid) / mid * BPS
    covered[sample[distance <= limit_bps]] = True
    return covered


def quoted_samples(journal: Journal) -> pd.DataFrame:
    """Per book row: ts_ns, symbol and `quoted` -- both sides ACKNOWLEDGED on the venue's
    book (see `on_book_orders`) within max_quote_distance_bps of the sample's mid.

    What the strategy wanted (the `quotes` table) is not what the venue held: with
    latency an order is in flight after the decision and a cancelled one stays on the
    book until its cancel-ack. A freeze needs no rule of its own here: it cancels the
    orders, and they count until the venue confirms it.
    """
    book = journal.table("book")
    book = _sorted(
        book.loc[book["mid"].notna(), ["ts_ns", "symbol", "mid"]].astype({"symbol": str})
    )
    orders = on_book_orders(journal)
    limit = journal.max_quote_distance_bps
    quoted = np.zeros(len(book), dtype=bool)
    symbols = book["symbol"].to_numpy()
    for symbol in np.unique(symbols):
        rows = np.flatnonzero(symbols == symbol)
        stamps = book["ts_ns"].to_numpy(dtype="int64")[rows]
        mids = book["mid"].to_numpy(dtype=float)[rows]
        theirs = orders[orders["symbol"] == symbol]
        bid = _side_covered(stamps, mids, theirs, 1, limit)
        ask = _side_covered(stamps, mids, theirs, -1, limit)
        quoted[rows] = bid & ask
    return pd.DataFrame({"ts_ns": book["ts_ns"].to_numpy(), "symbol": symbols, "quoted": quoted})


def _quote_uptime(journal: Journal) -> float:
    """Share of book samples quoted (see `quoted_samples`); NaN with no book sample, 0
    for a run that never had both sides on the book (its true value)."""
    samples = quoted_samples(journal)
    return float(samples["quoted"].mean()) if not samples.empty else math.nan


# --- the report ---------------------------------------------------------------------


def _kpis(journal: Journal, horizon_ms: int) -> dict[str, float]:
    edges = fill_edges(journal, horizon_ms)
    long = fill_edges(journal, LONG_HORIZON_MS)
    notional = edges["notional"]
    turnover = float(notional.sum())
    maker = float(notional[edges["liquidity"] == "maker"].sum())
    curve = equity_curve(journal)
    latencies = ack_latencies_ms(journal)
    risk = journal.table("risk")
    return {
        "gross_bps": _weighted(edges["gross_bps"], notional),
        "fee_bps": _weighted(edges["fee_bps"], notional),
        "adverse_bps": _weighted(edges["adverse_bps"], notional),
        "net_bps": _weighted(edges["net_bps"], notional),
        "adverse_p95_bps": nearest_rank(edges["adverse_bps"]),
        "maker_share": maker / turnover if turnover > 0 else math.nan,
        "fills": float(len(edges)),
        "turnover_usd": turnover,
        "pnl_usd": _pnl_usd(journal),
        "max_drawdown_usd": _max_drawdown(curve["pnl_usd"]),
        "inventory_ratio_p95": nearest_rank(curve["inventory_ratio"]),
        "order_latency_p95_ms": nearest_rank(latencies["latency_ms"]),
        "cancel_ratio": _cancel_ratio(journal.table("orders")),
        "quote_uptime": _quote_uptime(journal),
        "freezes": float((risk["kind"] == "freeze").sum()),
        "adverse_5s_bps": _weighted(long["adverse_bps"], long["notional"]),
        "net_5s_bps": _weighted(long["net_bps"], long["notional"]),
    }


# KPIs a mode cannot measure, and why: NaN in every report of such a run (never the 0
# the journal holds: the shadow venue "acks" at once), N/A in the gates
NOT_MEASURABLE: Final[Mapping[str, Mapping[str, str]]] = {
    "shadow": {
        "order_latency_p95_ms": "shadow mode sends no orders, so no order has a latency",
    },
}


def not_measurable(journal: Journal) -> Mapping[str, str]:
    """The KPIs the journal's mode (run.json) cannot measure, with why."""
    return NOT_MEASURABLE.get(str(journal.manifest.get("mode", "")), {})


def _measured(journal: Journal, horizon_ms: int) -> dict[str, float]:
    kpis = _kpis(journal, horizon_ms)
    kpis.update((name, math.nan) for name in not_measurable(journal))
    return kpis


def compute_kpis(journal: Journal, horizon_ms: int = 1_000) -> KpiReport:
    """Every KPI over the whole run (`total`) and per symbol (`by_symbol`); a KPI the
    run's mode cannot measure is NaN (see NOT_MEASURABLE)."""
    total = _measured(journal, horizon_ms)
    symbols = journal.symbols()
    if len(symbols) == 1:  # the usual case: the one symbol's KPIs are the total's
        return KpiReport(total, {symbols[0]: dict(total)}, horizon_ms)
    by_symbol = {s: _measured(journal.for_symbol(s), horizon_ms) for s in symbols}
    return KpiReport(total, by_symbol, horizon_ms)


# --- per-interval series (accuracy, canary, rollback, charts) --------------------------

INTERVAL_COLUMNS: Final = (
    "net_bps",
    "maker_share",
    "fills",
    "order_latency_ms",
    "inventory_ratio",
    "pnl_usd",
    "turnover_usd",
    "error_rate",
)


def interval_ns(interval: str) -> int:
    """'1m', '5m', '1h', '500ms' -> nanoseconds (the one duration grammar of the CLI)."""
    try:
        step = parse_duration(interval)
    except ValueError as exc:
        raise KpiError(f"interval {interval!r} is not a duration like '1m' or '30s'") from exc
    if step <= 0:
        raise KpiError(f"interval {interval!r} must be positive")
    return step


def _bucket(ts_ns: pd.Series | np.ndarray, step: int) -> np.ndarray:
    # epoch-aligned buckets: two runs over the same market window share interval starts
    return (np.asarray(ts_ns, dtype="int64") // step) * step


def interval_series(
    journal: Journal, interval: str = "1m", horizon_ms: int = 1_000
) -> pd.DataFrame:
    """Per interval (index: interval start, UTC): net_bps and maker_share (notional-weighted,
    NaN without fills), fills, order_latency_ms (nearest-rank p95 of acks in the interval),
    inventory_ratio (max over the interval's book samples), pnl_usd (mark-to-market at the
    interval's last book sample, carried forward), turnover_usd, error_rate (rejects /
    orders answered = acks + rejects; NaN when none was answered). Every interval
    between the first and last journal row is present."""
    step = interval_ns(interval)
    stamps = [f["ts_ns"] for f in journal.tables.values() if not f.empty]
    columns = list(INTERVAL_COLUMNS)
    if not stamps:
        return pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], tz="UTC", name="start"))
    first = int(min(int(s.min()) for s in stamps))
    last = int(max(int(s.max()) for s in stamps))
    grid = np.arange((first // step) * step, (last // step) * step + step, step, dtype="int64")
    out = pd.DataFrame(index=pd.Index(grid, name="start"))

    edges = fill_edges(journal, horizon_ms)
    edges["bucket"] = _bucket(edges["ts_ns"], step)
    edges["w_net"] = edges["net_bps"] * edges["notional"]
    edges["w_known"] = edges["notional"].where(edges["net_bps"].notna(), 0.0)
    edges["maker_notional"] = edges["notional"].where(edges["liquidity"] == "maker", 0.0)
    per = edges.groupby("bucket")[["w_net", "w_known", "notional", "maker_notional"]].sum()
    out["net_bps"] = (per["w_net"] / per["w_known"].where(per["w_known"] > 0)).reindex(grid)
    out["maker_share"] = (
        per["maker_notional"] / per["notional"].where(per["notional"] > 0)
    ).reindex(grid)
    out["fills"] = edges.groupby("bucket").size().reindex(grid, fill_value=0).astype(float)

    acks = ack_latencies_ms(journal)
    out["order_latency_ms"] = nearest_rank_by(
        pd.Series(_bucket(acks["ts_ns"], step)), acks["latency_ms"]
    ).reindex(grid)

    curve = equity_curve(journal)
    curve["bucket"] = _bucket(curve["ts_ns"], step)
    by_bucket = curve.groupby("bucket")
    out["inventory_ratio"] = by_bucket["inventory_ratio"].max().reindex(grid)
    out["pnl_usd"] = by_bucket["pnl_usd"].last().reindex(grid).ffill().fillna(0.0)
    out["turnover_usd"] = per["notional"].reindex(grid, fill_value=0.0)

    orders = journal.table("orders")
    order_bucket = _bucket(orders["ts_ns"], step)
    events = orders["event"]
    rejects = (events == "reject").astype(float).groupby(order_bucket).sum()
    answered = events.isin(("ack", "reject")).astype(float).groupby(order_bucket).sum()
    answered = answered.reindex(grid, fill_value=0.0)
    out["error_rate"] = rejects.reindex(grid, fill_value=0.0) / answered.where(answered > 0)
    out.index = pd.DatetimeIndex(pd.to_datetime(grid, unit="ns", utc=True), name="start")
    return out[columns]
