"""Order state machine (every table row, every refused pair), fill idempotency, ids, diff."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest

from bot.model import (
    Cancel,
    CancelAck,
    CancelReject,
    Liquidity,
    OrderAck,
    OrderExpired,
    OrderFill,
    OrderReject,
    Place,
    Side,
    VenueReport,
)
from bot.orders import (
    MAX_CLIENT_ID_LEN,
    TERMINAL,
    TRANSITIONS,
    WORKING,
    Applied,
    ClientOrderIds,
    ImpossibleFill,
    InvalidTransition,
    Order,
    OrderEvent,
    Status,
    diff,
    reduces,
)
from bot.strategy import Quote

SYM = "BTCUSDT"
CID = "run1-1"
QTY = 10


def new_order(
    side: Side = Side.BUY, px: int = 1000, qty: int = QTY, ts: int = 0, cid: str = CID
) -> Order:
    return Order(Place(ts, SYM, cid, side, px, qty))


_trade_ids = itertools.count()


def fill(
    qty: int, trade_id: str | None = None, side: Side = Side.BUY, cid: str = CID, ts: int = 5
) -> OrderFill:
    tid = trade_id if trade_id is not None else f"t{next(_trade_ids)}"
    return OrderFill(ts, SYM, cid, tid, side, 1000, qty, Liquidity.MAKER, Decimal("-0.001"))


def drive(order: Order, event: OrderEvent) -> None:
    """Send `event` to the order through its public API."""
    if event is OrderEvent.CANCEL_SENT:
        order.request_cancel()
        return
    reports: dict[OrderEvent, VenueReport | None] = {
        OrderEvent.ACK: OrderAck(1, SYM, CID, "v1"),
        OrderEvent.REJECT: OrderReject(1, SYM, CID, "post-only would cross"),
        OrderEvent.PARTIAL_FILL: fill(1) if order.remaining > 1 else None,
        OrderEvent.FILL: fill(order.remaining),
        OrderEvent.CANCEL_ACK: CancelAck(1, SYM, CID),
        OrderEvent.CANCEL_REJECT: CancelReject(1, SYM, CID, "order not found"),
        OrderEvent.EXPIRED: OrderExpired(1, SYM, CID),
    }
    report = reports[event]
    assert report is not None
    order.apply(report)


def order_in(status: Status) -> Order:
    order = new_order()
    order.status = status
    return order


@pytest.mark.parametrize(("status", "event"), sorted(TRANSITIONS, key=str))
def test_every_row_of_the_table(status: Status, event: OrderEvent) -> None:
    order = order_in(status)
    expected = TRANSITIONS[(status, event)]
    drive(order, event)
    if expected is None:  # cancel-reject: back to the working status (nothing acked/filled)
        expected = Status.PENDING_NEW
    assert order.status is expected


_MISSING = [(s, e) for s in Status for e in OrderEvent if (s, e) not in TRANSITIONS]


@pytest.mark.parametrize(("status", "event"), _MISSING, ids=str)
def test_every_missing_pair_is_refused_and_changes_nothing(
    status: Status, event: OrderEvent
) -> None:
    order = order_in(status)
    with pytest.raises(InvalidTransition) as info:
        drive(order, event)
    assert info.value.status is status and info.value.event is event
    assert CID in str(info.value) and status.value in str(info.value)
    assert order.status is status
    assert order.filled_qty == 0


def test_terminal_states_refuse_a_new_cancel() -> None:
    for status in (Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED):
        with pytest.raises(InvalidTransition):
            order_in(status).request_cancel()
    with pytest.raises(InvalidTransition):  # never cancelled twice
        order_in(Status.PENDING_CANCEL).request_cancel()


def test_life_of_an_order() -> None:
    order = new_order()
    assert order.status is Status.PENDING_NEW and order.status in WORKING
    assert order.apply(OrderAck(10, SYM, CID, "v9")) is Applied.APPLIED
    assert (order.status, order.ts_ack_ns, order.venue_order_id) == (Status.OPEN, 10, "v9")
    order.apply(fill(4))
    assert (order.status, order.filled_qty, order.remaining) == (Status.PARTIALLY_FILLED, 4, 6)
    order.apply(fill(6))
    assert order.status is Status.FILLED and order.status in TERMINAL
    assert order.status not in WORKING


def test_duplicate_trade_id_changes_nothing() -> None:
    order = new_order()
    order.apply(OrderAck(1, SYM, CID))
    assert order.apply(fill(3, "T1")) is Applied.APPLIED
    assert order.apply(fill(3, "T1")) is Applied.DUPLICATE
    assert (order.filled_qty, order.status) == (3, Status.PARTIALLY_FILLED)
    assert order.apply(OrderAck(2, SYM, CID)) is Applied.DUPLICATE
    assert order.ts_ack_ns == 1


def test_fill_before_ack_then_late_ack() -> None:
    order = new_order()
    order.apply(fill(QTY))
    assert order.status is Status.FILLED
    assert order.apply(OrderAck(9, SYM, CID)) is Applied.APPLIED
    assert order.status is Status.FILLED and order.ts_ack_ns == 9


def test_fill_racing_a_cancel_and_late_fill_after_cancel() -> None:
    order = new_order()
    order.apply(OrderAck(1, SYM, CID))
    order.request_cancel()
    order.apply(fill(2))  # raced the cancel
    assert order.status is Status.PENDING_CANCEL and order.filled_qty == 2
    order.apply(CancelAck(3, SYM, CID))
    assert order.status is Status.CANCELED
    order.apply(fill(3))  # late fill: position must still see it
    assert order.status is Status.CANCELED and order.filled_qty == 5
    order.apply(fill(5))  # everything filled after all
    assert order.status is Status.FILLED


def test_cancel_reject_restores_the_working_status() -> None:
    order = new_order()
    order.request_cancel()  # before the ack
    order.apply(OrderAck(2, SYM, CID))  # ack trails the cancel
    order.apply(CancelReject(3, SYM, CID, "too late"))
    assert order.status is Status.OPEN
    order.request_cancel()
    order.apply(fill(4))
    order.apply(CancelReject(4, SYM, CID, "too late"))
    assert order.status is Status.PARTIALLY_FILLED


def test_cancel_reject_after_fill_is_legal() -> None:
    order = new_order()
    order.apply(OrderAck(1, SYM, CID))
    order.request_cancel()
    order.apply(fill(QTY))
    assert order.status is Status.FILLED
    assert order.apply(CancelReject(5, SYM, CID, "filled")) is Applied.APPLIED
    assert order.status is Status.FILLED


def test_cancel_reject_after_the_place_was_refused_is_legal() -> None:
    # 600 ms of latency on the real capture: the bot cancels a quote whose post-only
    # place the venue then refuses; the cancel arrives after and finds no order
    order = new_order()
    order.request_cancel()
    order.apply(OrderReject(2, SYM, CID, "EC_PostOnlyWillTakeLiquidity"))
    assert order.status is Status.REJECTED
    assert order.apply(CancelReject(3, SYM, CID, "order not found")) is Applied.APPLIED
    assert order.status is Status.REJECTED


def test_overfill_and_wrong_side_are_refused() -> None:
    order = new_order()
    order.apply(fill(8))
    with pytest.raises(ImpossibleFill, match="3 lots with 2 of 10 remaining"):
        order.apply(fill(3))
    with pytest.raises(ImpossibleFill, match="SELL on a BUY order"):
        order.apply(fill(1, side=Side.SELL))
    with pytest.raises(ImpossibleFill):
        order.apply(fill(0))
    assert (order.filled_qty, order.status) == (8, Status.PARTIALLY_FILLED)


# --- client order ids ---------------------------------------------------------------------


def test_client_order_ids_are_short_unique_and_base36() -> None:
    ids = ClientOrderIds("r20240808T000000-ab12")
    made = [ids.next() for _ in range(5000)]
    assert len(set(made)) == 5000
    assert made[0] == "r20240808T000000-ab12-1"
    assert made[35] == "r20240808T000000-ab12-10"  # 36 in base 36
    assert all(len(i) <= MAX_CLIENT_ID_LEN for i in made)
    restarted = ClientOrderIds("r20240808T000100-cd34")
    assert not set(made) & {restarted.next() for _ in range(5000)}


def test_client_order_id_prefix_is_checked() -> None:
    with pytest.raises(ValueError, match="longer than 25"):
        ClientOrderIds("x" * 26)
    with pytest.raises(ValueError, match="letters, digits"):
        ClientOrderIds("run 1")
    ClientOrderIds("x" * 25)


# --- diff ------------------------------------------------------------------------------------


def ids_from(prefix: str = "n") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def q(side: Side, px: int, qty: int = QTY, level: int = 0) -> Quote:
    return Quote(SYM, side, level, px, qty)


def live(
    side: Side, px: int, cid: str, qty: int = QTY, ts: int = 0, status: Status = Status.OPEN
) -> Order:
    order = new_order(side, px, qty, ts, cid)
    order.status = status
    return order


def run_diff(
    wanted: list[Quote],
    orders: list[Order],
    ts: int = 1_000,
    threshold_bps: float = 1.0,
    max_age_ns: int = 10**12,
) -> tuple[list[Cancel], list[Place]]:
    return diff(
        wanted,
        orders,
        ts_ns=ts,
        next_id=ids_from(),
        threshold_bps=threshold_bps,
        max_age_ns=max_age_ns,
    )


def test_diff_places_everything_when_nothing_is_live() -> None:
    cancels, places = run_diff([q(Side.BUY, 99_990), q(Side.SELL, 100_010)], [])
    assert cancels == []
    assert places == [
        Place(1_000, SYM, "n1", Side.BUY, 99_990, QTY),
        Place(1_000, SYM, "n2", Side.SELL, 100_010, QTY),
    ]


def test_diff_keeps_orders_within_the_threshold() -> None:
    # 1 bps of 99_990 ticks = 9.999 ticks: 9 ticks away is kept, 10 is not
    orders = [live(Side.BUY, 99_981, "a"), live(Side.SELL, 100_010, "b")]
    assert run_diff([q(Side.BUY, 99_990), q(Side.SELL, 100_010)], orders) == ([], [])
    # the bid alone is replaced (one cancel, one place); the ask is untouched
    cancels, places = run_diff([q(Side.BUY, 99_991), q(Side.SELL, 100_010)], orders)
    assert cancels == [Cancel(1_000, SYM, "a")]
    assert places == [Place(1_000, SYM, "n1", Side.BUY, 99_991, QTY)]


def test_diff_replaces_on_size_change_and_old_age() -> None:
    orders = [live(Side.BUY, 99_990, "a", qty=5), live(Side.SELL, 100_010, "b", ts=0)]
    cancels, places = run_diff(
        [q(Side.BUY, 99_990), q(Side.SELL, 100_010)], orders, ts=5_000, max_age_ns=5_000
    )
    assert [c.client_order_id for c in cancels] == ["a", "b"]
    assert [(p.side, p.px) for p in places] == [(Side.BUY, 99_990), (Side.SELL, 100_010)]


def test_diff_never_cancels_twice_and_ignores_done_orders() -> None:
    orders = [
        live(Side.BUY, 99_000, "a", status=Status.PENDING_CANCEL),
        live(Side.BUY, 99_000, "b", status=Status.FILLED),
        live(Side.SELL, 100_010, "c", status=Status.PENDING_NEW),  # counts as live
    ]
    cancels, places = run_diff([q(Side.BUY, 99_990), q(Side.SELL, 100_010)], orders)
    assert cancels == []
    assert [p.side for p in places] == [Side.BUY]


def test_diff_cancels_extras_and_keeps_the_closest() -> None:
    orders = [
        live(Side.BUY, 99_985, "far"),
        live(Side.BUY, 99_990, "near"),
        live(Side.SELL, 100_100, "away"),
    ]
    cancels, places = run_diff([q(Side.BUY, 99_990)], orders)
    assert sorted(c.client_order_id for c in cancels) == ["away", "far"]
    assert places == []


def test_diff_keeps_a_partially_filled_order_at_the_right_price() -> None:
    order = live(Side.BUY, 99_990, "a", status=Status.PARTIALLY_FILLED)
    order.filled_qty = 4
    assert run_diff([q(Side.BUY, 99_990)], [order]) == ([], [])


def test_diff_matches_ladder_levels_one_to_one() -> None:
    orders = [live(Side.BUY, 99_990, "l0"), live(Side.BUY, 99_890, "l1")]
    wanted = [
        q(Side.BUY, 99_992, level=0),
        q(Side.BUY, 99_892, level=1),
        q(Side.BUY, 99_792, level=2),
    ]
    cancels, places = run_diff(wanted, orders)
    assert cancels == []
    assert [p.px for p in places] == [99_792]


def test_diff_passes_post_only_and_reduce_only() -> None:
    _, places = diff(
        [q(Side.SELL, 100_010)],
        [],
        ts_ns=7,
        next_id=ids_from("x"),
        threshold_bps=0.5,
        max_age_ns=1,
        post_only=False,
        reduce_only=True,
    )
    assert places == [Place(7, SYM, "x1", Side.SELL, 100_010, QTY, False, True)]


def test_reduces() -> None:
    assert reduces(Side.SELL, 5) and reduces(Side.BUY, -5)
    assert not reduces(Side.BUY, 5) and not reduces(Side.SELL, -5)
    assert not reduces(Side.BUY, 0) and not reduces(Side.SELL, 0)
