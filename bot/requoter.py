"""One symbol's quoting cycle: wanted quotes -> diff against live orders -> commands.

The requoter holds what the engine knows of one symbol's touch and of its own
quoting: the policy (bot/strategy.py), the live orders (from the order
registry), what it last journaled and the last cycle that asked for nothing
(its "settled" record). It writes that symbol's ``quotes`` and ``orders`` rows.

Most touch changes cannot change our orders, and the cycle proves that cheaply
instead of redoing the work (exact shortcuts, not heuristics; each is checked
against the plain computation in tests/unit/test_perf_hot_path.py):

1. Nothing the wanted set depends on moved since the settled cycle (touch and
   volatility move only with ``book_seq``; the position only with a fill, which
   changes the orders' ``version``): the answer is the settled one, nothing.
2. The policy returns the very same tuple when the rounded prices did not
   move: same wanted set, same orders, so the diff again asks for nothing.
3. Each side has one quote and one working order, and every order still has
   its quote's side and size within the re-quote threshold: the diff would
   keep every order and place nothing, so it is not run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Final

from bot.model import Command, Instrument, Place
from bot.order_registry import OrderRegistry
from bot.orders import WORKING, ClientOrderIds, Order, OrderError, diff, reduces
from bot.risk import RiskEngine
from bot.strategy import Quote, QuotePolicy
from bot.trading_state import TradingState

_FROZEN: Final = TradingState.FROZEN
_HALTED: Final = TradingState.HALTED
_REDUCING: Final = TradingState.REDUCING
_NEVER: Final = 1 << 62

# (wanted, orders version, trading state, first ts at which a working order ages
# out, book_seq) of the last cycle whose diff asked for nothing
Settled = tuple[tuple[Quote, ...], int, TradingState | None, int, int]
UNSETTLED: Final[Settled] = ((), -1, None, -1, -1)


class RequoterError(Exception):
    """The engine broke one of its own rules while quoting: a bug, fail loudly."""


def _divisor(step: Decimal) -> float:
    """n / divisor == n * step as a float; exact-rounded when 1/step is an integer."""
    return float(1 / step)


class Requoter:
    """Quoting state and cycle of one symbol."""

    __slots__ = (
        "_cross",
        "_ids",
        "_kept",
        "_post_only",
        "_rec",
        "_registry",
        "_risk",
        "ask_px",
        "ask_qty",
        "bid_px",
        "bid_qty",
        "blocks",
        "book_seq",
        "cancels",
        "journaled",
        "live",
        "mid_px",
        "places",
        "policy",
        "px_div",
        "qty_div",
        "requote_due",
        "settled",
        "symbol",
        "usd_per_tick_lot",
        "version",
    )

    def __init__(
        self,
        instrument: Instrument,
        policy: QuotePolicy,
        *,
        registry: OrderRegistry,
        risk: RiskEngine,
        ids: ClientOrderIds,
        record: Callable[..., None],
        cross: CrossSymbol,
        post_only: bool,
    ) -> None:
        self.symbol = instrument.symbol
        self.policy = policy
        self.px_div = _divisor(instrument.tick_size)
        self.qty_div = _divisor(instrument.lot_size)
        self.usd_per_tick_lot = float(instrument.tick_size * instrument.lot_size)
        self.bid_px = 0
        self.bid_qty = 0
        self.ask_px = 0
        self.ask_qty = 0
        self.mid_px = 0.0  # ticks; 0 until the first valid book
        self.book_seq = 0  # bumped whenever the touch (prices or sizes) changes
        self.live = registry.live(self.symbol)
        # bumped whenever one of our orders on this symbol is sent, cancelled or
        # changed by a report: the diff's other input besides the wanted set
        self.version = 0
        self.requote_due = False  # a cycle was throttled: run it at the next event
        self.journaled: tuple[Quote, ...] | None = None  # the wanted set last journaled
        self.settled: Settled = UNSETTLED
        # the settled cycle's working orders, one per wanted quote, when each side
        # has one quote and one order (shortcut 3); None otherwise
        self._kept: tuple[Order, ...] | None = None
        self.places = 0
        self.cancels = 0
        self.blocks = 0
        self._registry = registry
        self._risk = risk
        self._ids = ids
        self._rec = record
        self._cross = cross
        self._post_only = post_only

    def orders_changed(self) -> None:
        """A report changed one of our orders: the settled answer no longer holds."""
        self.version += 1

    # --- the cycle --------------------------------------------------------------------

    def cycle(self, ts: int, state: TradingState, *, force: bool = False) -> list[Command]:
        """Wanted quotes -> diff against live orders -> risk-checked commands."""
        if self.mid_px <= 0 or state is _FROZEN or state is _HALTED:
            return []
        if not force and not self.policy.may_requote(ts):
            self.requote_due = True
            return []
        self.requote_due = False
        settled = self.settled
        fresh = settled[1] == self.version and settled[2] is state and ts < settled[3]
        if fresh and settled[4] == self.book_seq:
            return []  # shortcut 1
        position = self._cross.position_lots(self.symbol)
        wanted = self._wanted(ts, state, position)
        if fresh and (wanted is settled[0] or self._still_kept(wanted)):
            # shortcuts 2 and 3: the settled cycle now stands for this touch too
            self.settled = (wanted, settled[1], state, settled[3], self.book_seq)
            return []
        return self._requote(ts, state, wanted, position)

    def _wanted(self, ts: int, state: TradingState, position: int) -> tuple[Quote, ...]:
        """The policy's wanted set (only the reducing side while REDUCING), journaled
        when it changes: quotes rows are decisions, not one per touch (bot/journal.py)."""
        wanted = self.policy.wanted(
            ts, self.bid_px, self.bid_qty, self.ask_px, self.ask_qty, position
        )
        if state is _REDUCING:
            wanted = tuple(q for q in wanted if reduces(q.side, position))
        if wanted != self.journaled:
            self.journaled = wanted
            self._quote_rows(ts, wanted)
        return wanted

    def _still_kept(self, wanted: tuple[Quote, ...]) -> bool:
        """True when `diff` would keep every settled order for `wanted` (shortcut 3).

        With one working order and one quote per side, the diff's only candidate
        for a quote is the order of its side, kept when it has the quote's size and
        its price is within the threshold (the same test as `diff`'s). Age needs no
        test: the caller checked that no working order has aged out yet.
        """
        kept = self._kept
        if kept is None or len(kept) != len(wanted):
            return False
        threshold = self.policy.requote_threshold_bps
        # lengths checked above; the strict check costs a fifth of this loop
        for quote, order in zip(wanted, kept, strict=False):
            px = quote.px
            if (
                order.side is not quote.side
                or order.qty != quote.qty
                or abs(order.px - px) * 1e4 > threshold * px
            ):
                return False
        return True

    def _requote(
        self, ts: int, state: TradingState, wanted: tuple[Quote, ...], position: int
    ) -> list[Command]:
        policy = self.policy
        cancels, places = diff(
            wanted,
            self.live.values(),
            ts_ns=ts,
            next_id=self._ids.next,
            threshold_bps=policy.requote_threshold_bps,
            max_age_ns=policy.max_quote_age_ns,
            post_only=self._post_only,
            reduce_only=state is _REDUCING,
        )
        if not cancels and not places:
            self._settle(wanted, state)
            return []
        policy.requoted(ts)
        self.version += 1
        commands: list[Command] = []
        for cancel in cancels:
            self._send_cancel(self.live[cancel.client_order_id], ts)
            commands.append(cancel)
        self.cancels += len(cancels)
        if places:
            commands.extend(self._checked_places(places, position, ts))
        return commands

    def _settle(self, wanted: tuple[Quote, ...], state: TradingState) -> None:
        """Remember a diff that asked for nothing.

        Its result depends on the wanted set, the orders (their sides, sizes,
        prices, statuses: all covered by `version`), the trading state (reduce-only)
        and time only through the max-age test `ts - sent >= max_age`. Every working
        order passed that test here (an aged one would have been cancelled), so
        until the oldest one ages out the same inputs give the same empty answer.
        """
        working = [o for o in self.live.values() if o.status in WORKING]
        if working:
            oldest = min(o.ts_sent_ns for o in working)
            ages_out = oldest + self.policy.max_quote_age_ns
        else:
            ages_out = _NEVER
        self.settled = (wanted, self.version, state, ages_out, self.book_seq)
        self._kept = _one_per_side(wanted, working)

    def _send_cancel(self, order: Order, ts: int) -> None:
        try:
            order.request_cancel()
        except OrderError as exc:
            raise RequoterError(f"cancel of {order!r}: {exc}") from exc
        self._risk.check_cancel(ts)
        self.order_row(ts, order, "cancel")

    def _checked_places(self, places: list[Place], position: int, ts: int) -> list[Command]:
        risk = self._risk
        cross = self._cross
        open_orders = cross.working_count()
        total_inventory = cross.total_inventory_usd()
        sent: list[Command] = []
        for place in places:
            denied = risk.check_new(
                place,
                mid_px=self.mid_px,
                position_lots=position,
                open_orders=open_orders,
                total_inventory_usd=total_inventory,
            )
            if denied is not None:
                self._rec("risk", *risk.denial_event(denied, ts, self.symbol).row())
                self.blocks += 1
                continue
            order = Order(place)
            self._registry.add(order)
            self.order_row(ts, order, "place")
            open_orders += 1
            sent.append(place)
        self.places += len(sent)
        return sent

    def cancel_working(self, ts: int, reason: str) -> int:
        """Mark every working order pending cancel (the shell sends one CancelAll)."""
        self.version += 1
        count = 0
        for order in self.live.values():
            if order.status in WORKING:
                order.request_cancel()
                self.order_row(ts, order, "cancel", reason)
                count += 1
        return count

    # --- journal rows -------------------------------------------------------------------

    def _quote_rows(self, ts: int, wanted: tuple[Quote, ...]) -> None:
        rec = self._rec
        symbol = self.symbol
        px_div, qty_div = self.px_div, self.qty_div
        mid = self.mid_px / px_div
        for q in wanted:
            rec("quotes", ts, symbol, int(q.side), q.level, q.px / px_div, q.qty / qty_div, mid)

    def order_row(self, ts: int, order: Order, event: str, reason: str = "") -> None:
        self._rec(
            "orders", ts, order.symbol, order.client_order_id, event, int(order.side),
            order.px / self.px_div, order.qty / self.qty_div, order.status._value_,
            order.ts_sent_ns, order.ts_ack_ns, reason,
        )  # fmt: skip


class CrossSymbol:
    """What a symbol's cycle needs to know about all symbols: positions, open orders
    and total inventory (for the pre-trade checks)."""

    __slots__ = ("_registry", "_requoters", "position_lots")

    def __init__(
        self,
        position_lots: Callable[[str], int],
        registry: OrderRegistry,
        requoters: Mapping[str, Requoter],
    ) -> None:
        self.position_lots = position_lots  # the portfolio's, called as is: no extra frame
        self._registry = registry
        self._requoters = requoters

    def working_count(self) -> int:
        return self._registry.working_count()

    def total_inventory_usd(self) -> float:
        position = self.position_lots
        return sum(
            abs(position(q.symbol)) * q.mid_px * q.usd_per_tick_lot
            for q in self._requoters.values()
        )


def _one_per_side(wanted: tuple[Quote, ...], working: list[Order]) -> tuple[Order, ...] | None:
    """The working order of each wanted quote's side, when there is exactly one per side
    and as many orders as quotes (the settled diff matched them one to one)."""
    if len(working) != len(wanted) or len(working) > 2:
        return None
    if len(working) == 2 and working[0].side is working[1].side:
        return None
    by_side = {o.side: o for o in working}
    return tuple(by_side[q.side] for q in wanted)
