"""Order state machine (one transition table) and the diff of wanted vs live quotes.

Orders are event-sourced: `Order.apply(report)` classifies the venue report,
refuses a trade id it already applied, looks the transition up in `TRANSITIONS`
and updates the fill state. The table records how real venues behave:
acks that arrive after fills, fills racing our cancel, fills after the cancel
ack, cancel-rejects for orders that already filled (STYLE.md §1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Final

from bot.model import (
    Cancel,
    CancelAck,
    CancelReject,
    OrderAck,
    OrderExpired,
    OrderFill,
    OrderReject,
    Place,
    Side,
    VenueReport,
)
from bot.strategy import Quote


class Status(Enum):
    # Identity hash: members are singletons, and Enum's default hash is a Python
    # call that dominated the table lookups on the hot path.
    __hash__ = object.__hash__

    PENDING_NEW = "PENDING_NEW"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class OrderEvent(Enum):
    """What happened to an order; a fill is PARTIAL_FILL or FILL by what remains."""

    __hash__ = object.__hash__

    ACK = "ack"
    REJECT = "reject"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL_SENT = "cancel"
    CANCEL_ACK = "cancel_ack"
    CANCEL_REJECT = "cancel_reject"
    EXPIRED = "expired"


S = Status
E = OrderEvent
# A cancel-reject returns the order to its working status, which depends on what
# happened meanwhile (an ack or fills may have arrived while the cancel was in
# flight); the table names it with this marker and the order works it out.
RESTORE: Final = None

TRANSITIONS: Final[dict[tuple[Status, OrderEvent], Status | None]] = {
    (S.PENDING_NEW, E.ACK): S.OPEN,
    (S.PENDING_NEW, E.REJECT): S.REJECTED,
    (S.PENDING_NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,  # fill overtook the ack
    (S.PENDING_NEW, E.FILL): S.FILLED,
    (S.PENDING_NEW, E.CANCEL_SENT): S.PENDING_CANCEL,  # cancel by client id before ack
    (S.PENDING_NEW, E.EXPIRED): S.EXPIRED,
    (S.OPEN, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.OPEN, E.FILL): S.FILLED,
    (S.OPEN, E.CANCEL_SENT): S.PENDING_CANCEL,
    (S.OPEN, E.CANCEL_ACK): S.CANCELED,  # venue-initiated cancel (e.g. self-trade prevention)
    (S.OPEN, E.EXPIRED): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.ACK): S.PARTIALLY_FILLED,  # ack after the first fill
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL_SENT): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.CANCEL_ACK): S.CANCELED,
    (S.PARTIALLY_FILLED, E.EXPIRED): S.EXPIRED,
    (S.PENDING_CANCEL, E.ACK): S.PENDING_CANCEL,  # the place ack trails our cancel
    (S.PENDING_CANCEL, E.REJECT): S.REJECTED,  # cancelled before the place was refused
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,  # fill raced our cancel
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.PENDING_CANCEL, E.CANCEL_ACK): S.CANCELED,
    (S.PENDING_CANCEL, E.CANCEL_REJECT): RESTORE,
    (S.PENDING_CANCEL, E.EXPIRED): S.EXPIRED,
    (S.FILLED, E.ACK): S.FILLED,  # late ack
    (S.FILLED, E.CANCEL_REJECT): S.FILLED,  # "too late to cancel": it filled
    (S.CANCELED, E.ACK): S.CANCELED,
    (S.CANCELED, E.PARTIAL_FILL): S.CANCELED,  # late fill; the rest stays cancelled
    (S.CANCELED, E.FILL): S.FILLED,  # late fill of everything: the cancel lost
    (S.CANCELED, E.CANCEL_ACK): S.CANCELED,  # duplicate delivery
    # our cancel reached the venue after a cancel-all (sent later, delivered sooner) had
    # taken the order: "order not found"; it is gone either way
    (S.CANCELED, E.CANCEL_REJECT): S.CANCELED,
    # our cancel was sent before the venue refused the place (post-only, with latency):
    # it then finds no order, "order not found"; refused either way
    (S.REJECTED, E.CANCEL_REJECT): S.REJECTED,
    (S.EXPIRED, E.ACK): S.EXPIRED,
    (S.EXPIRED, E.PARTIAL_FILL): S.EXPIRED,
    (S.EXPIRED, E.FILL): S.FILLED,
    (S.EXPIRED, E.EXPIRED): S.EXPIRED,
}

WORKING: Final = frozenset({S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED})
TERMINAL: Final = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})


class OrderError(Exception):
    """Base of the order errors; `client_order_id` says which order."""

    def __init__(self, client_order_id: str, message: str) -> None:
        super().__init__(f"order {client_order_id}: {message}")
        self.client_order_id = client_order_id


class InvalidTransition(OrderError):
    """An event that the table does not allow in the order's current status."""

    def __init__(self, client_order_id: str, status: Status, event: OrderEvent) -> None:
        super().__init__(client_order_id, f"{event.value} is not allowed in status {status.value}")
        self.status = status
        self.event = event


class ImpossibleFill(OrderError):
    """A fill that cannot belong to the order: beyond its remaining size or on the other side."""


def next_status(client_order_id: str, status: Status, event: OrderEvent) -> Status | None:
    """The table lookup; `None` (RESTORE) means back to the status before the cancel."""
    key = (status, event)
    if key not in TRANSITIONS:
        raise InvalidTransition(client_order_id, status, event)
    return TRANSITIONS[key]


class Applied(Enum):
    """What a venue report did to our book of orders."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # same trade id again, or a re-delivered ack


class Order:
    """One of our orders; mutable state driven only through `apply` / `request_cancel`."""

    __slots__ = (
        "acked",
        "client_order_id",
        "filled_qty",
        "px",
        "qty",
        "side",
        "status",
        "symbol",
        "trade_ids",
        "ts_ack_ns",
        "ts_sent_ns",
        "venue_order_id",
    )

    def __init__(self, place: Place) -> None:
        self.client_order_id = place.client_order_id
        self.symbol = place.symbol
        self.side = place.side
        self.px = place.px
        self.qty = place.qty
        self.filled_qty = 0
        self.status = Status.PENDING_NEW
        self.ts_sent_ns = place.ts_ns
        self.ts_ack_ns = 0
        self.venue_order_id = ""
        self.acked = False
        # a tuple, not a set: few fills per order, and an empty tuple is free
        # for the garbage collector (thousands of recent orders stay in memory)
        self.trade_ids: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Order({self.client_order_id} {self.side.name} {self.qty}@{self.px} "
            f"filled={self.filled_qty} {self.status.value})"
        )

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    def request_cancel(self) -> None:
        """We are sending a cancel; raises InvalidTransition if it makes no sense."""
        self._move(OrderEvent.CANCEL_SENT)

    def apply(self, report: VenueReport) -> Applied:
        """Apply a venue report about this order.

        Raises InvalidTransition for a report the table refuses and ImpossibleFill
        for a fill beyond the order's size; both mean the venue sent the
        impossible, and the order is left unchanged.
        """
        if isinstance(report, OrderFill):
            return self._apply_fill(report)
        if isinstance(report, OrderAck):
            if self.acked:
                return Applied.DUPLICATE
            self._move(OrderEvent.ACK)
            self.acked = True
            self.ts_ack_ns = report.ts_ns
            self.venue_order_id = report.venue_order_id
            return Applied.APPLIED
        self._move(_EVENT_OF[type(report)])
        return Applied.APPLIED

    def _apply_fill(self, fill: OrderFill) -> Applied:
        if fill.trade_id in self.trade_ids:
            return Applied.DUPLICATE
        if fill.qty <= 0 or fill.qty > self.remaining:
            raise ImpossibleFill(
                self.client_order_id,
                f"fill {fill.trade_id} of {fill.qty} lots with {self.remaining} of "
                f"{self.qty} remaining",
            )
        if fill.side is not self.side:
            raise ImpossibleFill(
                self.client_order_id,
                f"fill {fill.trade_id} is {fill.side.name} on a {self.side.name} order",
            )
        event = OrderEvent.FILL if fill.qty == self.remaining else OrderEvent.PARTIAL_FILL
        self._move(event)
        self.filled_qty += fill.qty
        self.trade_ids += (fill.trade_id,)
        return Applied.APPLIED

    def _move(self, event: OrderEvent) -> None:
        target = next_status(self.client_order_id, self.status, event)
        self.status = self._working_status() if target is RESTORE else target

    def _working_status(self) -> Status:
        if self.filled_qty:
            return Status.PARTIALLY_FILLED
        return Status.OPEN if self.acked else Status.PENDING_NEW


_EVENT_OF: Final[dict[type, OrderEvent]] = {
    OrderReject: OrderEvent.REJECT,
    CancelAck: OrderEvent.CANCEL_ACK,
    CancelReject: OrderEvent.CANCEL_REJECT,
    OrderExpired: OrderEvent.EXPIRED,
}


# --- client order ids -----------------------------------------------------------------

# Bybit's orderLinkId: at most 36 characters of letters, digits, '-' and '_'.
MAX_CLIENT_ID_LEN: Final = 36
_COUNTER_WIDTH: Final = 10  # base-36 digits: ~3.6e15 ids per run before the id grows
_PREFIX_OK: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


class ClientOrderIds:
    """`<prefix>-<counter in base 36>`; the prefix carries the run id, so ids
    stay unique across restarts as long as the shell gives each run a new id."""

    __slots__ = ("_counter", "_high", "prefix")

    def __init__(self, prefix: str, start: int = 0) -> None:
        if not _PREFIX_OK.match(prefix):
            raise ValueError(f"client id prefix {prefix!r}: use letters, digits, '-' or '_'")
        if len(prefix) + 1 + _COUNTER_WIDTH > MAX_CLIENT_ID_LEN:
            longest = MAX_CLIENT_ID_LEN - 1 - _COUNTER_WIDTH
            raise ValueError(f"client id prefix {prefix!r} is longer than {longest} characters")
        self.prefix = prefix
        self._counter = start
        self._high: str | None = None  # base-36 digits of counter // 36, kept between calls

    def next(self) -> str:
        self._counter += 1
        n = self._counter
        low = n % 36
        # the higher digits change once every 36 ids: convert them only then
        if low == 0 or self._high is None:
            self._high = _base36(n // 36)
        return f"{self.prefix}-{self._high}{_DIGITS[low]}"


def _base36(n: int) -> str:
    """Digits of n >= 0 in base 36, no leading zeros ("" for 0)."""
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = _DIGITS[r] + digits
    return digits


# --- diff of wanted vs live quotes ----------------------------------------------------


def diff(
    wanted: Sequence[Quote],
    live: Iterable[Order],
    *,
    ts_ns: int,
    next_id: Callable[[], str],
    threshold_bps: float,
    max_age_ns: int,
    post_only: bool = True,
    reduce_only: bool = False,
) -> tuple[list[Cancel], list[Place]]:
    """The fewest messages that turn `live` into `wanted`.

    A working order is kept when it has the wanted side and size, its price is
    within `threshold_bps` of a wanted price and it is younger than
    `max_age_ns`; each wanted quote keeps at most one order (the closest).
    Every other working order is cancelled and every unmatched quote placed.
    Orders already pending cancel (or done) are left alone: never cancelled twice.
    """
    working = [o for o in live if o.status in WORKING]
    kept = [False] * len(working)
    places: list[Place] = []
    for quote in wanted:
        side, qty, px = quote.side, quote.qty, quote.px
        # "within the threshold": |live - wanted| * 1e4 <= threshold_bps * wanted
        limit = threshold_bps * px
        best = -1
        best_gap = -1
        for i, order in enumerate(working):
            if kept[i] or order.side is not side or order.qty != qty:
                continue
            gap = abs(order.px - px)
            if ts_ns - order.ts_sent_ns >= max_age_ns or gap * 1e4 > limit:
                continue
            if best < 0 or gap < best_gap:
                best, best_gap = i, gap
        if best >= 0:
            kept[best] = True
        else:
            places.append(
                Place(ts_ns, quote.symbol, next_id(), side, px, qty, post_only, reduce_only)
            )
    cancels = [
        Cancel(ts_ns, order.symbol, order.client_order_id)
        for order, keep in zip(working, kept, strict=True)
        if not keep
    ]
    return cancels, places


def reduces(side: Side, position_lots: int) -> bool:
    """True when an order on `side` brings the position toward zero."""
    return position_lots * side < 0
