"""The `mmbot` console script: `flows.cli.main`, imported with the cyclic GC paused.

Importing the command line builds some hundred thousand long-lived objects (modules,
classes, pydantic schemas); the collector ran 121 times over them while they were
built (one full pass): 60-90 ms of a whole `mmbot run` on the real capture by
`gc.callbacks`, 140 M instructions. None of them is garbage, so the imports run
without it, and `gc.freeze` then moves them out of the collector's sight for the rest
of the process: later collections look only at what the command itself allocates.
Only the console script does this; importing `flows.cli` (tests, flows) leaves the
collector alone.
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    try:
        from flows.cli import main as cli_main
    finally:
        gc.freeze()
        gc.enable()
    return cli_main()
