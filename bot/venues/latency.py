"""Order latency models: how long a command takes to reach the venue, and a
report to come back (hftbacktest's entry and response legs).

Jitter is drawn from a seeded numpy generator in blocks, so a run's latencies
depend only on the seed and the order of commands, never on the wall clock.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np

from bot.config import SimConfig

NS_PER_MS: Final = 1_000_000
_BLOCK: Final = 4_096


class LatencyModel(Protocol):
    def entry_ns(self) -> int:
        """Send of a place -> the order is live at the venue."""
        ...

    def cancel_ns(self) -> int:
        """Send of a cancel -> the order is gone at the venue."""
        ...

    def response_ns(self) -> int:
        """An event at the venue -> its report reaches the bot."""
        ...


class ZeroLatency:
    """Everything happens at the instant it is sent (the shadow venue's default)."""

    def entry_ns(self) -> int:
        return 0

    def cancel_ns(self) -> int:
        return 0

    def response_ns(self) -> int:
        return 0


class JitteredLatency:
    """A fixed base per leg plus a seeded uniform jitter in [0, jitter_ms].

    The jitter only adds, so every latency is at least its configured base: a
    report can never arrive before send + base, which the gates rely on.
    """

    __slots__ = ("_cancel", "_entry", "_i", "_jitter", "_response", "_rng", "_span")

    def __init__(
        self, entry_ms: float, response_ms: float, cancel_ms: float, jitter_ms: float, seed: int
    ) -> None:
        if min(entry_ms, response_ms, cancel_ms, jitter_ms) < 0:
            raise ValueError(
                f"latencies must be >= 0 ms: entry={entry_ms} response={response_ms} "
                f"cancel={cancel_ms} jitter={jitter_ms}"
            )
        self._entry = int(entry_ms * NS_PER_MS)
        self._response = int(response_ms * NS_PER_MS)
        self._cancel = int(cancel_ms * NS_PER_MS)
        self._span = int(jitter_ms * NS_PER_MS)
        self._rng = np.random.default_rng([seed, 0])
        self._jitter: list[int] = []
        self._i = 0

    def _next_jitter(self) -> int:
        if self._span == 0:
            return 0
        if self._i >= len(self._jitter):
            self._jitter = self._rng.integers(0, self._span + 1, size=_BLOCK).tolist()
            self._i = 0
        value = self._jitter[self._i]
        self._i += 1
        return int(value)

    def entry_ns(self) -> int:
        return self._entry + self._next_jitter()

    def cancel_ns(self) -> int:
        return self._cancel + self._next_jitter()

    def response_ns(self) -> int:
        return self._response + self._next_jitter()


def latency_from(sim: SimConfig, seed: int) -> JitteredLatency:
    return JitteredLatency(
        entry_ms=sim.entry_latency_ms,
        response_ms=sim.response_latency_ms,
        cancel_ms=sim.cancel_latency_ms,
        jitter_ms=sim.latency_jitter_ms,
        seed=seed,
    )
