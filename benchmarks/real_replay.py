"""Whole-process wall time of `mmbot run --mode paper` on the real BTCUSDT data,
measured from outside (interpreter start, imports, reading the CSVs, replay,
journal). Prints one JSON line last: wall_s, events, events_per_s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "real" / "binance-futures_BTCUSDT_2024-08-08"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import sys; from bot.cli import app; sys.exit(app())"
    best: tuple[float, dict[str, object]] | None = None
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mmbot-real-") as tmp:
            cmd = [sys.executable, "-c", code, "run", "--mode", "paper", "--data",
                   str(args.data), "--out", tmp, "--json", "--no-progress"]  # fmt: skip
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or wall < best[0]:
            best = (wall, summary)
    assert best is not None
    wall, summary = best
    events = int(summary["replay"]["rows"])  # type: ignore[index]
    print(f"fills={summary['fills']} runs={args.repeat}", file=sys.stderr)
    print(json.dumps({"wall_s": round(wall, 3), "events": events,
                      "events_per_s": round(events / wall)}))  # fmt: skip


if __name__ == "__main__":
    main()
