"""An L2 order book in integer ticks and lots, built for replay speed.

Each side is a plain dict price -> qty plus the best price held apart. A delta
away from the touch is one dict store (or pop) and two integer compares; the
best price is recomputed only when the best level itself is removed. Levels of
liquid books are dense near the touch, so the recomputation walks outward tick
by tick from the old best; after `SCAN_TICKS` misses (a sparse or emptied book)
it falls back to one max()/min() over the side, which is still bounded by the
book's size.

Empty sides have sentinels chosen so that the natural comparisons work without
branches: `NO_BID` is below every price and `NO_ASK` above every price.
"""

from __future__ import annotations

from typing import Final

BID: Final = 1
ASK: Final = -1
NO_BID: Final = -1
NO_ASK: Final = 1 << 62
# Measured on the real BTCUSDT file (445 k deltas): the best level is removed in
# only 0.5 % of rows; the next level is a median 2 ticks away and within 64 ticks
# in 98.6 % of cases, so the walk is short and max()/min() is the rare fallback.
SCAN_TICKS: Final = 64


class BookError(ValueError):
    """A book operation with arguments that cannot describe a level."""


class L2Book:
    """Price levels of one symbol; side is +1 (bid) or -1 (ask)."""

    __slots__ = ("asks", "best_ask", "best_bid", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid: int = NO_BID
        self.best_ask: int = NO_ASK

    # --- mutation ----------------------------------------------------------------

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.best_bid = NO_BID
        self.best_ask = NO_ASK

    def apply_snapshot_level(self, side: int, px: int, qty: int) -> None:
        """One level of a snapshot (after `clear()`); qty 0 levels are ignored."""
        self.apply_delta(side, px, qty)

    def apply_delta(self, side: int, px: int, qty: int) -> int:
        """Set the level's displayed qty; qty 0 removes the level. Returns the qty the
        level had before (0 if absent), for callers that keep an undo log."""
        if side == BID:
            bids = self.bids
            prev = bids.get(px, 0)
            if qty:
                bids[px] = qty
                if px > self.best_bid:
                    self.best_bid = px
            elif prev:
                del bids[px]
                if px == self.best_bid:
                    self.best_bid = self._next_bid(px)
            return prev
        if side == ASK:
            asks = self.asks
            prev = asks.get(px, 0)
            if qty:
                asks[px] = qty
                if px < self.best_ask:
                    self.best_ask = px
            elif prev:
                del asks[px]
                if px == self.best_ask:
                    self.best_ask = self._next_ask(px)
            return prev
        raise BookError(f"side must be +1 (bid) or -1 (ask), got {side!r} at px {px}")

    def _next_bid(self, old: int) -> int:
        bids = self.bids
        if not bids:
            return NO_BID
        for px in range(old - 1, old - 1 - SCAN_TICKS, -1):
            if px in bids:
                return px
        return max(bids)

    def _next_ask(self, old: int) -> int:
        asks = self.asks
        if not asks:
            return NO_ASK
        for px in range(old + 1, old + 1 + SCAN_TICKS):
            if px in asks:
                return px
        return min(asks)

    # --- queries ------------------------------------------------------------------

    @property
    def bid_qty(self) -> int:
        return self.bids.get(self.best_bid, 0)

    @property
    def ask_qty(self) -> int:
        return self.asks.get(self.best_ask, 0)

    def has_bid(self) -> bool:
        return self.best_bid != NO_BID

    def has_ask(self) -> bool:
        return self.best_ask != NO_ASK

    def is_crossed(self) -> bool:
        """Both sides present and best bid >= best ask (a feed glitch or a mid-message state)."""
        bid, ask = self.best_bid, self.best_ask
        return bid != NO_BID and ask != NO_ASK and bid >= ask

    def qty_at(self, side: int, px: int) -> int:
        return self._levels(side).get(px, 0)

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        """The best `n` levels of a side as (px, qty), best first (not a hot-path call)."""
        levels = self._levels(side)
        prices = sorted(levels, reverse=side == BID)[:n]
        return [(px, levels[px]) for px in prices]

    def level_count(self, side: int) -> int:
        return len(self._levels(side))

    def _levels(self, side: int) -> dict[int, int]:
        if side == BID:
            return self.bids
        if side == ASK:
            return self.asks
        raise BookError(f"side must be +1 (bid) or -1 (ask), got {side!r}")
