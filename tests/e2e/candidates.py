"""Release candidates for the KPI gate: one sensible bot and one bad bot per check.

Each bad candidate is the sensible one with one thing wrong, and names the check
of the KPI stage (`gates.stage.kpi_stage`) that is there to catch it. Every
candidate runs on the same two markets (the real BTCUSDT capture and the
calibrated synthetic market) and is judged by the same release policy, the
`mm3` profile as written: the candidate's own settings are evidence, never terms.

`python -m tests.e2e.candidates` runs them all and prints the Markdown table that
README's "What the gate catches" shows (`make gate-table`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot.runtime.run import RunSpec, run_bot, settings_for
from gates.stage import judge_run
from gates.verdict import Status, Verdict

POLICY: Final = "mm3"
SYNTH_SEED: Final = 7
SYNTH_DURATION: Final = "30m"
NEVER_FREEZE: Final = "risk.edge_freeze_bps=-1000"  # the edge guard off
# Toxic flow on the synthetic market: informed sweeps twice as often (annual vol 1.2 at
# the same trade rate). More toxic bursts would not do: the generator holds the total
# volatility, so each burst replaces sweeps and 12 bursts an hour made the flow milder.
# The guard does not rescue a quoter there (the sensible bot FAILs on it too); on the
# calibrated market it is what lifts the same touch quoter from a net WARN to a PASS.
TOXIC_SYNTH: Final = "data.synth.annual_vol=1.2"


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    what: str
    overrides: tuple[str, ...]
    caught_by: tuple[str, ...]  # empty: the sensible bot, which must PASS


CANDIDATES: Final = (
    Candidate("sensible", "the mm3 profile as written", (), ()),
    Candidate(
        "tight-toxic-no-guard",
        "quotes at the touch with no edge margin, edge guard off, on toxic flow",
        (
            "strategy.min_half_spread_bps=0",
            "strategy.expected_adverse_bps=0",
            "strategy.min_edge_bps=0",
            NEVER_FREEZE,
            TOXIC_SYNTH,
        ),
        ("net_bps",),
    ),
    Candidate(
        "latency-600ms",
        "600 ms from send to the venue",
        ("sim.entry_latency_ms=600", "sim.cancel_latency_ms=600"),
        ("order_latency_p95_ms",),
    ),
    Candidate(
        "skew-off",
        "no inventory skew",
        ("strategy.skew_bps_per_inventory=0", "strategy.order_qty=0.05", "risk.max_order_qty=0.1"),
        ("inventory_ratio_p95",),
    ),
    Candidate(
        "far-away",
        "quotes 10 bps from mid",
        ("strategy.min_half_spread_bps=10",),
        ("fills", "quote_uptime"),
    ),
    Candidate(
        "misstated-rebate",
        "claims a 3 bps maker rebate",
        ("fees.tiers.mm3.maker_bps=-3",),
        ("fees",),
    ),
)


@dataclass(frozen=True, slots=True)
class Market:
    name: str
    data: Path | None  # None: the profile's synthetic market


def markets(real_capture: Path) -> tuple[Market, ...]:
    return (Market("real BTCUSDT", real_capture), Market("synthetic", None))


def run_candidate(candidate: Candidate, market: Market, out: Path) -> Verdict:
    """One paper run of the candidate on the market, judged by the release policy."""
    spec = RunSpec(
        mode="paper",
        out_dir=out,
        profile=POLICY,
        data=market.data,
        synth_seed=SYNTH_SEED if market.data is None else None,
        duration=SYNTH_DURATION if market.data is None else None,
        overrides=candidate.overrides,
        force=True,
        progress=False,
    )
    run_bot(spec, settings_for(spec))
    return judge_run(out, POLICY)


def failing(verdict: Verdict) -> list[str]:
    return [c.name for c in verdict.checks if c.status is Status.FAIL] + [
        c.name for part in verdict.parts for c in part.checks if c.status is Status.FAIL
    ]


def _cell(verdict: Verdict, candidate: Candidate) -> str:
    if verdict.status is Status.FAIL:
        return f"FAIL ({', '.join(failing(verdict))})"
    warned = [c.name for c in verdict.checks if c.status is Status.WARN]
    return verdict.status.value + (f" ({', '.join(warned)})" if warned else "")


def table(real_capture: Path, work: Path) -> str:
    """The Markdown table: a row per candidate, a column per market."""
    cols = markets(real_capture)
    lines = [
        "| candidate | meant to be caught by | " + " | ".join(m.name for m in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for cand in CANDIDATES:
        cells = [
            _cell(run_candidate(cand, m, work / f"{cand.name}-{i}"), cand)
            for i, m in enumerate(cols)
        ]
        caught = ", ".join(f"`{c}`" for c in cand.caught_by) or "nothing: PASS"
        lines.append(f"| {cand.name}: {cand.what} | {caught} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    import tempfile

    real = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(
        "../shared/data/real/binance-futures_BTCUSDT_2024-08-08"
    )
    with tempfile.TemporaryDirectory() as work:
        print(table(real, Path(work)))


if __name__ == "__main__":
    main()
