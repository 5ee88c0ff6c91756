"""The simulated venue: matching of our orders against replayed L2 data (DESIGN §4).

Time model: two clocks on one common axis, the bot's local clock. The venue
sees each market row at its exchange time mapped onto that axis (`ts_exch` plus
the capture clock's offset, bot/market/clocks.py); the bot sees it later, at the
row's `ts_local`. The sim loop feeds the venue in that exchange-time order, so
when an order arrives the book here is the book as it stood at the exchange
then, which the bot has not seen yet. A place sent at local t is live at t +
entry latency; a cancel is effective at t + cancel latency (never before its
order arrived: one connection keeps order); every report reaches the bot
response latency after the venue event that caused it. A fill report carries
the match time and the venue's mid then (`match_ts_ns`, `match_mid_px`).

Internal work (arrivals and report deliveries) sits in one heap keyed by
(ts, seq); the sim loop pops it between market messages with `pop_due(ts)`.

Matching (against the market, never against ourselves):
- a trade THROUGH our price fills the whole remaining order: the print is the
  last level of a sweep, so every level before it, ours included, was taken;
- a trade AT our price reaches us only after it exhausts `queue_ahead`;
- a snapshot (Tardis writes one after a reconnect) puts our orders back behind
  the displayed size at their price;
- the book moving through our resting price (best ask <= our bid) fills us;
- a post-only order that would cross on arrival is rejected, as Bybit does.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Final, cast

import numpy as np
import structlog

from bot.config import FaultConfig, FeeTier, Settings
from bot.market.book import ASK, BID, NO_ASK, NO_BID, L2Book
from bot.model import (
    BookUpdate,
    Cancel,
    CancelAck,
    CancelAll,
    CancelReject,
    Command,
    Instrument,
    Liquidity,
    OrderAck,
    OrderFill,
    OrderReject,
    Place,
    Side,
    VenueReport,
)
from bot.venues.latency import NS_PER_MS, LatencyModel, latency_from
from bot.venues.queue import QueueModel, SimOrder, queue_model

log = structlog.get_logger(__name__)

NEVER: Final = 1 << 62
POST_ONLY_REJECT: Final = "EC_PostOnlyWillTakeLiquidity"
_ARRIVE_PLACE: Final = 0
_ARRIVE_CANCEL: Final = 1
_ARRIVE_CANCEL_ALL: Final = 2
_DELIVER: Final = 3
_BPS: Final = Decimal(10_000)
_DISCONNECT_NS: Final = 10_000 * NS_PER_MS


class SimVenueError(Exception):
    """The sim was driven in a way no venue allows (a bug in the caller)."""


class UniformDraws:
    """Seeded uniform draws in [0, 1), generated in blocks: one numpy call per 4096."""

    __slots__ = ("_block", "_i", "_rng")

    def __init__(self, seed: list[int]) -> None:
        self._rng = np.random.default_rng(seed)
        self._block: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._block):
            self._block = self._rng.random(4_096).tolist()
            self._i = 0
        value = self._block[self._i]
        self._i += 1
        return float(value)


class ReportFaults:
    """Seeded faults on the venue's side: rejects, lost acks, late/duplicate/reordered reports.

    Draws come from their own generator so that switching faults on does not
    change the latency draws of a run.
    """

    __slots__ = ("_cfg", "_delay_ns", "_draw", "active")

    def __init__(self, cfg: FaultConfig, seed: int) -> None:
        self._cfg = cfg
        self._draw = UniformDraws([seed, 1])
        self._delay_ns = cfg.delay_ms * NS_PER_MS
        self.active = (
            cfg.reject_prob + cfg.timeout_prob + cfg.duplicate_prob + cfg.reorder_prob > 0
            or cfg.delay_ms > 0
        )

    def reject(self) -> bool:
        return self._cfg.reject_prob > 0 and self._draw() < self._cfg.reject_prob

    def lose_ack(self) -> bool:
        return self._cfg.timeout_prob > 0 and self._draw() < self._cfg.timeout_prob

    def delivery_offsets(self, response_ns: int) -> list[int]:
        """Extra delay of each copy of a report: [] never happens; 2 items is a duplicate."""
        extra = self._delay_ns
        # held back long enough that the next report (one response later) overtakes it
        if self._cfg.reorder_prob > 0 and self._draw() < self._cfg.reorder_prob:
            extra += 2 * response_ns + NS_PER_MS
        if self._cfg.duplicate_prob > 0 and self._draw() < self._cfg.duplicate_prob:
            return [extra, extra + 1]
        return [extra]


class FeedFaults:
    """Seeded faults on the market feed the engine sees: stale, crossed, disconnected.

    The venue keeps matching on the true book; only the engine's view is spoiled.
    """

    __slots__ = ("_cfg", "_draw", "_last", "active", "down_until_ns")

    def __init__(self, cfg: FaultConfig, seed: int) -> None:
        self._cfg = cfg
        self._draw = UniformDraws([seed, 2])
        self._last: BookUpdate | None = None
        self.down_until_ns = -1
        self.active = cfg.stale_book_prob + cfg.crossed_book_prob + cfg.disconnect_prob > 0

    def spoil(self, update: BookUpdate) -> BookUpdate | None:
        """The update the engine gets instead of `update`, or None during a disconnect."""
        cfg = self._cfg
        if update.ts_ns < self.down_until_ns:
            return None
        if cfg.disconnect_prob > 0 and self._draw() < cfg.disconnect_prob:
            self.down_until_ns = update.ts_ns + _DISCONNECT_NS
            log.info("fault_disconnect", ts_ns=update.ts_ns, gap_ms=_DISCONNECT_NS // NS_PER_MS)
            return None
        previous, self._last = self._last, update
        if previous is not None and cfg.stale_book_prob > 0 and self._draw() < cfg.stale_book_prob:
            return replace(previous, ts_ns=update.ts_ns)
        if cfg.crossed_book_prob > 0 and self._draw() < cfg.crossed_book_prob:
            return replace(update, bid_px=update.ask_px + 1, ask_px=update.bid_px)
        return update

    def trade_visible(self, ts_ns: int) -> bool:
        return ts_ns >= self.down_until_ns


def _fee_rate(bps: float) -> Decimal:
    # via str: the configured decimal text, not the binary float's expansion
    return Decimal(str(bps)) / _BPS


class SimVenue:
    """Matching engine for our orders over books owned by the sim loop."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        books: Mapping[str, L2Book],
        *,
        fee: FeeTier,
        latency: LatencyModel,
        queue: QueueModel,
        partial_fills: bool = True,
        faults: ReportFaults | None = None,
        fill_on_book_cross: bool = True,
        name: str = "sim",
    ) -> None:
        self.instruments = dict(instruments)
        self.books = books
        self.latency = latency
        self.queue = queue
        self.partial_fills = partial_fills
        self.faults = faults
        self.fill_on_book_cross = fill_on_book_cross
        self.name = name
        self.maker_rate = _fee_rate(fee.maker_bps)
        self.taker_rate = _fee_rate(fee.taker_bps)
        # our resting orders by symbol, side and price: the sim loop checks a
        # delta's price against these dicts before calling `on_depth`
        self.levels: dict[str, dict[int, dict[int, list[SimOrder]]]] = {
            s: {BID: {}, ASK: {}} for s in self.instruments
        }
        self.live: dict[str, SimOrder] = {}
        # mid (ticks) of each symbol's last sound touch: the venue's view fills carry
        self.mids: dict[str, float] = {}
        self._arrival: dict[str, int] = {}
        self._heap: list[tuple[int, int, int, object]] = []
        self._seq = 0
        self._fill_seq = 0
        self.counts = {
            "placed": 0, "rejected": 0, "post_only_rejects": 0, "cancelled": 0, "fills": 0
        }  # fmt: skip

    # --- commands in --------------------------------------------------------------

    def submit(self, cmd: Command, ts_ns: int) -> None:
        """A command sent by the bot at `ts_ns`; it acts after its latency."""
        if isinstance(cmd, Place):
            arrive = ts_ns + self.latency.entry_ns()
            self._arrival[cmd.client_order_id] = arrive
            self._push(arrive, _ARRIVE_PLACE, (cmd, ts_ns))
        elif isinstance(cmd, Cancel):
            # one connection keeps order: a cancel never overtakes its own place
            placed_at = self._arrival.get(cmd.client_order_id, 0)
            arrive = max(ts_ns + self.latency.cancel_ns(), placed_at)
            self._push(arrive, _ARRIVE_CANCEL, cmd)
        elif isinstance(cmd, CancelAll):
            self._push(ts_ns + self.latency.cancel_ns(), _ARRIVE_CANCEL_ALL, cmd)
        else:
            raise SimVenueError(f"{self.name} venue cannot execute {type(cmd).__name__}: {cmd!r}")

    def _push(self, ts_ns: int, kind: int, item: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts_ns, self._seq, kind, item))

    # --- time ----------------------------------------------------------------------

    def next_ts(self) -> int:
        heap = self._heap
        return heap[0][0] if heap else NEVER

    def pop_due(self, ts_ns: int) -> VenueReport | None:
        """Process venue work up to `ts_ns`; return the next report due, or None."""
        heap = self._heap
        while heap and heap[0][0] <= ts_ns:
            at, _, kind, item = heapq.heappop(heap)
            if kind == _DELIVER:
                return item  # type: ignore[return-value]
            if kind == _ARRIVE_PLACE:
                place, sent = cast(tuple[Place, int], item)
                self._arrive_place(place, sent, at)
            elif kind == _ARRIVE_CANCEL:
                self._arrive_cancel(item, at)  # type: ignore[arg-type]
            else:
                self._arrive_cancel_all(item, at)  # type: ignore[arg-type]
        return None

    def _report(self, report: VenueReport, venue_ts: int) -> None:
        response = self.latency.response_ns()
        deliver = venue_ts + response
        faults = self.faults
        if faults is None or not faults.active:
            self._push(deliver, _DELIVER, replace(report, ts_ns=deliver))
            return
        if isinstance(report, OrderAck | CancelAck) and faults.lose_ack():
            log.info("fault_ack_lost", client_order_id=report.client_order_id, ts_ns=venue_ts)
            return
        for extra in faults.delivery_offsets(response):
            self._push(deliver + extra, _DELIVER, replace(report, ts_ns=deliver + extra))

    # --- order entry ---------------------------------------------------------------

    def _arrive_place(self, cmd: Place, sent_ns: int, at: int) -> None:
        self._arrival.pop(cmd.client_order_id, None)
        reason = self._violation(cmd)
        if reason is None and self.faults is not None and self.faults.reject():
            reason = "injected fault: venue rejected the order"
        if reason is not None:
            self.counts["rejected"] += 1
            if reason.startswith(POST_ONLY_REJECT):
                self.counts["post_only_rejects"] += 1
            log.debug("order_rejected", client_order_id=cmd.client_order_id, reason=reason)
            self._report(OrderReject(at, cmd.symbol, cmd.client_order_id, reason), at)
            return
        order = SimOrder(
            cmd.symbol,
            cmd.client_order_id,
            cmd.side,
            cmd.px,
            cmd.qty,
            post_only=cmd.post_only,
            ts_send_ns=sent_ns,
            seq=self._seq,
        )
        self.counts["placed"] += 1
        self._report(OrderAck(at, cmd.symbol, cmd.client_order_id, f"{self.name}-{self._seq}"), at)
        if not cmd.post_only:
            self._take(order, at)
        if order.leaves > 0:
            self._rest(order)

    def _violation(self, cmd: Place) -> str | None:
        """The first venue rule the order breaks, named, or None."""
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            return f"symbol: {cmd.symbol!r} is not traded here ({', '.join(self.instruments)})"
        if cmd.client_order_id in self.live:
            return f"duplicate client_order_id {cmd.client_order_id!r}: already live"
        if not isinstance(cmd.px, int) or cmd.px <= 0:
            return f"tick: price {cmd.px!r} is not a positive number of ticks ({inst.tick_size})"
        if not isinstance(cmd.qty, int) or cmd.qty <= 0:
            return f"lot: qty {cmd.qty!r} is not a positive number of lots ({inst.lot_size})"
        if cmd.qty < inst.min_qty_lots:
            return f"min_qty: {cmd.qty} lots < {inst.min_qty_lots} lots"
        notional = inst.notional(cmd.px, cmd.qty)
        if notional < inst.min_notional:
            return f"min_notional: {notional} < {inst.min_notional}"
        book = self.books[cmd.symbol]
        crosses = cmd.px >= book.best_ask if cmd.side is Side.BUY else cmd.px <= book.best_bid
        if crosses and cmd.post_only:
            touch = book.best_ask if cmd.side is Side.BUY else book.best_bid
            return f"{POST_ONLY_REJECT}: post-only {cmd.side.name} @{cmd.px} would cross {touch}"
        return None

    def _take(self, order: SimOrder, at: int) -> None:
        """A marketable limit order sweeps the displayed book up to its price (taker)."""
        book = self.books[order.symbol]
        levels = book.asks if order.side is Side.BUY else book.bids
        for px, qty in book.depth(-int(order.side), len(levels)):
            crosses = px <= order.px if order.side is Side.BUY else px >= order.px
            if not crosses or order.leaves == 0:
                break
            self._fill(order, px, min(qty, order.leaves), Liquidity.TAKER, at)

    def _rest(self, order: SimOrder) -> None:
        side = int(order.side)
        self.queue.on_new(order, self.books[order.symbol].qty_at(side, order.px))
        self.levels[order.symbol][side].setdefault(order.px, []).append(order)
        self.live[order.client_order_id] = order

    def _unrest(self, order: SimOrder) -> None:
        self.live.pop(order.client_order_id, None)
        by_px = self.levels[order.symbol][int(order.side)]
        queue = by_px.get(order.px)
        if queue is not None:
            queue.remove(order)
            if not queue:
                del by_px[order.px]

    def _arrive_cancel(self, cmd: Cancel, at: int) -> None:
        order = self.live.get(cmd.client_order_id)
        if order is None:
            reason = "order not found: already filled, cancelled or never accepted"
            self._report(CancelReject(at, cmd.symbol, cmd.client_order_id, reason), at)
            return
        self._unrest(order)
        self.counts["cancelled"] += 1
        self._report(CancelAck(at, order.symbol, order.client_order_id), at)

    def _arrive_cancel_all(self, cmd: CancelAll, at: int) -> None:
        doomed = [o for o in self.live.values() if cmd.symbol is None or o.symbol == cmd.symbol]
        for order in sorted(doomed, key=lambda o: o.seq):
            self._unrest(order)
            self.counts["cancelled"] += 1
            self._report(CancelAck(at, order.symbol, order.client_order_id), at)

    # --- market in ----------------------------------------------------------------

    def on_depth(self, symbol: str, side: int, px: int, prev_qty: int, new_qty: int) -> None:
        """A depth change at a level where we rest (the loop checks `levels` first)."""
        orders = self.levels[symbol][side].get(px)
        if orders:
            on_depth = self.queue.on_depth
            for order in orders:
                on_depth(order, prev_qty, new_qty)

    def on_trade(self, symbol: str, ts_ns: int, aggressor: int, px: int, qty: int) -> None:
        """A market trade: fill our resting orders on the passive side at or through `px`."""
        # a sell aggressor hits bids at or above its price; a buy lifts asks at or below
        resting = self.levels[symbol][-aggressor]
        if not resting:
            return
        # most trades miss our levels: find the hit ones first, sort only those
        if aggressor == ASK:
            hit = [p for p in resting if p >= px]
            if not hit:
                return
            prices = sorted(hit, reverse=True)
        else:
            hit = [p for p in resting if p <= px]
            if not hit:
                return
            prices = sorted(hit)
        remaining = qty
        for level_px in prices:
            through = level_px != px
            for order in list(resting[level_px]):
                if through:
                    # the print is the last level of a sweep: ours, before it, went whole
                    self._fill(order, order.px, order.leaves, Liquidity.MAKER, ts_ns)
                    continue
                if remaining <= 0:
                    return
                reach = self.queue.on_trade(order, remaining)
                if reach <= 0:
                    continue
                lots = min(reach, order.leaves) if self.partial_fills else order.leaves
                remaining -= lots
                self._fill(order, order.px, lots, Liquidity.MAKER, ts_ns)

    def on_touch(self, symbol: str, ts_ns: int) -> None:
        """After a message moved the touch: fill orders the opposite side now crosses,
        then take the new touch's mid as the market fills are priced against."""
        book = self.books[symbol]
        best_bid, best_ask = book.best_bid, book.best_ask
        if best_bid == NO_BID or best_ask == NO_ASK or best_bid >= best_ask:
            return  # one-sided, or the feed itself is crossed: no evidence of a market
        if self.fill_on_book_cross:
            self._fill_crossed(symbol, best_bid, best_ask, ts_ns)
        self.mids[symbol] = (best_bid + best_ask) / 2

    def _fill_crossed(self, symbol: str, best_bid: int, best_ask: int, ts_ns: int) -> None:
        levels = self.levels[symbol]
        # called on every touch change: the common answer "nothing crossed" costs
        # one list comprehension per side, and sorting only runs on a real cross
        if crossed := [p for p in levels[BID] if p >= best_ask]:
            for px in sorted(crossed, reverse=True):
                for order in list(levels[BID][px]):
                    self._fill(order, order.px, order.leaves, Liquidity.MAKER, ts_ns)
        if crossed := [p for p in levels[ASK] if p <= best_bid]:
            for px in sorted(crossed):
                for order in list(levels[ASK][px]):
                    self._fill(order, order.px, order.leaves, Liquidity.MAKER, ts_ns)

    def on_snapshot(self, symbol: str) -> None:
        """A snapshot replaced the book: our orders restart behind its displayed size."""
        book = self.books[symbol]
        on_new = self.queue.on_new
        for side, by_px in self.levels[symbol].items():
            for px, orders in by_px.items():
                level_qty = book.qty_at(side, px)
                for order in orders:
                    on_new(order, level_qty)

    def _fill(self, order: SimOrder, px: int, lots: int, liquidity: Liquidity, at: int) -> None:
        inst = self.instruments[order.symbol]
        # the market the match met: the touch before the message that filled us (a
        # book moving through our price is adverse selection, not spread captured)
        mid = self.mids.get(order.symbol, 0.0)
        rate = self.maker_rate if liquidity is Liquidity.MAKER else self.taker_rate
        fee = inst.notional(px, lots) * rate
        order.leaves -= lots
        self._fill_seq += 1
        self.counts["fills"] += 1
        trade_id = f"{self.name}-{order.symbol}-{self._fill_seq}"
        if order.leaves == 0 and order.client_order_id in self.live:
            self._unrest(order)
        fill = OrderFill(
            at, order.symbol, order.client_order_id, trade_id, order.side, px, lots, liquidity,
            fee, match_ts_ns=at, match_mid_px=mid,
        )  # fmt: skip
        self._report(fill, at)

    # --- state for the loop and for tests -----------------------------------------

    def resting(self, symbol: str, side: int) -> dict[int, list[SimOrder]]:
        return self.levels[symbol][side]


def build_sim_venue(
    settings: Settings,
    instruments: Mapping[str, Instrument],
    books: Mapping[str, L2Book],
    seed: int,
) -> SimVenue:
    """The paper-mode venue as the settings describe it."""
    sim = settings.sim
    return SimVenue(
        instruments,
        books,
        fee=settings.fees.tiers[settings.fees.tier],
        latency=latency_from(sim, seed),
        queue=queue_model(sim.queue_model, sim.queue_power),
        partial_fills=sim.partial_fills,
        faults=ReportFaults(sim.faults, seed),
        name="sim",
    )
