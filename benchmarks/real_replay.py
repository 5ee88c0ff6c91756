"""Whole-process wall time and peak RSS of `mmbot run --mode paper` on the real
BTCUSDT data, measured from outside: the `mmbot` console script users run
(interpreter start, imports, reading the CSVs, validation, replay, journal).
Prints one JSON line last: wall_s and cpu_s (user + system: steadier than wall time
on a loaded machine), each the median of `--repeat` runs, with the best wall time
and every run's figures; peak_rss_mib, events, events_per_s (at the median wall).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "real" / "binance-futures_BTCUSDT_2024-08-08"
# the console script installed beside this interpreter (`make install`: .venv/bin/mmbot)
MMBOT = Path(sys.executable).parent / "mmbot"


def run_once(
    data: Path, out: str, progress: bool = False
) -> tuple[float, float, float, dict[str, object]]:
    """(wall s, CPU s, peak RSS MiB, summary) of one `mmbot run` process."""
    cmd = [str(MMBOT), "run", "--mode", "paper", "--data", str(data), "--out", out,
           "--json", "--progress" if progress else "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
        stdout.seek(0)
        summary = json.loads(stdout.read().strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, summary  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=5, help="runs; medians are reported")
    parser.add_argument(
        "--progress", action="store_true", help="with its progress log lines (display only)"
    )
    args = parser.parse_args()
    if not MMBOT.is_file():
        raise SystemExit(f"no console script at {MMBOT}: run `make install` first")
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mmbot-real-") as tmp:
            runs.append(run_once(args.data, tmp, args.progress))
    wall = statistics.median(run[0] for run in runs)
    cpu = statistics.median(run[1] for run in runs)
    summary = runs[0][3]
    events = int(summary["replay"]["rows"])  # type: ignore[index]
    print(f"fills={summary['fills']} runs={args.repeat} command={MMBOT}", file=sys.stderr)
    print(json.dumps({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                      "best_wall_s": round(min(run[0] for run in runs), 3),
                      "walls_s": [round(run[0], 3) for run in runs],
                      "cpus_s": [round(run[1], 3) for run in runs],
                      "peak_rss_mib": round(max(run[2] for run in runs), 1),
                      "events": events, "events_per_s": round(events / wall),
                      "progress": args.progress}))  # fmt: skip


if __name__ == "__main__":
    main()
