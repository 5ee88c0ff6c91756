"""Our orders by client id: the live ones per symbol, and the recently terminal ones.

A venue report finds its order here. Terminal orders are remembered for a
while (``RECENT_ORDERS`` of them) because real venues send fills after the
cancel ack and acks after the fill; older ones count as unknown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Final

from bot.model import VenueReport
from bot.orders import TERMINAL, WORKING, Applied, Order

RECENT_ORDERS: Final = 10_000


class OrderRegistry:
    __slots__ = ("_live", "_orders", "_recent", "_retired")

    def __init__(self, symbols: Iterable[str], recent: int = RECENT_ORDERS) -> None:
        self._orders: dict[str, Order] = {}  # live and recently terminal
        self._live: dict[str, dict[str, Order]] = {s: {} for s in symbols}
        self._retired: deque[str] = deque()
        self._recent = recent

    def live(self, symbol: str) -> dict[str, Order]:
        """The orders of `symbol` not yet terminal (working or pending cancel), by client id.

        The dict itself, kept up to date: the symbol's requoter holds on to it."""
        return self._live[symbol]

    def add(self, order: Order) -> None:
        self._live[order.symbol][order.client_order_id] = order
        self._orders[order.client_order_id] = order

    def apply(self, report: VenueReport) -> Order | None:
        """Apply a report to its order: the order when it changed, None when it did not
        (DUPLICATE). Raises ``UnknownOrder`` for a report no remembered order of that
        symbol owns, and OrderError (bot/orders.py) for one the order refuses."""
        order = self._orders.get(report.client_order_id)
        if order is None or order.symbol != report.symbol or report.symbol not in self._live:
            raise UnknownOrder(report.client_order_id)
        if order.apply(report) is Applied.DUPLICATE:
            return None
        if order.status in TERMINAL:
            self._retire(order)
        return order

    def _retire(self, order: Order) -> None:
        if self._live[order.symbol].pop(order.client_order_id, None) is None:
            return  # a late fill on an already terminal order
        retired = self._retired
        retired.append(order.client_order_id)
        if len(retired) > self._recent:
            self._orders.pop(retired.popleft(), None)

    def working_count(self) -> int:
        """Working orders over every symbol; orders pending cancel are on their way
        out, so the replacements may take their slots."""
        return sum(1 for live in self._live.values() for o in live.values() if o.status in WORKING)

    def open_count(self) -> int:
        """Orders not yet terminal over every symbol."""
        return sum(len(live) for live in self._live.values())


class UnknownOrder(LookupError):
    """A report for an order this run never sent, or one forgotten long ago."""

    def __init__(self, client_order_id: str) -> None:
        super().__init__(f"no order {client_order_id!r} among this run's recent orders")
        self.client_order_id = client_order_id
