"""Each venue report to the engine once: a live venue tells of an order twice (the
REST answer and the order stream) and may repeat a stream message; the live loop
(bot/runtime/live_loop.py) passes every report through `Delivery.admit` and every
market trade id through `RecentIds.add`."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bot.model import CancelReject, OrderAck, OrderFill, VenueReport


@dataclass(slots=True)
class _OrderSeen:
    acked: bool = False
    done: bool = False
    fills: set[str] = field(default_factory=set)
    held_since_ns: int = 0  # a post-only ack held for the stream; 0: nothing held


class Delivery:
    """Passes each venue report to the engine once, whichever channel brings it."""

    def __init__(self) -> None:
        self.orders: dict[str, _OrderSeen] = {}

    def admit(self, report: VenueReport) -> bool:
        seen = self.orders.setdefault(report.client_order_id, _OrderSeen())
        if isinstance(report, OrderFill):
            if report.trade_id in seen.fills:
                return False
            seen.fills.add(report.trade_id)
            return True
        if isinstance(report, OrderAck):
            fresh = not seen.acked and not seen.done
            seen.acked = True
            seen.held_since_ns = 0
            return fresh
        # reject, cancel ack, cancel reject: the order's last word
        if seen.done:
            return False
        seen.done = not isinstance(report, CancelReject)
        seen.held_since_ns = 0
        return True

    def hold(self, client_order_id: str, ts_ns: int) -> None:
        seen = self.orders.setdefault(client_order_id, _OrderSeen())
        if not (seen.acked or seen.done):
            seen.held_since_ns = ts_ns

    def working(self) -> list[str]:
        """Orders placed and not yet finished (as far as the engine has heard)."""
        return [coid for coid, seen in self.orders.items() if not seen.done]

    def overdue(self, now_ns: int, after_ns: int) -> list[str]:
        return [
            coid
            for coid, seen in self.orders.items()
            if seen.held_since_ns and now_ns - seen.held_since_ns >= after_ns
        ]


class RecentIds:
    """The last few thousand ids seen: a duplicate is one of them."""

    def __init__(self, keep: int = 4_096) -> None:
        self._keep = keep
        self._order: deque[str] = deque()
        self._set: set[str] = set()

    def add(self, item: str) -> bool:
        if item in self._set:
            return False
        self._order.append(item)
        self._set.add(item)
        if len(self._order) > self._keep:
            self._set.discard(self._order.popleft())
        return True
