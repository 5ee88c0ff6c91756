"""Tick-to-quote latency: `Engine.on_event` for a BookUpdate that leads to a re-quote.

Every measured book update moves the touch by more than the re-quote threshold,
at least `min_interval_ms` after the previous re-quote, so each one runs the full
cycle: strategy, diff, two cancels, two risk-checked places and their journal rows
(into a MemoryJournal). Acks and cancel-acks are fed between measurements (not
timed) so the engine holds a realistic handful of live orders.

Usage: python benchmarks/tick_to_quote.py [--events N] [--warmup N]
Last line of stdout: JSON with p50_us, p99_us (target p99 <= 50 us).

p50_us / p99_us are wall time (perf_counter). On a shared machine the wall tail
is dominated by the scheduler preempting the process, so cpu_p50_us / cpu_p99_us
(this thread's CPU time, which preemption does not add to) and the load average
are reported beside them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings
from bot.engine import Engine
from bot.journal import MemoryJournal
from bot.model import BookUpdate, Cancel, CancelAck, OrderAck, Place

SYM = "BTCUSDT"
MS = 1_000_000
T0 = 1_723_161_600_000_000_000
STEP_NS = 60 * MS  # > min_interval_ms (50): every book update may re-quote
MOVE_TICKS = 150  # 15 USD at tick 0.1 = 2.5 bps > requote threshold 0.5 bps


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (DESIGN §6)."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def run(events: int, warmup: int) -> dict[str, float | int | str]:
    settings = Settings.model_validate(
        {"strategy": {"fair_value": "microprice"}, "risk": {"max_orders_per_s": 1000.0,
                                                            "max_cancels_per_s": 1000.0}}
    )  # fmt: skip
    engine = Engine(settings, MemoryJournal(), id_prefix="bench")
    on_event = engine.on_event
    perf = time.perf_counter_ns
    cpu = time.thread_time_ns
    samples: list[int] = []
    cpu_samples: list[int] = []
    ts = T0
    bid = 600_000
    for i in range(warmup + events):
        ts += STEP_NS
        bid += MOVE_TICKS if (i // 4) % 2 == 0 else -MOVE_TICKS  # a walk, not a flip-flop
        update = BookUpdate(ts, SYM, bid, 3 + i % 5, bid + 1, 2 + i % 7)
        cpu_start = cpu()
        start = perf()
        commands = on_event(update)
        elapsed = perf() - start
        cpu_elapsed = cpu() - cpu_start
        if i >= warmup and any(isinstance(c, Place) for c in commands):
            samples.append(elapsed)
            cpu_samples.append(cpu_elapsed)
        # the venue answers before the next tick (not timed)
        for c in commands:
            if isinstance(c, Place):
                on_event(OrderAck(ts + MS, SYM, c.client_order_id))
            elif isinstance(c, Cancel):
                on_event(CancelAck(ts + 2 * MS, SYM, c.client_order_id))
    if len(samples) < events * 0.99:
        raise SystemExit(f"only {len(samples)} of {events} book updates re-quoted")
    samples.sort()
    cpu_samples.sort()
    return {
        "benchmark": "tick_to_quote",
        "events": len(samples),
        "p50_us": round(percentile(samples, 50) / 1e3, 2),
        "p99_us": round(percentile(samples, 99) / 1e3, 2),
        "mean_us": round(statistics.fmean(samples) / 1e3, 2),
        "max_us": round(samples[-1] / 1e3, 2),
        "cpu_p50_us": round(percentile(cpu_samples, 50) / 1e3, 2),
        "cpu_p99_us": round(percentile(cpu_samples, 99) / 1e3, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count() or 0,
        "gc": "enabled" if gc.isenabled() else "disabled",
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    args = parser.parse_args()
    result = run(args.events, args.warmup)
    print(f"tick_to_quote: {result['events']} re-quotes, p50 {result['p50_us']} us, "
          f"p99 {result['p99_us']} us (target p99 <= 50 us), cpu p99 {result['cpu_p99_us']} us, "
          f"load {result['loadavg_1m']} on {result['cpus']} cpus", file=sys.stderr)  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
