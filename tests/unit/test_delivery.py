"""Each venue report to the engine once (bot/runtime/delivery.py)."""

from __future__ import annotations

from decimal import Decimal

from bot.model import CancelAck, CancelReject, Liquidity, OrderAck, OrderFill, OrderReject, Side
from bot.runtime.delivery import Delivery, RecentIds

SYM = "BTCUSDT"


def fill(trade_id: str) -> OrderFill:
    return OrderFill(1, SYM, "r-1", trade_id, Side.BUY, 600_000, 1, Liquidity.MAKER, Decimal(0))


def test_each_report_once_whichever_channel_brings_it() -> None:
    delivery = Delivery()
    assert delivery.admit(OrderAck(1, SYM, "r-1"))  # the REST answer
    assert not delivery.admit(OrderAck(2, SYM, "r-1"))  # the stream's copy
    assert delivery.admit(fill("t1")) and not delivery.admit(fill("t1"))
    assert delivery.admit(fill("t2"))
    assert delivery.working() == ["r-1"]
    assert delivery.admit(CancelReject(3, SYM, "r-1", "too late"))  # not its last word
    assert delivery.admit(CancelAck(4, SYM, "r-1"))
    assert not delivery.admit(CancelAck(5, SYM, "r-1"))
    assert not delivery.admit(OrderReject(6, SYM, "r-1", "late"))  # done is done
    assert not delivery.admit(OrderAck(7, SYM, "r-1"))  # an ack after its end changes nothing
    assert delivery.working() == []


def test_a_held_post_only_ack_is_overdue_until_the_stream_speaks() -> None:
    delivery = Delivery()
    delivery.hold("r-2", ts_ns=100)
    assert delivery.overdue(now_ns=150, after_ns=100) == []
    assert delivery.overdue(now_ns=200, after_ns=100) == ["r-2"]
    assert delivery.admit(OrderAck(210, SYM, "r-2"))
    assert delivery.overdue(now_ns=10_000, after_ns=100) == []
    delivery.hold("r-2", ts_ns=300)  # already acked: nothing to wait for
    assert delivery.overdue(now_ns=10_000, after_ns=100) == []


def test_recent_ids_forget_the_oldest_beyond_their_bound() -> None:
    recent = RecentIds(keep=3)
    assert all(recent.add(i) for i in ("a", "b", "c"))
    assert not recent.add("a")
    assert recent.add("d")  # "a" is forgotten now
    assert recent.add("a")
    assert not recent.add("d")
