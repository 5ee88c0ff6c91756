"""Building one sim run: settings + a data source + an output directory ->
a journal and a summary. `mmbot run` is a thin command over `execute`.

Modes here are the two that send nothing to an exchange: `paper` (the
simulated venue: queue, latency, fees, faults) and `shadow` (fills inferred
from market trades, no queue, zero latency).

A run writes its journal to `<out>.partial` and renames it to `<out>` once the
manifest is marked complete. A run stopped by Ctrl-C, SIGTERM or a data error
flushes what it has and leaves `<out>.partial`, which no gate accepts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import structlog

from bot.config import Settings, instruments
from bot.engine import Engine
from bot.journal import MANIFEST, TABLES, JournalFigures, JournalWriter, partial_path
from bot.market.book import L2Book
from bot.market.clocks import ClockOffset, estimate_offset
from bot.market.readers import InputMeter, open_market
from bot.market.schema import MarketChunk
from bot.model import Event
from bot.profiles import load_settings, redacted_dict
from bot.runtime.clock import Clock, WallClock, parse_duration
from bot.runtime.data_span import NS_PER_S, DataSpan, file_span, span_text
from bot.runtime.progress import (
    BarSink,
    LogSink,
    ProgressSink,
    ReplayProgress,
    estimating_total,
)
from bot.runtime.sim_loop import LoopConfig, LoopStats, SimLoop
from bot.runtime.telemetry import log_format_for
from bot.venues.shadow import ShadowVenue
from bot.venues.sim import FeedFaults, SimVenue, build_sim_venue

if TYPE_CHECKING:  # redis-py and prometheus-client load only for runs that use them
    from bot.runtime.control import StateLink
    from bot.runtime.health import RunMonitor

log = structlog.get_logger(__name__)

RunMode = Literal["paper", "shadow", "live", "canary"]
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
    # a bar on a terminal, else a log line every `progress_every_pct` % of the data time;
    # (None, the default, is True)
    progress: bool | None = None
    progress_every_pct: float = 10.0
    # a run on an exchange's streams: also write the market it heard here (bot/market/tape.py)
    record: Path | None = None


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


def _data_path(spec: RunSpec, settings: Settings) -> Path | None:
    """The file or directory to replay (`--data`, else the profile's); None: synthesise."""
    if spec.data is not None:
        return spec.data
    data = settings.data
    return Path(data.path) if data.source == "replay" and data.path else None


def market_source(
    spec: RunSpec, settings: Settings, meter: InputMeter | None = None
) -> tuple[str, Iterator[MarketChunk]]:
    """(label, chunks) of the data to replay: `--data`, `--synth SEED`, else the profile's;
    `meter` follows how much of a file source is read."""
    data = settings.data
    path = _data_path(spec, settings)
    if path is not None:
        if not path.exists():
            raise RunError(f"--data {path}: no such file or directory")
        chunks = open_market(
            path, fmt=data.format, chunk_rows=data.chunk_rows, validation=data.validation,
            meter=meter,
        )  # fmt: skip
        return str(path), chunks
    if data.source == "live":
        raise RunError("data.source=live needs the live shell; `mmbot run` replays or synthesises")
    from bot.market.synth import generate  # a replay does not load the generator

    seed = spec.synth_seed if spec.synth_seed is not None else settings.run.seed
    cfg = data.synth
    spec_of = settings.venue.symbols.get(cfg.symbol)
    if spec_of is None:
        raise RunError(
            f"data.synth.symbol {cfg.symbol!r} has no venue.symbols entry "
            f"(configured: {', '.join(settings.venue.symbols)})"
        )
    return f"synth:{cfg.symbol}:seed={seed}:{cfg.duration}", generate(cfg, spec_of, seed)


def data_span_ns(spec: RunSpec, settings: Settings) -> int | None:
    """The data time the source holds, known before the replay: the synthetic market's
    duration, a file's own metadata; None when only a pass over the rows could tell."""
    path = _data_path(spec, settings)
    if path is None:
        return parse_duration(settings.data.synth.duration)
    span = file_span(path, settings.data.format)
    return None if span is None else span.ns


def _slack_ns(duration_ns: int) -> int:
    """How far a duration and a data span may differ unremarked: a file's first-to-last
    row span falls a little short of the time it was recorded for (a 1 h file spans
    59:59.9), so 1 % of the duration, at least a second."""
    return max(NS_PER_S, duration_ns // 100)


def warn_duration(duration: str, span_ns: int | None, source: str) -> bool:
    """Warn when the run's duration and the data's span differ; False if the span is
    unknown (the replay then tells: `warn_replayed`)."""
    if span_ns is None:
        return False
    want = parse_duration(duration)
    data = span_text(span_ns)
    if want > span_ns + _slack_ns(want):
        log.warning(
            "duration_exceeds_data", duration=duration, data_span=data, source=source,
            detail=f"duration {duration} is longer than the data ({data})",
        )  # fmt: skip
    elif want < span_ns - _slack_ns(want):
        log.warning(
            "duration_cuts_data", duration=duration, data_span=data, source=source,
            detail=f"duration {duration} stops before the end of the data ({data})",
        )  # fmt: skip
    return True


def warn_replayed(duration: str, stats: LoopStats, source: str) -> None:
    """After a replay whose data span was unknown up front: what the replay showed."""
    span = stats.last_ts_ns - stats.first_ts_ns
    replayed = span_text(span)
    if stats.stopped_early:
        log.warning(
            "duration_cuts_data", duration=duration, replayed=replayed, source=source,
            detail=f"duration {duration} stops before the end of the data (its span is "
            "unknown without reading it all: a compressed file)",
        )  # fmt: skip
    elif span + _slack_ns(parse_duration(duration)) < parse_duration(duration):
        log.warning(
            "duration_exceeds_data", duration=duration, data_span=replayed, source=source,
            detail=f"duration {duration} is longer than the data ({replayed})",
        )  # fmt: skip


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


def _prepare_out(out_dir: Path, force: bool) -> Path:
    """The `.partial` directory to write into, empty; refuses to replace a journal (or
    the partial one of an interrupted run) without `force`. An old journal in `out_dir`
    stays until the new run is complete (`_publish`)."""
    partial = partial_path(out_dir)
    if (out_dir / MANIFEST).exists() and not force:
        raise RunError(f"--out {out_dir} already holds a journal; pass --force to replace it")
    if partial.exists():
        if not (partial / MANIFEST).exists():
            raise RunError(f"{partial} exists and is not a partial journal; move it away")
        if not force:
            raise RunError(
                f"{partial} holds the partial journal of an interrupted run; "
                "pass --force to replace it"
            )
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def _clear_journal(out_dir: Path) -> None:
    """Remove what a journal consists of, manifest first: never anything else kept there."""
    for name in (MANIFEST, SUMMARY):
        (out_dir / name).unlink(missing_ok=True)
    for name in TABLES:
        shutil.rmtree(out_dir / name, ignore_errors=True)


def _publish(partial: Path, out_dir: Path) -> None:
    """`partial` becomes `out_dir`: one rename when `out_dir` is absent or empty once its
    old journal is gone; else the entries move in one by one, the manifest last, so a
    reader never sees a complete manifest over half the tables."""
    if out_dir.exists():
        _clear_journal(out_dir)
        if not any(out_dir.iterdir()):
            out_dir.rmdir()
    if not out_dir.exists():
        os.replace(partial, out_dir)
        return
    entries = sorted(partial.iterdir(), key=lambda p: p.name == MANIFEST)
    for entry in entries:
        os.replace(entry, out_dir / entry.name)
    partial.rmdir()


def _progress_sink(spec: RunSpec, settings: Settings) -> ProgressSink | None:
    """A bar on a terminal (unless logs are JSON there), log lines elsewhere, nothing
    with `--no-progress`."""
    if spec.progress is False:
        return None
    if sys.stderr.isatty() and log_format_for(settings) != "json":
        return BarSink()
    return LogSink(spec.progress_every_pct)


@contextmanager
def _progress(
    spec: RunSpec, settings: Settings, total_ns: int, engine: Engine, wall: Clock | None
) -> Iterator[ReplayProgress | None]:
    """The replay's progress display over `total_ns` of data time, closed with the run."""
    sink = _progress_sink(spec, settings)
    if sink is None:
        yield None
        return
    progress = ReplayProgress(sink, total_ns, engine.progress_figures,
                              wall if wall is not None else WallClock())  # fmt: skip
    try:
        yield progress
    except BaseException:
        progress.close(finished=False)  # the bar goes; the log says where it stopped
        raise


def _venue(
    spec: RunSpec, settings: Settings, books: dict[str, L2Book]
) -> tuple[SimVenue, FeedFaults | None]:
    insts = instruments(settings)
    seed = settings.run.seed
    if spec.mode == "shadow":
        return ShadowVenue(settings, insts, books, seed=seed), None
    return build_sim_venue(settings, insts, books, seed), FeedFaults(settings.sim.faults, seed)


def run_bot(
    spec: RunSpec,
    settings: Settings,
    *,
    wall: Clock | None = None,
    state: StateLink | None = None,
    monitor: RunMonitor | None = None,
) -> RunResult:
    """Replay, trade against the venue of the mode, write the journal; no printing but
    the progress display (`wall` times it: the ETA is wall time).

    `state` (holding its lease, see bot/runtime/control.py) joins the run to the shared
    state: heartbeat, operator commands, lease renewal on the loop's timers, the fence
    on every order. `monitor` (bot/runtime/health.py) hears the loop's timers and the
    journal's rows for its metrics and readiness. Without them the journal is what it
    always was.

    Whatever stops the replay (KeyboardInterrupt, a MarketDataError, ...) propagates
    after the rows so far are flushed to the journal left at `partial_path(out)`.
    In the main thread SIGTERM stops it as Ctrl-C does (KeyboardInterrupt), at the
    next chunk of data.
    """
    run_id = run_id_of(spec, settings)
    span_ns = data_span_ns(spec, settings)
    meter = InputMeter() if span_ns is None else None  # the span, estimated while read
    source, chunks = market_source(spec, settings, meter)
    # the first chunk sets the clock offset, which run.json records before the replay
    first = next(chunks, None)
    feed_ns = round(settings.sim.feed_latency_ms * 1e6)
    clock = estimate_offset(first, feed_ns) if first is not None else None
    chunks = itertools.chain([first] if first is not None else [], chunks)
    partial = _prepare_out(spec.out_dir, spec.force)
    duration = settings.run.duration
    span_known = warn_duration(duration, span_ns, source)
    # the data time the replay will cover, for its progress: unknown span, the duration
    total_ns = parse_duration(duration)
    total_ns = total_ns if span_ns is None else min(span_ns, total_ns)
    writer = JournalWriter(
        partial, manifest(run_id, spec, settings, source, clock),
        segment_rows=settings.storage.journal_segment_rows,
        segment_ns=settings.storage.journal_segment_ns,
    )  # fmt: skip
    books = {symbol: L2Book() for symbol in settings.venue.symbols}
    venue, feed_faults = _venue(spec, settings, books)
    engine = Engine(settings, writer, id_prefix=f"{spec.mode[0]}{settings.run.seed}")
    if state is not None:
        state.trading_state = lambda: engine.risk.state.value
        _join_stream(state, writer, run_id)
    if monitor is not None:
        risk = settings.risk
        monitor.attach(engine, writer, risk.max_inventory_usd, risk.stale_data_ms, state)
    log.info("run_start", run_id=run_id, mode=spec.mode, source=source, out=str(spec.out_dir))
    with _progress(spec, settings, total_ns, engine, wall) as progress:
        if progress is not None and meter is not None:
            chunks = estimating_total(chunks, meter.fraction, progress, total_ns)
        loop = SimLoop(
            engine, venue, books, instruments(settings), writer,
            LoopConfig(
                timer_ms=settings.run.timer_ms,
                book_sample_ms=settings.telemetry.book_sample_ms,
                duration_ns=parse_duration(duration),
                record_book=False,  # the engine samples the book it saw (bot/engine.py)
                progress=progress,
                feed_faults=feed_faults,
                clock=clock,
                on_timer=_on_timer(state, monitor),
                gate=state.gate if state is not None else None,
            ),
        )  # fmt: skip
        stop = StopRequest()
        try:
            with _signal_handler(stop):
                stats = loop.run(stop.chunks(chunks))
            if progress is not None:
                progress.close(finished=True, reached_ns=stats.last_ts_ns)
        except BaseException as exc:  # Ctrl-C, SIGTERM, bad data: keep what was journaled
            with _signal_handler(signal.SIG_IGN):  # a second Ctrl-C must not cut the flush
                writer.flush_all()
            log.warning("run_stopped", run_id=run_id, partial=str(partial),
                        error=type(exc).__name__)  # fmt: skip
            raise
    if not span_known:
        warn_replayed(duration, stats, source)
    span = DataSpan(stats.first_ts_ns, stats.last_ts_ns)
    writer.close({"data_span": {**span.to_dict(), "cut_by_duration": stats.stopped_early}})
    summary = {
        "run_id": run_id,
        "out": str(spec.out_dir),
        "data_source": source,
        **engine.summary(),
        **journal_figures(writer.figures),
        "venue": dict(venue.counts),
        "replay": stats.as_dict(),
        **({} if state is None else {"shared_state": _state_figures(state)}),
    }  # fmt: skip
    (partial / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    _publish(partial, spec.out_dir)
    log.info("run_done", run_id=run_id, fills=summary["fills"], rows=stats.rows)
    return RunResult(run_id, spec.out_dir, summary, stats)


def _on_timer(
    state: StateLink | None, monitor: RunMonitor | None
) -> Callable[[int, int, int], list[Event]] | None:
    """What hears the loop's timers: the shared state, then the metrics (which then see
    the lease as it is after this poll)."""
    if monitor is None:
        return state.on_timer if state is not None else None
    if state is None:
        return monitor.on_timer
    link_poll, monitor_poll = state.on_timer, monitor.on_timer

    def both(ts_ns: int, market_ns: int, ack_ns: int) -> list[Event]:
        events = link_poll(ts_ns, market_ns, ack_ns)
        monitor_poll(ts_ns, market_ns, ack_ns)
        return events

    return both


def _join_stream(state: StateLink, writer: JournalWriter, run_id: str) -> None:
    """Each part the writer flushes also goes to the account's journal stream."""
    spool = state.settings.spool_dir
    if spool is None or state.token is None:
        return
    from bot.runtime.journal_stream import JournalStream

    state.stream = JournalStream(state.store, run_id, state.token, spool)
    writer.on_flush.append(state.stream.publish)


def _state_figures(state: StateLink) -> dict[str, Any]:
    stream = state.stream
    return {
        "account": state.store.account, "token": state.token, "fenced": state.fenced,
        "redis_errors": state.redis_errors + (stream.redis_errors if stream else 0),
        "journal_stream": stream.figures() if stream else None,
    }  # fmt: skip


def journal_figures(figures: JournalFigures) -> dict[str, Any]:
    """The summary's figures of the journal rows the writer flushed, so that they are
    what `mmbot kpi` finds in the journal: pnl_usd by the KPI's one definition (the
    engine's own mark is its last touch, which the sampled book may not hold) and the
    risk blocks by check, most frequent first."""
    pnl = figures.pnl_usd()
    turnover = figures.turnover_usd()
    by_check = figures.blocks_by_check()
    return {
        "pnl_usd": pnl,
        # PnL per turnover: not the KPI net_bps of DESIGN §6 (`mmbot kpi` computes that)
        "pnl_per_turnover_bps": pnl / turnover * 1e4 if turnover else None,
        "blocks": sum(by_check.values()),
        "blocks_by_check": by_check,
    }


@contextmanager
def _signal_handler(handler: Any) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM during the block. Handlers can only be set in the
    main thread; elsewhere (a flow's worker thread) signals keep theirs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


class StopRequest:
    """Ctrl-C / SIGTERM during a replay: the first asks the run to stop at the next chunk
    boundary (so no journal segment is cut half-written), a second stops it at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def chunks(self, chunks: Iterable[MarketChunk]) -> Iterator[MarketChunk]:
        for chunk in chunks:
            if self.signal is not None:
                raise KeyboardInterrupt(signal.Signals(self.signal).name)
            yield chunk
        if self.signal is not None:  # came during the last chunk: the run still stopped
            raise KeyboardInterrupt(signal.Signals(self.signal).name)


def execute(spec: RunSpec, env: Mapping[str, str] | None = None) -> RunResult:
    return run_bot(spec, settings_for(spec, env))


def _fixed(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _blocks(summary: Mapping[str, Any]) -> str:
    """'1,284 (top: max_order_notional)': the count and the check that blocked most."""
    by_check = summary.get("blocks_by_check") or {}
    top = f" (top: {next(iter(by_check))})" if by_check else ""
    return f"{summary['blocks']:,}{top}"


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
        f"risk blocks {_blocks(summary)}  freezes {summary['freezes']}",
        f"journal {summary['out']}",
    )
