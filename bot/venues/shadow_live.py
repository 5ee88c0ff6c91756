"""Shadow mode on live streams: the shadow venue's inferred fills over the exchange's
book and trades, so a live shadow journals what a paper or shadow replay journals.

The live loop hands over every book it watches (the levels become this venue's
L2 book, so the post-only crossing check sees the market the exchange shows) and
every public trade (which may fill our would-be quotes). Orders never leave the
process. Prices and sizes arrive as the loop's integer ticks and lots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import Settings
from bot.market.book import ASK, BID, L2Book
from bot.model import Command, Instrument, Trade, VenueReport
from bot.venues.exchange import units
from bot.venues.shadow import ShadowVenue
from bot.venues.sim import NEVER


class LiveShadow:
    def __init__(self, settings: Settings, instruments: Mapping[str, Instrument]) -> None:
        self.instruments = dict(instruments)
        self.books = {symbol: L2Book() for symbol in self.instruments}
        self.sim = ShadowVenue(settings, self.instruments, self.books)

    def on_book(self, symbol: str, book: Mapping[str, Any], ts_ns: int) -> list[VenueReport]:
        """A book from the stream replaces this venue's (ccxt keeps the book; it hands
        over its state, not its deltas): queue positions restart behind it."""
        inst = self.instruments[symbol]
        l2 = self.books[symbol]
        l2.clear()
        for side, levels in ((BID, book["bids"]), (ASK, book["asks"])):
            for px, qty, *_ in levels:
                l2.apply_snapshot_level(side, units(px, inst.tick_size), units(qty, inst.lot_size))
        self.sim.on_snapshot(symbol)
        self.sim.on_touch(symbol, ts_ns)  # the mid the fills are priced against
        return self._due()

    def on_trade(self, trade: Trade) -> list[VenueReport]:
        self.sim.on_trade(trade.symbol, trade.ts_ns, int(trade.side), trade.px, trade.qty)
        return self._due()

    def execute(self, command: Command, ts_ns: int) -> list[VenueReport]:
        self.sim.submit(command, ts_ns)
        return self._due()

    def _due(self) -> list[VenueReport]:
        # zero latency: everything the shadow venue scheduled is due at once
        reports = []
        while (report := self.sim.pop_due(NEVER)) is not None:
            reports.append(report)
        return reports
