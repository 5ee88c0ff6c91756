"""One run on an exchange's streams: live or canary (real orders: the two arms, the
venue, the loop, the journal), or shadow (public streams only, orders to the shadow
venue, no credentials).

Real orders need two explicit arms: `live.enabled: true` in the profile AND
MMBOT_LIVE_ARMED=1 in the environment; anything less is refused before a
credential is read or a socket opened. The journal is written as a paper run's
is (bot/runtime/run.py): to `<out>.partial`, renamed once complete, so `mmbot
kpi` reads a live journal like any other.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from bot.config import Settings, instruments
from bot.engine import Engine
from bot.journal import JournalWriter
from bot.market.tape import Tape
from bot.model import Instrument, OrderFill
from bot.profiles import load_settings
from bot.runtime.clock import Clock, WallClock, parse_duration
from bot.runtime.data_span import DataSpan
from bot.runtime.ledger import AccountLedger, Recovery, RunRecord, take_over
from bot.runtime.live_loop import LiveLoop, LiveLoopConfig, LiveStats
from bot.runtime.reconcile import balance_change, reconcile_fills
from bot.runtime.run import (
    SUMMARY,
    RunError,
    RunSpec,
    _join_stream,
    _on_timer,
    _prepare_out,
    _publish,
    _state_figures,
    journal_figures,
    manifest,
)
from bot.runtime.secrets import exchange_credentials, fresh_credentials, store_for
from bot.venues.exchange import ExchangeVenue, OpenOrder, ccxt_exchange
from bot.venues.shadow_live import LiveShadow

if TYPE_CHECKING:
    from bot.model import Event
    from bot.runtime.control import StateLink
    from bot.runtime.health import RunMonitor

log = structlog.get_logger(__name__)

ARMED_ENV: Final = "MMBOT_LIVE_ARMED"
# on disk at every row: real fills are few, and a kill -9 must not lose one heard
DURABLE_TABLES: Final = frozenset({"fills"})


class NotArmed(RunError):
    """A live or canary run without both arms."""


@dataclass(frozen=True, slots=True)
class LiveResult:
    run_id: str
    out_dir: Path
    summary: dict[str, Any]
    stats: LiveStats


def check_armed(settings: Settings, env: Mapping[str, str]) -> None:
    """Refuse real orders unless the profile AND the environment both say so."""
    missing = []
    if not settings.live.enabled:
        missing.append("live.enabled is not true in the profile")
    if env.get(ARMED_ENV) != "1":
        missing.append(f"{ARMED_ENV}=1 is not set in the environment")
    if missing:
        raise NotArmed(
            f"mode {settings.mode!r} sends real orders and needs two arms: " + "; ".join(missing)
        )


def live_settings(
    spec: RunSpec,
    *,
    exchange: str | None = None,
    exchange_url: str | None = None,
    testnet: bool = False,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Profile + env + `--set`, then what the command line fixes (mode, venue, url)."""
    overrides = [*spec.overrides, f"mode={spec.mode}"]
    if spec.duration is not None:
        try:
            parse_duration(spec.duration)
        except ValueError as exc:
            raise RunError(f"--duration: {exc}") from exc
        overrides.append(f"run.duration={spec.duration}")
    if exchange is not None:
        overrides.append(f"venue.name={exchange}")
    if exchange_url is not None:
        overrides.append(f"live.exchange_url={exchange_url}")
    if testnet:
        overrides.append("venue.testnet=true")
    return load_settings(spec.profile, overrides=overrides, env=env)


def run_id_at(mode: str, start_ns: int) -> str:
    """A run id unique per start, short enough for Bybit's 36-character orderLinkId."""
    stamp = base64.b32encode((start_ns // 1_000_000).to_bytes(6, "big")).decode().rstrip("=")
    return f"{mode[0].upper()}{stamp}"


def run_live(
    spec: RunSpec,
    settings: Settings,
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    on_heartbeat: Callable[[int], None] | None = None,
    state: StateLink | None = None,
    monitor: RunMonitor | None = None,
) -> LiveResult:
    """`state` (holding its lease) and `monitor` join the run to the shared state and
    the health server exactly as a replay joins them (bot/runtime/run.py)."""
    shadow = settings.mode == "shadow"
    if not shadow:  # a shadow sends nothing and reads only public streams
        check_armed(settings, env)
    clock = clock or WallClock()
    secrets = store_for(settings, env, clock)
    credentials = None if shadow else exchange_credentials(settings, store=secrets)
    run_id = run_id_at(settings.mode, clock.now_ns())
    partial = _prepare_out(spec.out_dir, spec.force)
    venue_name = settings.venue.name
    source = f"live:{venue_name}" + (
        f"@{settings.live.exchange_url}" if settings.live.exchange_url else ""
    )
    writer = JournalWriter(
        partial, manifest(run_id, spec, settings, source),
        segment_rows=settings.storage.journal_segment_rows,
        segment_ns=settings.storage.journal_segment_ns,
        flush_each=frozenset() if shadow else DURABLE_TABLES,
    )  # fmt: skip
    engine = Engine(settings, writer, id_prefix=run_id)
    exchange = ccxt_exchange(
        venue_name, credentials, url=settings.live.exchange_url, testnet=settings.venue.testnet
    )
    venue = ExchangeVenue(
        exchange, instruments(settings), clock,
        credentials=lambda: fresh_credentials(settings, secrets),
    )  # fmt: skip
    cfg = LiveLoopConfig(
        duration_ns=parse_duration(settings.run.duration), timer_ms=settings.run.timer_ms,
        orphans=settings.live.orphans,
        position_tolerance_lots=settings.live.position_tolerance_lots,
        confirm_ms=settings.live.confirm_ms, dead_man_s=settings.live.dead_man_s,
        shutdown_patience_s=settings.live.shutdown_patience_s,
        reconcile_every_s=settings.live.reconcile_every_s,
    )  # fmt: skip
    tape = Tape(settings.venue.symbols) if spec.record is not None else None
    loop = LiveLoop(
        engine, venue, clock, cfg, on_heartbeat=on_heartbeat,
        shadow=LiveShadow(settings, instruments(settings)) if shadow else None,
        gate=state.gate if state is not None else None,
        leads=state.leads if state is not None else None, tape=tape,
    )  # fmt: skip
    _join_state(loop, engine, writer, settings, run_id, state, monitor)
    if state is not None and not shadow:
        _keep_ledger(loop, engine, writer, AccountLedger(state.store), run_id, clock)
    log.info("live_start", run_id=run_id, venue=venue_name, url=settings.live.exchange_url,
             testnet=settings.venue.testnet, out=str(spec.out_dir))  # fmt: skip

    async def main() -> LiveStats:
        stopping = stop or asyncio.Event()
        _stop_on_sigterm(stopping)
        try:
            return await loop.run(stopping)
        finally:
            await venue.close()

    try:
        stats = asyncio.run(main())
    except BaseException:
        writer.flush_all()  # what was journaled stays readable in the partial journal
        raise
    finally:
        recorded = tape.write(spec.record) if tape is not None and spec.record else None
    span = DataSpan(stats.first_ts_ns, max(stats.last_ts_ns, stats.first_ts_ns))
    writer.close({"data_span": {**span.to_dict(), "cut_by_duration": True}})
    figures = engine.summary()
    if not shadow:
        stats.reconciliation = reconcile_fills(loop.venue_fills, instruments(settings), figures)
        stats.reconciliation["balance"] = balance_change(
            stats.balance_start, stats.balance_end, figures
        )
    summary = {
        "run_id": run_id, "out": str(spec.out_dir), "data_source": source,
        **figures, **journal_figures(writer.figures), "live": stats.as_dict(),
        **({} if state is None else {"shared_state": _state_figures(state)}),
        **({} if recorded is None else {"recorded": recorded}),
    }  # fmt: skip
    (partial / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    _publish(partial, spec.out_dir)
    log.info("live_done", run_id=run_id, fills=summary["fills"], stop=stats.stop_reason)
    return LiveResult(run_id, spec.out_dir, summary, stats)


def _keep_ledger(
    loop: LiveLoop, engine: Engine, writer: JournalWriter, ledger: AccountLedger, run_id: str,
    clock: Clock,
) -> None:  # fmt: skip
    """Take over what the account's previous run left (bot/runtime/ledger.py), then
    keep the record for the next one: this run's opening and every fill it journals."""
    venue = loop.venue
    insts = venue.instruments

    def on_opening(held: Mapping[str, tuple[int, int]], recovery: Recovery | None,
                   adopted: tuple[OpenOrder, ...]) -> None:  # fmt: skip
        engine.open_positions(held)
        now = clock.now_ns()
        origin = f"adopted from run {recovery.previous if recovery else None}"
        for o in adopted:
            engine.adopt(now, o.symbol, o.client_order_id, o.side, o.px, o.qty - o.filled,
                         o.venue_order_id, origin)  # fmt: skip
        missed = recovery.missed if recovery is not None else ()
        writer.open_positions(
            {s: {"qty": float(insts[s].lot_size * lots), "price": float(insts[s].tick_size * px)}
             for s, (lots, px) in held.items()},
            recovered={"from_run": recovery.previous if recovery else None,
                       "fills": [_fill_record(f, insts[f.symbol]) for f in missed]},
        )  # fmt: skip
        loop.stats.recovered_fills = len(missed)
        if missed:
            log.warning("live_recovered_fills", previous=recovery and recovery.previous,
                        fills=len(missed))  # fmt: skip
        opening = {s: lots for s, (lots, _) in held.items()}
        kept = tuple(o.client_order_id for o in adopted)
        counted = tuple(sorted(loop.counted))
        ledger.begin(RunRecord(run_id, opening, now // 1_000_000, kept, counted))

    def on_flush(table: str, part: int, rows: Any) -> None:
        if table == "fills":
            ledger.heard(run_id, rows.column("trade_id").to_pylist())

    loop.take_over = lambda: take_over(ledger, venue)
    loop.on_opening = on_opening
    writer.on_flush.append(on_flush)


def _fill_record(fill: OrderFill, inst: Instrument) -> dict[str, Any]:
    """A fill as the manifest lists the recovered ones: the fills table's units."""
    return {
        "ts_ns": fill.ts_ns, "symbol": fill.symbol, "client_order_id": fill.client_order_id,
        "trade_id": fill.trade_id, "side": int(fill.side),
        "price": float(inst.tick_size * fill.px), "qty": float(inst.lot_size * fill.qty),
        "fee": float(fill.fee),
    }  # fmt: skip


def _stop_on_sigterm(stop: asyncio.Event) -> None:
    """SIGTERM (a service manager's stop) ends the run as its duration would: cancel
    all, confirm, journal. Only the main thread may set signal handlers."""
    if threading.current_thread() is threading.main_thread():
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)


def _join_state(
    loop: LiveLoop, engine: Engine, writer: JournalWriter, settings: Settings, run_id: str,
    state: StateLink | None, monitor: RunMonitor | None,
) -> None:  # fmt: skip
    """The live loop's timers poll the shared state and then the metrics; the monitor
    also sees the websocket's lag and whether the venue is connected."""
    if state is not None:
        state.trading_state = lambda: engine.risk.state.value
        _join_stream(state, writer, run_id)
    if monitor is None:
        loop.on_timer = _on_timer(state, None)
        return
    monitor.attach(engine, writer, settings.risk.max_inventory_usd, settings.risk.stale_data_ms,
                   state)  # fmt: skip
    monitor.venue_connected = lambda: loop.connected
    monitor.books_differ = lambda: bool(loop.stats.reconcile_differences)
    polls = _on_timer(state, monitor)
    assert polls is not None  # the monitor is there

    def on_timer(ts_ns: int, market_ns: int, ack_ns: int) -> list[Event]:
        if loop.ws_lag_s == loop.ws_lag_s:  # NaN until the first book message
            monitor.metrics.ws_lag.set(loop.ws_lag_s)
        return polls(ts_ns, market_ns, ack_ns)

    loop.on_timer = on_timer
