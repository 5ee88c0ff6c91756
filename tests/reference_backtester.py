"""hftbacktest as a reference venue: replay mmbot's order stream, collect its fills.

hftbacktest (PyPI `hftbacktest`, Rust core with a numba-facing Python API) is a
queue-model backtester built on the same ideas as mmbot's sim venue. Used here
as a library only: market rows become its event array, mmbot's journaled places
and cancels are submitted at their send times, and each order's fill is read
back from its order state when the fill report reaches the local side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
import pandas as pd
from hftbacktest import (
    BUY_EVENT,
    DEPTH_EVENT,
    EXCH_EVENT,
    GTX,
    LIMIT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from hftbacktest.order import EXPIRED, FILLED
from hftbacktest.types import event_dtype
from numba import njit

from bot.market.schema import Kind, MarketChunk

# command kinds of the order stream handed to the numba driver
PLACE_BUY: Final = 0
PLACE_SELL: Final = 1
CANCEL: Final = 2
_WAIT_FOREVER: Final = 1 << 62


class ReferenceBacktestError(Exception):
    """hftbacktest refused a command or the input cannot be replayed."""


@dataclass(frozen=True, slots=True)
class OrderStream:
    """mmbot's commands in send order, as arrays (numba takes no objects)."""

    client_order_ids: list[str]
    ts_ns: np.ndarray
    kind: np.ndarray
    order_no: np.ndarray
    px: np.ndarray
    qty: np.ndarray


def order_stream(orders: pd.DataFrame) -> OrderStream:
    """Places and cancels from a journal's orders table; order numbers are 1-based."""
    sent = orders[orders["event"].isin(["place", "cancel"])]
    ids = list(dict.fromkeys(sent.loc[sent["event"] == "place", "client_order_id"]))
    number = {cid: i + 1 for i, cid in enumerate(ids)}
    unknown = set(sent["client_order_id"]) - number.keys()
    if unknown:
        raise ReferenceBacktestError(f"cancels of orders never placed: {sorted(unknown)[:5]}")
    is_cancel = (sent["event"] == "cancel").to_numpy()
    kind = np.where(is_cancel, CANCEL, np.where(sent["side"].to_numpy() > 0, PLACE_BUY, PLACE_SELL))
    # the journal keeps send order; a stable sort by time only guards that
    order = np.argsort(sent["ts_ns"].to_numpy(), kind="stable")
    return OrderStream(
        ids,
        sent["ts_ns"].to_numpy(np.int64)[order],
        kind.astype(np.int64)[order],
        np.array([number[c] for c in sent["client_order_id"]], np.int64)[order],
        sent["price"].to_numpy(np.float64)[order],
        sent["qty"].to_numpy(np.float64)[order],
    )


def events(chunks: Iterable[MarketChunk], exch_ts: Iterable[np.ndarray]) -> np.ndarray:
    """Market rows as hftbacktest events; `exch_ts` is each chunk's venue time.

    The capture opens with one snapshot into an empty book, so its rows are plain
    depth events (no order rests yet that a clear could reset).
    """
    parts = []
    for chunk, venue_ts in zip(chunks, exch_ts, strict=True):
        ev = np.where(chunk.kind == int(Kind.TRADE), TRADE_EVENT, DEPTH_EVENT)
        ev = ev | np.where(chunk.side > 0, BUY_EVENT, SELL_EVENT) | EXCH_EVENT | LOCAL_EVENT
        part = np.zeros(len(chunk), event_dtype)
        part["ev"] = ev
        part["exch_ts"] = venue_ts
        part["local_ts"] = chunk.ts_local
        part["px"] = chunk.price
        part["qty"] = chunk.qty
        parts.append(part)
    kind = np.concatenate([c.kind for c in chunks])
    snapshot = kind == int(Kind.SNAPSHOT)
    first_other = int(np.argmin(snapshot))
    late = np.flatnonzero(snapshot[first_other:]) if not snapshot.all() else []
    if len(late):
        raise ReferenceBacktestError(
            f"row {first_other + int(late[0])}: a snapshot after the data's opening one "
            "(a mid-run reset has no plain-event equivalent here)"
        )
    return np.concatenate(parts)


@njit
def _drive(hbt, ts_ns, kind, order_no, px, qty, end, end_ts, fill_px, fill_qty):
    """Submit each command at its send time; record how each order ended when it is reported.

    An order ends at most once here: filled whole (no partial fills) or expired
    (a post-only order that would cross on arrival). Cancelled orders stay 0.
    """
    n = len(ts_ns)
    i = 0
    while True:
        due = ts_ns[i] if i < n else _WAIT_FOREVER
        rc = hbt.wait_next_feed(True, due - hbt.current_timestamp)
        if rc == 3 or rc == 0 or rc == 1:
            values = hbt.orders(0).values()
            while values.has_next():
                o = values.get()
                k = o.order_id
                if end[k] == 0 and (o.status == FILLED or o.status == EXPIRED):
                    end[k] = o.status
                    end_ts[k] = o.exch_timestamp
                    fill_px[k] = o.exec_price
                    fill_qty[k] = o.exec_qty
        if rc == 1:
            return 0, n, 0
        if rc == 0:
            # every command due now goes out before the clock moves on
            while i < n and ts_ns[i] <= hbt.current_timestamp:
                if kind[i] == PLACE_BUY:
                    rc = hbt.submit_buy_order(0, order_no[i], px[i], qty[i], GTX, LIMIT, False)
                elif kind[i] == PLACE_SELL:
                    rc = hbt.submit_sell_order(0, order_no[i], px[i], qty[i], GTX, LIMIT, False)
                else:
                    rc = hbt.cancel(0, order_no[i], False)
                    # the local side refuses a cancel of an order it already saw end (mmbot
                    # sends it and gets a cancel reject); refusing any other is a failure
                    o = hbt.orders(0).get(order_no[i])
                    if o is not None and (o.status == FILLED or o.status == EXPIRED):
                        rc = 0
                if rc != 0:
                    return 1, i, rc
                i += 1
        elif rc != 2 and rc != 3:
            return 2, i, rc


@dataclass(frozen=True, slots=True)
class Venue:
    """The reference's settings: latencies in ns, the instrument's grid, fees."""

    entry_ns: int
    response_ns: int
    tick_size: Decimal
    lot_size: Decimal
    maker_fee: float
    taker_fee: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the reference venue did with the order stream."""

    fills: pd.DataFrame  # client_order_id, ts_ns (match, exchange time), price, qty
    expired: pd.DataFrame  # client_order_id, ts_ns: post-only orders rejected on arrival


def replay(data: np.ndarray, stream: OrderStream, venue: Venue) -> Outcome:
    """Replay `stream` through hftbacktest over `data` (no partial fills, risk-averse queue)."""
    asset = (
        BacktestAsset()
        .data([data])
        .linear_asset(1.0)
        .constant_order_latency(venue.entry_ns, venue.response_ns)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(venue.maker_fee, venue.taker_fee)
        .tick_size(float(venue.tick_size))
        .lot_size(float(venue.lot_size))
        .last_trades_capacity(0)
    )
    hbt = HashMapMarketDepthBacktest([asset])
    size = len(stream.client_order_ids) + 1
    end = np.zeros(size, np.int64)
    end_ts = np.zeros(size, np.int64)
    fill_px = np.zeros(size, np.float64)
    fill_qty = np.zeros(size, np.float64)
    failure, at, rc = _drive(hbt, stream.ts_ns, stream.kind, stream.order_no, stream.px,
                             stream.qty, end, end_ts, fill_px, fill_qty)  # fmt: skip
    hbt.close()
    if failure:
        what = "refused" if failure == 1 else "failed to step before"
        raise ReferenceBacktestError(
            f"hftbacktest {what} command {at} of {len(stream.ts_ns)} (sent at "
            f"{stream.ts_ns[at]} ns, order {stream.client_order_ids[stream.order_no[at] - 1]}): "
            f"return code {rc}"
        )
    ids = np.array(["", *stream.client_order_ids], dtype=object)
    filled = np.flatnonzero(end == FILLED)
    expired = np.flatnonzero(end == EXPIRED)
    return Outcome(
        pd.DataFrame({"client_order_id": ids[filled], "ts_ns": end_ts[filled],
                      "price": fill_px[filled], "qty": fill_qty[filled]}),
        pd.DataFrame({"client_order_id": ids[expired], "ts_ns": end_ts[expired]}),
    )  # fmt: skip


def venue_times(chunks: list[MarketChunk], offset_ns: int, trade: np.ndarray) -> np.ndarray:
    """Each row's exchange stamp on the local axis, as DESIGN §4 and the sim loop define it.

    `ts_exch + offset`, never after the row's own `ts_local`; within one stream
    (book or trades) receipt order stands, so a stamp going backwards is lifted to
    the stream's latest.
    """
    ts_exch = np.concatenate([c.ts_exch for c in chunks])
    ts_local = np.concatenate([c.ts_local for c in chunks])
    venue = np.minimum(ts_exch + offset_ns, ts_local)
    for stream in (trade, ~trade):
        venue[stream] = np.maximum.accumulate(venue[stream])
    return venue


def split_clocks(chunks: list[MarketChunk], offset_ns: int, tie_ns: int) -> np.ndarray:
    """Events on two clocks: the exchange side in venue-time order, the local side in receipt order.

    hftbacktest's exchange and local processors each read only the events that carry
    their flag, in array order; one row becomes two events, each sorted by its own
    clock. `tie_ns` moves the exchange side later so that an order arriving at a
    row's venue time is applied before the row (the opposite of both venues' rule:
    the failing direction of the tie check).
    """
    both = events(chunks, [c.ts_local for c in chunks])
    trade = np.concatenate([c.kind for c in chunks]) == int(Kind.TRADE)
    venue = venue_times(chunks, offset_ns, trade) + tie_ns
    exch, local = both.copy(), both.copy()
    exch["ev"] &= ~np.uint64(LOCAL_EVENT)
    exch["exch_ts"] = venue
    local["ev"] &= ~np.uint64(EXCH_EVENT)
    local["exch_ts"] = venue
    merged = np.concatenate([exch, local])
    return merged[np.argsort(np.concatenate([venue, local["local_ts"]]), kind="stable")]
