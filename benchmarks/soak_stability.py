"""Memory and file descriptors over a long simulated soak, as users run it.

Runs the real soak flow (`python -m flows.soak`, Prefect's ephemeral API) for
`--hours` of simulated time in 1 h iterations, in a child process, then reads the
resident set and the open file descriptors that the flow recorded in each
iteration's summary (iterations.jsonl). The default profile, `stability`, is a
measurement profile: the mm3 bot (which keeps trading) on the soak profile's market
and seeded venue faults, auto-tuning on, with `soak.stop_on_fail: false`, so an
in-run gate FAIL does not end the measurement.

The child runs with `ARROW_DEFAULT_MEMORY_POOL=system` (`--arrow-pool`), as the
nightly-soak and release deployments do (prefect.yaml): pyarrow's bundled mimalloc
keeps freed buffers of the iterations' Parquet journals resident: +9.2 % from hour 6
to 72, still growing at the end, against +3.04 / +4.98 % on glibc (README, Benchmarks).
That part of the figure is an allocator choice, not a code fix; `--arrow-pool
mimalloc` measures pyarrow's default.

Prints one JSON line per simulated hour ({"hour", "rss_mb", "open_fds"}), then a last
line: hours, completed, wall_s, rss_mb at hour `--from-hour` and at the end, the growth
between them in percent (the target: under 5 % from hour 6 to hour 72), open_fds min /
max, the soak's failure if it had one (`stopped_by` when it ended before its last
hour, `final_gate` when the final gate FAILed the finished soak) and ok. Exits 1
when the soak stopped before its last hour or the growth is over `--max-growth-pct`;
the final gate's verdict is the soak's business, not this measurement's.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_soak(
    hours: float, profile: str, arrow_pool: str, work: Path
) -> tuple[list[dict[str, Any]], str, float]:
    params = {"profile": profile, "run_key": "stability", "hours": hours,
              "work_dir": str(work / "flows"), "artifacts_url": (work / "store").as_uri()}
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"),
           "ARROW_DEFAULT_MEMORY_POOL": arrow_pool,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
           "PREFECT_LOGGING_LEVEL": "WARNING"}  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.soak", json.dumps(params)], cwd=ROOT, env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    path = work / "flows" / "soak" / "stability" / "iterations.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    tail = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [""])[-1]
    return rows, tail, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=int, default=72)
    parser.add_argument(
        "--profile", default="stability",
        help="a measurement profile: its in-run gate logs FAILs and goes on",
    )
    parser.add_argument(
        "--arrow-pool", default="system", choices=("system", "mimalloc", "jemalloc"),
        help="pyarrow's allocator in the soak's process (ARROW_DEFAULT_MEMORY_POOL)",
    )
    parser.add_argument("--from-hour", type=int, default=6, help="growth is measured from here")
    parser.add_argument("--max-growth-pct", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmbot-soak-") as tmp:
        rows, failure, wall = run_soak(args.hours, args.profile, args.arrow_pool, Path(tmp))
    for row in rows:
        print(json.dumps({"hour": row["iteration"], "rss_mb": row["rss_mb"],
                          "open_fds": row.get("open_fds")}))  # fmt: skip
    rss = {row["iteration"]: row["rss_mb"] for row in rows}
    fds = [row["open_fds"] for row in rows if row.get("open_fds") is not None]
    base, last = rss.get(args.from_hour), rss.get(args.hours)
    growth = round(100.0 * (last - base) / base, 2) if base and last else None
    finished = len(rows) == args.hours
    ok = finished and growth is not None and growth < args.max_growth_pct
    print(json.dumps({
        "hours": args.hours, "profile": args.profile, "arrow_pool": args.arrow_pool,
        "completed": len(rows), "wall_s": round(wall, 1),
        "from_hour": args.from_hour, "rss_mb_from": base, "rss_mb_end": last,
        "rss_growth_pct": growth, "open_fds_min": min(fds, default=None),
        "open_fds_max": max(fds, default=None),
        "stopped_by": None if finished else failure or None,
        "final_gate": (failure or None) if finished else None, "ok": ok,
    }))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
