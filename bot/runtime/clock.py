"""Clocks: the only place that reads wall time. Everything else is handed one."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from typing import Protocol

FREEZE_ENV = "MMBOT_FREEZE_UTC"


class Clock(Protocol):
    def now_ns(self) -> int: ...


class WallClock:
    def now_ns(self) -> int:
        return time.time_ns()


class FrozenClock:
    """Always the same instant: reports and goldens render byte-identical."""

    def __init__(self, ts_ns: int) -> None:
        self._ts_ns = ts_ns

    def now_ns(self) -> int:
        return self._ts_ns


class SimClock:
    """Simulated time, advanced by the sim loop to the data's timestamps."""

    def __init__(self, ts_ns: int = 0) -> None:
        self.ts_ns = ts_ns

    def now_ns(self) -> int:
        return self.ts_ns

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns > self.ts_ns:
            self.ts_ns = ts_ns


def parse_utc(text: str) -> int:
    """ISO-8601 UTC text ('2024-08-08T00:00:00Z') -> ns since the epoch."""
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1_000


def default_clock() -> Clock:
    """A frozen clock when MMBOT_FREEZE_UTC is set (tests, goldens), else the wall."""
    frozen = os.environ.get(FREEZE_ENV)
    return FrozenClock(parse_utc(frozen)) if frozen else WallClock()


def iso_utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_UNIT_NS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str) -> int:
    """'90s', '30m', '6h', '1.5h', '250ms', '2d' -> nanoseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"bad duration {text!r}: expected a number and one of ms, s, m, h, d")
    return int(float(match.group(1)) * _UNIT_NS[match.group(2)])
