"""Building one sim run: settings + a data source + an output directory ->
a journal and a summary. `mmbot run` is a thin command over `execute`.

Modes here are the two that send nothing to an exchange: `paper` (the
simulated venue: queue, latency, fees, faults) and `shadow` (fills inferred
from market trades, no queue, zero latency).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import structlog

from bot.config import Settings, instruments
from bot.engine import Engine
from bot.journal import MANIFEST, TABLES, JournalWriter
from bot.market.book import L2Book
from bot.market.clocks import ClockOffset, estimate_offset
from bot.market.readers import open_market
from bot.market.schema import MarketChunk
from bot.market.synth import generate
from bot.profiles import load_settings, redacted_dict
from bot.runtime.clock import parse_duration
from bot.runtime.sim_loop import LoopConfig, LoopStats, SimLoop
from bot.venues.shadow import ShadowVenue
from bot.venues.sim import FeedFaults, SimVenue, build_sim_venue

log = structlog.get_logger(__name__)

RunMode = Literal["paper", "shadow"]
SUMMARY: Final = "summary.json"
MODES: Final = ("paper", "shadow")


class RunError(Exception):
    """A run that cannot start as asked (bad mode, missing data, occupied out dir)."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What `mmbot run` was asked for, before settings are resolved."""

    mode: RunMode
    out_dir: Path
    profile: str = "base"
    data: Path | None = None
    synth_seed: int | None = None
    duration: str | None = None
    overrides: tuple[str, ...] = ()
    force: bool = False
    progress: bool | None = None  # None: only when stderr is a terminal


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    out_dir: Path
    summary: dict[str, Any]
    stats: LoopStats


def settings_for(spec: RunSpec, env: Mapping[str, str] | None = None) -> Settings:
    """Profile + env + `--set`, then what the command line fixes (mode, duration)."""
    if spec.mode not in MODES:
        raise RunError(f"--mode must be one of {', '.join(MODES)}, got {spec.mode!r}")
    overrides = [*spec.overrides, f"mode={spec.mode}"]
    if spec.duration is not None:
        try:
            parse_duration(spec.duration)
        except ValueError as exc:
            raise RunError(f"--duration: {exc}") from exc
        overrides += [f"run.duration={spec.duration}", f"data.synth.duration={spec.duration}"]
    return load_settings(spec.profile, overrides=overrides, env=env)


def run_id_of(spec: RunSpec, settings: Settings) -> str:
    """Same inputs -> same id (no clock, no randomness): the journal stays byte-identical."""
    key = json.dumps(
        [spec.mode, spec.profile, settings.run.seed, str(spec.data), spec.synth_seed,
         spec.duration, list(spec.overrides)],
    )  # fmt: skip
    return f"{spec.mode}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def market_source(spec: RunSpec, settings: Settings) -> tuple[str, Iterator[MarketChunk]]:
    """(label, chunks) of the data to replay: `--data`, `--synth SEED`, else the profile's."""
    data = settings.data
    path = (
        spec.data
        if spec.data is not None
        else (Path(data.path) if data.source == "replay" and data.path else None)
    )
    if path is not None:
        if not path.exists():
            raise RunError(f"--data {path}: no such file or directory")
        chunks = open_market(
            path, fmt=data.format, chunk_rows=data.chunk_rows, validation=data.validation
        )
        return str(path), chunks
    if data.source == "live":
        raise RunError("data.source=live needs the live shell; `mmbot run` replays or synthesises")
    seed = spec.synth_seed if spec.synth_seed is not None else settings.run.seed
    cfg = data.synth
    spec_of = settings.venue.symbols.get(cfg.symbol)
    if spec_of is None:
        raise RunError(
            f"data.synth.symbol {cfg.symbol!r} has no venue.symbols entry "
            f"(configured: {', '.join(settings.venue.symbols)})"
        )
    return f"synth:{cfg.symbol}:seed={seed}:{cfg.duration}", generate(cfg, spec_of, seed)


def manifest(
    run_id: str, spec: RunSpec, settings: Settings, source: str, clock: ClockOffset | None = None
) -> dict[str, Any]:
    """run.json: what the gates need to judge the journal without the settings file."""
    tier = settings.fees.tiers[settings.fees.tier]
    return {
        "run_id": run_id,
        "mode": spec.mode,
        "profile": spec.profile,
        "seed": settings.run.seed,
        "data_source": source,
        "duration": settings.run.duration,
        "symbols": {
            s: {
                "tick_size": str(v.tick_size),
                "lot_size": str(v.lot_size),
                "min_qty": str(v.min_qty),
                "min_notional": str(v.min_notional),
            }
            for s, v in settings.venue.symbols.items()
        },
        "max_inventory_usd": settings.risk.max_inventory_usd,
        "fee_tier": {
            "name": settings.fees.tier,
            "maker_bps": tier.maker_bps,
            "taker_bps": tier.taker_bps,
        },
        "queue_model": settings.sim.queue_model if spec.mode == "paper" else "none",
        # the capture clock's offset that put exchange time on the bot's axis
        "clock": clock.as_dict() if clock is not None else None,
        "settings": redacted_dict(settings),
    }


def _prepare_out(out_dir: Path, force: bool) -> None:
    if (out_dir / MANIFEST).exists():
        if not force:
            raise RunError(f"--out {out_dir} already holds a journal; pass --force to replace it")
        # only what a journal consists of: never anything else the user keeps there
        for name in TABLES:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in (MANIFEST, SUMMARY):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


@contextmanager
def _progress(enabled: bool | None) -> Iterator[Callable[[int], None] | None]:
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("replaying {task.completed:,.0f} rows"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("replay", total=None)
        yield lambda rows: bar.advance(task, rows)


def _venue(
    spec: RunSpec, settings: Settings, books: dict[str, L2Book]
) -> tuple[SimVenue, FeedFaults | None]:
    insts = instruments(settings)
    seed = settings.run.seed
    if spec.mode == "shadow":
        return ShadowVenue(settings, insts, books, seed=seed), None
    return build_sim_venue(settings, insts, books, seed), FeedFaults(settings.sim.faults, seed)


def run_bot(spec: RunSpec, settings: Settings) -> RunResult:
    """Replay, trade against the venue of the mode, write the journal; no printing."""
    run_id = run_id_of(spec, settings)
    source, chunks = market_source(spec, settings)
    # the first chunk sets the clock offset, which run.json records before the replay
    first = next(chunks, None)
    feed_ns = round(settings.sim.feed_latency_ms * 1e6)
    clock = estimate_offset(first, feed_ns) if first is not None else None
    chunks = itertools.chain([first] if first is not None else [], chunks)
    _prepare_out(spec.out_dir, spec.force)
    writer = JournalWriter(
        spec.out_dir, manifest(run_id, spec, settings, source, clock),
        segment_rows=settings.storage.journal_segment_rows,
    )  # fmt: skip
    books = {symbol: L2Book() for symbol in settings.venue.symbols}
    venue, feed_faults = _venue(spec, settings, books)
    engine = Engine(settings, writer, id_prefix=f"{spec.mode[0]}{settings.run.seed}")
    log.info("run_start", run_id=run_id, mode=spec.mode, source=source, out=str(spec.out_dir))
    with _progress(spec.progress) as progress:
        loop = SimLoop(
            engine, venue, books, instruments(settings), writer,
            LoopConfig(
                timer_ms=settings.run.timer_ms,
                book_sample_ms=settings.telemetry.book_sample_ms,
                duration_ns=parse_duration(settings.run.duration),
                record_book=False,  # the engine samples the book it saw (bot/engine.py)
                progress=progress,
                feed_faults=feed_faults,
                clock=clock,
            ),
        )  # fmt: skip
        try:
            stats = loop.run(chunks)
        finally:
            writer.close()
    summary = {
        "run_id": run_id,
        "out": str(spec.out_dir),
        "data_source": source,
        **engine.summary(),
        "venue": dict(venue.counts),
        "replay": stats.as_dict(),
    }
    (spec.out_dir / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    log.info("run_done", run_id=run_id, fills=summary["fills"], rows=stats.rows)
    return RunResult(run_id, spec.out_dir, summary, stats)


def execute(spec: RunSpec, env: Mapping[str, str] | None = None) -> RunResult:
    return run_bot(spec, settings_for(spec, env))


def _fixed(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(summary: Mapping[str, Any]) -> Sequence[str]:
    """The few figures a person reads after a run."""
    replay = summary.get("replay", {})
    return (
        f"run {summary['run_id']}  mode {summary['mode']}  state {summary['state']}",
        f"data {summary['data_source']}  rows {replay.get('rows', 0):,}  "
        f"book updates {replay.get('book_updates', 0):,}  trades {replay.get('trades', 0):,}",
        f"fills {summary['fills']}  maker share {_fixed(summary['maker_share'], 3)}  "
        f"turnover {summary['turnover_usd']:,.2f} USD",
        f"pnl {summary['pnl_usd']:.4f} USD  "
        f"pnl/turnover {_fixed(summary['pnl_per_turnover_bps'], 2)} bps  "
        f"fees {summary['fees_usd']:.4f} USD",
        f"orders {summary['places']}  cancels {summary['cancels']}  rejects {summary['rejects']}  "
        f"freezes {summary['freezes']}",
        f"journal {summary['out']}",
    )
