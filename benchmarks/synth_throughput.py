"""Throughput of the synthetic market: generate N hours of one symbol into Parquet.

    .venv/bin/python benchmarks/synth_throughput.py [--hours 24] [--seed 7] [--keep DIR]

The last line of output is one JSON object: rows, wall_s, rows_per_s, peak_rss_mb
(and the split between generating and writing). `cpu_s` is the process's CPU time
for the same work: on a shared machine it is the figure to compare. At the default
(real) 1,300 book rows/s a day is about 117 M rows; memory is bounded by one chunk
of `chunk_seconds` (120 s of data), whatever the duration.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bot.config import Settings, SynthConfig
from bot.market.recorder import write_parquet
from bot.market.synth import StreamTally, generate


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(hours: float, seed: int, out_dir: Path) -> dict[str, object]:
    settings = Settings()
    cfg = SynthConfig.model_validate({**settings.data.synth.model_dump(), "duration": f"{hours}h"})
    spec = settings.venue.symbols[cfg.symbol]
    rss_before = _peak_rss_mb()
    started = time.process_time()
    generated = sum(len(c) for c in generate(cfg, spec, seed))
    gen_cpu_s = time.process_time() - started
    tally = StreamTally()
    started, cpu_started = time.perf_counter(), time.process_time()
    path = write_parquet(
        tally.counted(generate(cfg, spec, seed)), out_dir / "synth.parquet", cfg.symbol
    )
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    assert generated == tally.rows
    return {
        "hours": hours,
        "rows": tally.rows,
        "book_rows": tally.book_rows,
        "trades": tally.trades,
        "generate_only_cpu_s": round(gen_cpu_s, 3),
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "rows_per_s": round(tally.rows / wall_s),
        "rows_per_cpu_s": round(tally.rows / cpu_s),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_at_start_mb": round(rss_before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the file")
    args = parser.parse_args()
    # stdout is the result: logs go to stderr
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.hours, args.seed, args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.hours, args.seed, Path(tmp))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
