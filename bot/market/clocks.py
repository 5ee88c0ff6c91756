"""The two clocks of recorded market data, put on one common axis (DESIGN §4).

Every row carries `ts_exch` (the exchange's stamp) and `ts_local` (the capture
machine's). Their gap is the capture clock's offset plus that row's feed latency:

    ts_local - ts_exch = clock_offset + feed_latency_of_the_row

One capture cannot tell the two apart, so the offset is estimated from the
smallest gap, which the fastest rows reach: `clock_offset = min gap - feed_latency`,
where `feed_latency` (the configured latency of the fastest row, `sim.feed_latency_ms`)
says how long even the fastest message took. The common axis is the bot's local
clock; an exchange stamp maps onto it as `ts_exch + clock_offset`.

The minimum of the first chunk is the estimate, not a quantile: a row whose gap is
below it would put the venue's event after the bot saw it. A later row faster than
the estimate is clamped to the bot's own receipt time (the venue never sees the
market later than the bot), which `to_venue` applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.market.schema import MarketChunk


class ClockError(ValueError):
    """Market data whose clocks cannot be put on one axis."""


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """Exchange -> local time: `ts_exch + offset_ns`, never after the row's `ts_local`."""

    offset_ns: int
    min_gap_ns: int
    feed_latency_ns: int
    rows: int

    def to_venue(self, ts_exch: np.ndarray, ts_local: np.ndarray) -> np.ndarray:
        """The venue's time of each row on the common (local) axis."""
        return np.minimum(ts_exch + self.offset_ns, ts_local)

    def as_dict(self) -> dict[str, int | float | str]:
        """run.json's `clock` entry."""
        return {
            "offset_ms": self.offset_ns / 1e6,
            "min_gap_ms": self.min_gap_ns / 1e6,
            "feed_latency_ms": self.feed_latency_ns / 1e6,
            "rows": self.rows,
            "method": "min(ts_local - ts_exch) over the first chunk - feed_latency",
        }


def estimate_offset(chunk: MarketChunk, feed_latency_ns: int = 0) -> ClockOffset:
    """The capture clock's offset from one chunk's rows (see the module docstring)."""
    if feed_latency_ns < 0:
        raise ClockError(f"feed latency must be >= 0 ns, got {feed_latency_ns}")
    if len(chunk) == 0:
        raise ClockError(f"{chunk.symbol}: no rows to estimate the capture clock's offset from")
    min_gap = int(np.min(chunk.ts_local - chunk.ts_exch))
    return ClockOffset(min_gap - feed_latency_ns, min_gap, feed_latency_ns, len(chunk))
