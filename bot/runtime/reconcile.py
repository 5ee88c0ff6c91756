"""The periodic financial reconciliation of a live run: the venue's trade history and
position against what the bot booked, per symbol.

Each round reads the venue's position, then its trade history of the run's orders
(in that order: a fill made between the two reads is in the history, so it shows as
a difference for one round only). The fills the bot has not heard yet are handed to
the engine first (a stream message lost without a disconnect). A symbol differs when:
- the bot's fills, turnover or fees differ from the venue's trade history (turnover
  and fees to a cent), or
- the venue's position is not the run's opening plus the history's fills (someone
  else traded the account).
Two rounds in a row with a difference halt the run (one is a fill in flight).

At the stop, `reconcile_fills` holds the run's whole trade history against the
summary the journal gives (summary.json's `live.reconciliation`), and
`balance_change` the wallet balance's change against the bot's realized PnL and fees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import structlog

from bot.model import Instrument, OrderFill

log = structlog.get_logger(__name__)

CENT: Final = Decimal("0.01")


@dataclass(slots=True)
class Tally:
    """Fills of one symbol added up: count, signed lots, turnover and net fees (quote)."""

    fills: int = 0
    lots: int = 0
    turnover: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    def add(self, fill: OrderFill, inst: Instrument) -> None:
        self.fills += 1
        self.lots += fill.qty * int(fill.side)
        self.turnover += inst.notional(fill.px, fill.qty)
        self.fees += fill.fee


def tally(fills: Iterable[OrderFill], insts: Mapping[str, Instrument]) -> dict[str, Tally]:
    out = {symbol: Tally() for symbol in insts}
    for fill in fills:
        out[fill.symbol].add(fill, insts[fill.symbol])
    return out


def position_differences(
    venue_lots: Mapping[str, int], expected: Mapping[str, int], tolerance_lots: int
) -> list[str]:
    """At the start: the venue's position per symbol against the one the bot expects."""
    return [
        f"{symbol}: venue {lots} lots, bot {expected.get(symbol, 0)} lots"
        for symbol, lots in venue_lots.items()
        if abs(lots - expected.get(symbol, 0)) > tolerance_lots
    ]


def differences(
    venue_fills: Mapping[str, Tally],
    booked: Mapping[str, Tally],
    venue_lots: Mapping[str, int],
    opening_lots: Mapping[str, int],
) -> list[str]:
    """What differs, one line per symbol and kind; [] when the books agree."""
    found = []
    for symbol, venue in sorted(venue_fills.items()):
        bot = booked.get(symbol, Tally())
        if (
            venue.fills != bot.fills
            or abs(venue.turnover - bot.turnover) >= CENT
            or abs(venue.fees - bot.fees) >= CENT
        ):
            found.append(
                f"{symbol}: venue {venue.fills} fills, turnover {venue.turnover:.2f}, fees "
                f"{venue.fees:.4f}; bot {bot.fills} fills, turnover {bot.turnover:.2f}, "
                f"fees {bot.fees:.4f}"
            )
        expected = opening_lots.get(symbol, 0) + venue.lots
        if venue_lots.get(symbol, 0) != expected:
            found.append(
                f"{symbol}: venue position {venue_lots.get(symbol, 0)} lots, the run's opening "
                f"and fills {expected} lots"
            )
    return found


def reconcile_fills(
    venue_fills: list[OrderFill], insts: Mapping[str, Instrument], summary: Mapping[str, Any]
) -> dict[str, Any]:
    """The venue's trade history of the run against what the bot booked: fills,
    turnover and fees must agree (to a cent: the bot's figures are floats)."""
    per_symbol = tally(venue_fills, insts).values()
    venue = {
        "fills": len(venue_fills),
        "turnover_usd": float(sum(t.turnover for t in per_symbol)),
        "fees_usd": float(sum(t.fees for t in per_symbol)),
    }
    bot = {key: summary.get(key) for key in venue}
    matches = bot["fills"] == venue["fills"] and all(
        abs(float(bot[key] or 0.0) - venue[key]) < 0.01 for key in ("turnover_usd", "fees_usd")
    )
    if not matches:
        log.error("live_reconciliation_mismatch", venue=venue, bot=bot)
    return {"venue": venue, "bot": bot, "matches": matches}


def balance_change(start: float | None, end: float | None, summary: Mapping[str, Any]
                   ) -> dict[str, Any]:  # fmt: skip
    """The wallet balance's change over the run against the bot's cash: its realized
    PnL less its fees (a rebate adds). Shown, not judged: funding payments and other
    runs' trades on the account move the balance too."""
    bot = float(summary.get("realized_pnl_usd") or 0.0) - float(summary.get("fees_usd") or 0.0)
    change = None if start is None or end is None else end - start
    difference = None if change is None else change - bot
    if difference is not None and abs(difference) >= 0.01:
        log.warning("live_balance_differs", change=change, bot=bot, difference=difference)
    return {"start": start, "end": end, "change": change, "bot": bot, "difference": difference}
