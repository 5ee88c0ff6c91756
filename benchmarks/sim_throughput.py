"""Market events per second through the whole paper stack.

Generates `--hours` of synthetic BTCUSDT (50 book updates/s + 5 trades/s) once
to a temporary Parquet file, then times the replay: Parquet reader -> sim loop
-> sim venue -> engine -> journal (written to a temporary directory). Prints
one JSON line last: events, wall_s, events_per_s, cpu_s, events_per_cpu_s,
cpu_us_per_event, book_updates (touch changes that reached the engine) and
cpu_us_per_touch (CPU time per touch change), peak_rss_mb, loadavg_1m, and rss_mb: the
resident set at each tenth of the replay's wall time (the replay runs at a steady
rate, so a tenth of the wall time is about a tenth of the data hours; a flat list
means the journal buffers do not grow with the run).

events_per_s is the target's figure (wall time). On a shared machine the wall
time includes the time other processes held the core, so the process CPU time
(which preemption does not add to) and the load average are reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import structlog

from bot.market.synth import generate
from bot.profiles import load_settings
from bot.runtime.run import RunSpec, run_bot, settings_for


def write_synth(path: Path, hours: float, seed: int) -> int:
    settings = load_settings("base", overrides=[f"data.synth.duration={hours}h"])
    cfg = settings.data.synth
    rows = 0
    writer: pq.ParquetWriter | None = None
    for chunk in generate(cfg, settings.venue.symbols[cfg.symbol], seed):
        table = chunk.to_table()
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
        rows += len(chunk)
    if writer is not None:
        writer.close()
    return rows


class RssSampler:
    """The process's resident set every `every_s` of wall time, in a daemon thread."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        page = resource.getpagesize()
        with open("/proc/self/statm") as statm:
            while not self._stop.wait(self.every_s):
                statm.seek(0)
                self.samples.append(int(statm.read().split()[1]) * page / 2**20)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def tenths(self) -> list[float]:
        n = len(self.samples)
        if n == 0:
            return []
        return [round(self.samples[min(n - 1, n * k // 10)], 1) for k in range(1, 11)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--progress",
        action="store_true",
        help="with the run's progress log lines (display only; off by default)",
    )
    args = parser.parse_args()
    structlog.configure(
        # info with --progress: its lines are rendered, as a run renders them
        wrapper_class=structlog.make_filtering_bound_logger(20 if args.progress else 30),
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )
    with tempfile.TemporaryDirectory(prefix="mmbot-bench-") as tmp:
        data = Path(tmp) / "synth.parquet"
        rows = write_synth(data, args.hours, args.seed)
        # skip, not raise: the synth stream has a crossed message at some chunk
        # boundaries (reported to its owner); the validator drops those rows
        spec = RunSpec(mode="paper", out_dir=Path(tmp) / "journal", data=data,
                       duration=f"{args.hours}h", progress=args.progress,
                       overrides=("data.validation.on_error=skip",))  # fmt: skip
        settings = settings_for(spec)
        start = time.perf_counter()
        cpu_start = time.process_time()
        with RssSampler() as rss:
            result = run_bot(spec, settings)
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - start
    events = result.stats.rows
    print(f"generated={rows} replayed={events}", file=sys.stderr)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"fills={result.summary['fills']} places={result.summary['places']}", file=sys.stderr)
    print(json.dumps({
        "events": events, "wall_s": round(wall, 3), "events_per_s": round(events / wall),
        "cpu_s": round(cpu, 3), "events_per_cpu_s": round(events / cpu),
        "cpu_us_per_event": round(cpu / events * 1e6, 3),
        "book_updates": result.stats.book_updates,
        "cpu_us_per_touch": round(cpu / max(result.stats.book_updates, 1) * 1e6, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1), "hours": args.hours, "progress": args.progress,
        "rss_mb": rss.tenths(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
