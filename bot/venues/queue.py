"""Queue position models for resting orders (hftbacktest's queue models).

Our order joins a level behind its displayed size (`queue_ahead`). Trades at
the level consume the queue ahead first; only the part of a trade that exceeds
it can fill us. The models differ on depth decreases at our level that are not
trades (cancels): `risk_averse` assumes every cancel was behind us, so we never
advance except by trades; `probabilistic` assumes a cancel was ahead of us with
probability front^n / (front^n + back^n) (hftbacktest's PowerProbQueueFunc).

The sim calls these hooks only for levels where we have orders.
"""

from __future__ import annotations

from typing import Final, Protocol

from bot.model import Side


class SimOrder:
    """A resting order inside the simulated venue (mutable venue state, not a value)."""

    __slots__ = (
        "client_order_id",
        "cum_trade",
        "leaves",
        "post_only",
        "px",
        "qty",
        "queue_ahead",
        "seq",
        "side",
        "symbol",
        "ts_send_ns",
    )

    def __init__(
        self,
        symbol: str,
        client_order_id: str,
        side: Side,
        px: int,
        qty: int,
        *,
        post_only: bool = True,
        ts_send_ns: int = 0,
        seq: int = 0,
    ) -> None:
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.side = side
        self.px = px
        self.qty = qty
        self.leaves = qty
        self.post_only = post_only
        self.ts_send_ns = ts_send_ns
        self.seq = seq
        self.queue_ahead: float = 0.0
        # traded qty at our level since the last depth update: the feed will also
        # show it as a depth decrease, which must not advance us twice
        self.cum_trade = 0

    def __repr__(self) -> str:
        return (
            f"SimOrder({self.client_order_id} {self.side.name} {self.leaves}/{self.qty}"
            f"@{self.px} ahead={self.queue_ahead})"
        )


class QueueModel(Protocol):
    @property
    def name(self) -> str: ...

    def on_new(self, order: SimOrder, level_qty: int) -> None: ...

    def on_trade(self, order: SimOrder, qty: int) -> int:
        """A trade of `qty` lots at our level; returns the lots that reach us."""
        ...

    def on_depth(self, order: SimOrder, prev_qty: int, new_qty: int) -> None: ...


def _consume(order: SimOrder, qty: int) -> int:
    order.cum_trade += qty
    ahead = order.queue_ahead
    if qty <= ahead:
        order.queue_ahead = ahead - qty
        return 0
    order.queue_ahead = 0.0
    # round half up, as hftbacktest's queue models do: flooring would drop the
    # fraction of a lot left by the probabilistic estimate and make fills late
    return int(qty - ahead + 0.5)


class RiskAverseQueue:
    """Advance only by trades; cancels are assumed to be behind us."""

    name: Final = "risk_averse"

    def on_new(self, order: SimOrder, level_qty: int) -> None:
        order.queue_ahead = float(level_qty)
        order.cum_trade = 0

    def on_trade(self, order: SimOrder, qty: int) -> int:
        return _consume(order, qty)

    def on_depth(self, order: SimOrder, prev_qty: int, new_qty: int) -> None:
        order.cum_trade = 0
        # the queue ahead of us can never be longer than the whole level
        if order.queue_ahead > new_qty:
            order.queue_ahead = float(new_qty)


class ProbabilisticQueue:
    """Cancels are ahead of us with probability front^n / (front^n + back^n)."""

    name: Final = "probabilistic"

    def __init__(self, power: float = 3.0) -> None:
        if power <= 0:
            raise ValueError(f"queue_power must be > 0, got {power}")
        self.power = power

    def on_new(self, order: SimOrder, level_qty: int) -> None:
        order.queue_ahead = float(level_qty)
        order.cum_trade = 0

    def on_trade(self, order: SimOrder, qty: int) -> int:
        return _consume(order, qty)

    def on_depth(self, order: SimOrder, prev_qty: int, new_qty: int) -> None:
        # trades at our level already advanced us and also show up as a decrease
        cancelled = prev_qty - new_qty - order.cum_trade
        order.cum_trade = 0
        front = order.queue_ahead
        if cancelled <= 0:
            order.queue_ahead = min(front, float(new_qty))
            return
        back = max(prev_qty - front, 0.0)
        n = self.power
        f_front = front**n
        f_back = back**n
        ahead_share = f_front / (f_front + f_back) if f_front + f_back > 0 else 1.0
        # expected share of the cancels ahead of us; any excess beyond the back is ours too
        behind_left = back - (1.0 - ahead_share) * cancelled
        estimate = front - ahead_share * cancelled + min(behind_left, 0.0)
        order.queue_ahead = min(max(estimate, 0.0), float(new_qty))


class NoQueue:
    """No queue at all: the shadow venue's optimistic bound (fill at or through)."""

    name: Final = "none"

    def on_new(self, order: SimOrder, level_qty: int) -> None:
        order.queue_ahead = 0.0

    def on_trade(self, order: SimOrder, qty: int) -> int:
        return qty

    def on_depth(self, order: SimOrder, prev_qty: int, new_qty: int) -> None:
        return None


def queue_model(name: str, power: float = 3.0) -> QueueModel:
    if name == "risk_averse":
        return RiskAverseQueue()
    if name == "probabilistic":
        return ProbabilisticQueue(power)
    if name == "none":
        return NoQueue()
    raise ValueError(f"unknown queue model {name!r}; choose risk_averse, probabilistic or none")
