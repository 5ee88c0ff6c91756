"""The shadow venue: no order leaves the bot; fills are inferred from market trades.

A would-be quote is "filled" when a market trade prints at or through its price
(no queue: the optimistic bound): at its price up to the trade's size, through
it in whole. It keeps the sim
venue's interface and venue rules (tick, lot, minimums, post-only crossing) so
shadow and paper journals compare like for like; what it drops is the queue,
the book-crossing fills, fault injection and, by default, latency: orders are
live and acknowledged the instant they are sent. `latency="sim"` applies the
paper latency model instead, to isolate the queue's effect in a comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from bot.config import Settings
from bot.market.book import L2Book
from bot.model import Instrument
from bot.venues.latency import LatencyModel, ZeroLatency, latency_from
from bot.venues.queue import NoQueue
from bot.venues.sim import SimVenue


class ShadowVenue(SimVenue):
    def __init__(
        self,
        settings: Settings,
        instruments: Mapping[str, Instrument],
        books: Mapping[str, L2Book],
        *,
        seed: int = 0,
        latency: Literal["zero", "sim"] = "zero",
    ) -> None:
        model: LatencyModel = (
            ZeroLatency() if latency == "zero" else latency_from(settings.sim, seed)
        )
        super().__init__(
            instruments,
            books,
            fee=settings.fees.tiers[settings.fees.tier],
            latency=model,
            queue=NoQueue(),
            partial_fills=True,
            faults=None,
            fill_on_book_cross=False,
            name="shadow",
        )
