"""The shadow venue: no order leaves the bot; fills are inferred from the market feed.

A would-be quote is "filled" by the same evidence the paper venue matches on,
with the risk_averse queue (bot/venues/queue.py):
- a trade through its price fills it whole (the print is the last level of a sweep);
- trades at its price fill it once they exceed the displayed size ahead of it
  when it was posted (depth decreases that are not trades never advance it);
- the opposite side of the book moving through its price fills it: the order
  that set that quote would have traded with ours first.
The last rule is why shadow and paper agree: on the synthetic market a sweep's
prints stop short of the touch it leaves behind (as on the real feed) and a
fifth of the moves have no trade at all, so two thirds of the paper venue's
fills on the demo market are book crosses; a trade-only inference missed them
(80 fills against paper's 232 in 30 min).

What shadow drops is order latency (orders are live and acknowledged the
instant they are sent: nothing is sent), fault injection and the probabilistic
queue; `latency="sim"` applies the paper latency model instead, to isolate the
queue's effect in a comparison. So the accuracy gate, shadow against paper,
measures what paper adds: latency, faults and the configured queue model.
It keeps the sim venue's venue rules (tick, lot, minimums, post-only crossing),
so the journals compare like for like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from bot.config import Settings
from bot.market.book import L2Book
from bot.model import Instrument
from bot.venues.latency import LatencyModel, ZeroLatency, latency_from
from bot.venues.queue import RiskAverseQueue
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
            queue=RiskAverseQueue(),
            partial_fills=True,
            faults=None,
            fill_on_book_cross=True,
            name="shadow",
        )
