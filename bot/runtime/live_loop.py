"""The live shell (DESIGN §3): ccxt pro streams in, REST commands out, the same engine.

One asyncio task per stream (order book and trades per symbol, our orders, our
executions) turns ccxt's structures into engine events and puts them on one
queue; a single consumer feeds the engine (which is synchronous and does no I/O)
and puts its commands on a second queue, which one sender executes in order
through the exchange venue (bot/venues/exchange.py), so a cancel never overtakes
its own place. Reports arrive twice on a live venue (the REST answer and the order
stream); `Delivery` passes each one to the engine once.

Bybit's REST answer to a post-only order only says "accepted": the order stream
then says New, or Cancelled with EC_PostOnlyWillTakeLiquidity (a reject). So the
REST ack of a post-only order is held back and the stream decides; an order the
stream stays silent about for `confirm_ms` is looked up over REST on a timer.

Start: reconcile (orphan open orders cancelled, or the start refused, per
profile; the venue's position compared with the bot's: the position the account's
previous run left, by its ledger and the venue's trade history (bot/runtime/ledger.py),
or `bot_positions`; a mismatch beyond the tolerance halts with a report; a match
opens the engine with the venue's position). Stop (duration, stop event, fatal venue error):
cancel all, confirm nothing is open, and the caller flushes the journal.

The shared state joins through two seams, as in the sim loop (bot/runtime/control.py):
`on_timer(ts, market_ts, ack_ts)` after every timer tick, from the loop itself (lease,
heartbeat, operator commands, metrics; its events go to the engine), and `gate(place)`
before every Place goes out (the fence: a refusal becomes the engine's reject).
A cancel-all is account-wide at the venue, so it goes out as one only while `leads()`
(the fence) says this process leads the account; otherwise (a deposed leader freezing,
or stopping) it cancels this run's own orders one by one and never the new leader's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import structlog
from ccxt.base.errors import NetworkError

from bot.market.tape import Tape
from bot.model import (
    BookUpdate,
    Cancel,
    CancelAll,
    Command,
    Event,
    Freeze,
    FreezeRequest,
    OrderAck,
    OrderFill,
    Place,
    Side,
    Timer,
    Trade,
    VenueReport,
)
from bot.runtime.clock import Clock
from bot.runtime.delivery import Delivery, RecentIds
from bot.runtime.ledger import CLOCK_MARGIN_MS, Recovery, adopted_left
from bot.runtime.reconcile import Tally, differences, position_differences, tally
from bot.runtime.sim_loop import EngineLike
from bot.venues.exchange import (
    ExchangeHalted,
    ExchangeVenue,
    OpenOrder,
    PlacementUnknown,
    fill_from_ccxt,
    order_reports,
    units,
)
from bot.venues.shadow_live import LiveShadow

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
RECONNECT_FIRST_S: Final = 0.1
RECONNECT_MAX_S: Final = 5.0
# a reconciliation waits at most this many ms for the engine to book the fills it handed
# over (a busy market may never leave the queue empty; a fill in flight shows one round)
DRAIN_POLLS: Final = 500
# the adopting start reads the history and the position again while a kept order fills
OPENING_READS: Final = 3
T = TypeVar("T")
# the venue's positions (lots, entry ticks), the previous run's legacy, the orders adopted
OnOpening = Callable[[Mapping[str, tuple[int, int]], Recovery | None, tuple[OpenOrder, ...]], None]
OrphanPolicy = Literal["cancel", "refuse", "adopt"]


class LiveHalt(Exception):
    """The live loop stopped trading for a reason a person must read (the report)."""


@dataclass(frozen=True, slots=True)
class LiveLoopConfig:
    duration_ns: int
    timer_ms: int = 100
    book_depth: int = 50
    orphans: OrphanPolicy = "cancel"
    position_tolerance_lots: int = 0
    # how long a post-only order may wait for the order stream before a REST lookup
    confirm_ms: int = 2_000
    # the venue's dead-man switch window (None: not armed)
    dead_man_s: int | None = None
    # how long the stop keeps trying to cancel all while the venue fails
    shutdown_patience_s: float = 30.0
    # the financial reconciliation's period (bot/runtime/reconcile.py; None: off)
    reconcile_every_s: float | None = 60.0


@dataclass(slots=True)
class LiveStats:
    events: int = 0
    commands: int = 0
    book_updates: int = 0
    trades: int = 0
    reports: int = 0
    duplicates: int = 0
    foreign: int = 0  # reports of other runs' orders on the account (not ours to hear)
    lookups: int = 0
    reconnects: int = 0
    book_gaps: int = 0
    dead_man: bool = False
    orphans_cancelled: int = 0
    orphans_adopted: int = 0
    recovered_fills: int = 0  # the previous run's fills it never journaled (run.json)
    reconciliations: int = 0  # periodic rounds done
    reconcile_differences: list[str] = field(default_factory=list)  # the last round's
    stop_reason: str = ""
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    # the venue's trade history against the bot's books (bot/runtime/live_run.py)
    reconciliation: dict[str, Any] | None = None
    balance_start: float | None = None  # the account's wallet balance (USDT) at the start
    balance_end: float | None = None  # and once nothing is open at the stop

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class LiveLoop:
    def __init__(
        self,
        engine: EngineLike,
        venue: ExchangeVenue,
        clock: Clock,
        cfg: LiveLoopConfig,
        *,
        bot_positions: Mapping[str, int] | None = None,
        on_heartbeat: Callable[[int], None] | None = None,
        shadow: LiveShadow | None = None,
        on_timer: Callable[[int, int, int], list[Event]] | None = None,
        gate: Callable[[Place], Event | None] | None = None,
        leads: Callable[[], bool] | None = None,
        take_over: Callable[[], Awaitable[Recovery]] | None = None,
        on_opening: OnOpening | None = None,
        tape: Tape | None = None,
    ) -> None:
        """With `shadow`, orders go to the shadow venue instead of the exchange: only the
        public streams are watched and nothing on the account is read or changed.
        `take_over` says what the account's previous run left (bot/runtime/ledger.py):
        the position expected at the venue, instead of `bot_positions`; `on_opening`
        hears the venue's positions (lots, entry ticks) once they match and the orders
        adopted, before the first quote. `tape` keeps every book and trade the engine
        hears, stamped as the engine's events are."""
        self.engine, self.venue, self.clock, self.cfg = engine, venue, clock, cfg
        self.shadow = shadow
        self.bot_positions = dict(bot_positions or {})
        self.on_heartbeat = on_heartbeat
        self.stats = LiveStats()
        self.delivery = Delivery()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._commands: asyncio.Queue[Command] = asyncio.Queue()
        self._tops: dict[str, tuple[int, int, int, int]] = {}
        self._trade_ids: dict[str, RecentIds] = {}
        # every fill the venue reports for the run, read at shutdown (reconciliation)
        self.venue_fills: list[OrderFill] = []
        self._fatal: BaseException | None = None
        self._stop = asyncio.Event()
        self.on_timer, self.gate, self.leads = on_timer, gate, leads
        self.take_over, self.on_opening = take_over, on_opening
        self.tape = tape
        self.market_ns = 0  # local time of the last order book message
        self.ack_ns = 0  # local time of the last order ack the engine heard
        self.ws_lag_s = float("nan")  # receipt - exchange time of the last book message
        self._down: set[str] = set()  # streams between a lost connection and the next update
        # ids this run sent: the account's order stream also tells of other runs' orders
        self._placed: set[str] = set()
        self._connected = False
        # the fills handed to the engine and the opening, per symbol: the bot's books
        self.booked = {symbol: Tally() for symbol in venue.instruments}
        self.opening_lots: dict[str, int] = {}
        # trade ids of adopted orders' fills made before the take-over: in the opening
        self.counted: set[str] = set()
        self._history_since_ms = 0  # this run's trade history from here (0: its first tick)

    @property
    def connected(self) -> bool:
        """Connected to the venue and no stream is reconnecting."""
        return self._connected and not self._down

    # --- the whole run -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> LiveStats:
        """Trade until `stop` is set, the duration has passed or a worker fails."""
        if stop is not None:
            self._stop = stop
        stop = self._stop
        await self.venue.connect()
        self._connected = True
        if self.shadow is None:
            await self.reconcile()
            if self.cfg.dead_man_s is not None:
                self.stats.dead_man = await self.venue.arm_dead_man(self.cfg.dead_man_s)
        self.stats.first_ts_ns = self.clock.now_ns()
        tasks = [asyncio.create_task(c) for c in self._workers(stop)]
        try:
            await self._wait(stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stats.book_gaps = int(getattr(self.venue.exchange, "book_gaps", 0))
            await self.shutdown()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _workers(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        workers: list[Coroutine[Any, Any, None]] = [
            self._guard(self._consume()), self._guard(self._tick(stop)),
        ]  # fmt: skip
        if self.shadow is None:
            workers += [self._guard(self._send()), self._guard(self._watch_orders()),
                        self._guard(self._watch_fills())]  # fmt: skip
            if self.cfg.reconcile_every_s is not None:
                workers.append(self._guard(self._reconcile_every(self.cfg.reconcile_every_s)))
        for symbol in self.venue.instruments:
            workers += [
                self._guard(self._watch_book(symbol)),
                self._guard(self._watch_trades(symbol)),
            ]
        return workers

    async def _wait(self, stop: asyncio.Event) -> None:
        deadline_s = self.cfg.duration_ns / 1e9
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), deadline_s)
        if not self.stats.stop_reason:
            self.stats.stop_reason = "stop requested" if stop.is_set() else "duration reached"
        stop.set()

    async def _guard(self, work: Awaitable[None]) -> None:
        """A worker that dies takes the run down with it (never a silent half-bot)."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except (ExchangeHalted, PlacementUnknown, LiveHalt) as exc:
            self._fail(exc)
        except Exception as exc:  # a bug or an unexpected venue answer: stop trading
            log.exception("live_worker_failed", error=type(exc).__name__)
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            self.stats.stop_reason = f"{type(exc).__name__}: {exc}"
            self._stop.set()

    # --- start and stop --------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Orphan orders and position, before the first quote (LiveHalt on a mismatch).
        `adopt` keeps the open orders of the account's previous run (by its ledger) as
        this run's own and cancels the rest; `cancel` cancels them all first."""
        orphans = [o for s in self.venue.instruments for o in await self.venue.open_orders(s)]
        if orphans and self.cfg.orphans == "refuse":
            listed = ", ".join(f"{o.client_order_id or o.venue_order_id}" for o in orphans)
            raise LiveHalt(f"{len(orphans)} open orders not placed by this run ({listed}); "
                           "cancel them or set live.orphans=cancel or adopt")  # fmt: skip
        adopted: list[OpenOrder] = []
        if self.cfg.orphans == "adopt":
            held, recovery, adopted = await self._adopt(orphans)
        else:
            await self._cancel_orphans(orphans)
            recovery = await self._take_over()
            held = await self.venue.holdings()
        self.opening_lots = _lots(held)
        self._check_position(self.opening_lots, recovery)
        self.stats.balance_start = float(await self.venue.balance())
        self._placed.update(o.client_order_id for o in adopted)
        self.stats.orphans_adopted = len(adopted)
        if adopted:
            log.warning("orphans_adopted", orders=[o.client_order_id for o in adopted])
        if self.on_opening is not None:
            self.on_opening({s: h for s, h in held.items() if h[0]}, recovery, tuple(adopted))

    async def _adopt(
        self, orphans: list[OpenOrder]
    ) -> tuple[dict[str, tuple[int, int]], Recovery | None, list[OpenOrder]]:
        """The previous run's orders kept, the rest cancelled. The kept ones may fill
        while the books are read: a fill between the history and the position read shows
        as a difference, so both are read again (up to OPENING_READS times); the history
        from the start's time on is then this run's (its earlier fills are the opening's)."""
        self._history_since_ms = self.clock.now_ns() // NS_PER_MS - CLOCK_MARGIN_MS
        recovery = await self._take_over()
        previous = f"{recovery.previous}-" if recovery and recovery.previous else None
        kept = [o for o in orphans if previous and o.client_order_id.startswith(previous)]
        await self._cancel_orphans([o for o in orphans if o not in kept])
        held = await self.venue.holdings()
        for _ in range(OPENING_READS - 1):
            if not kept or not self._position_report(_lots(held), recovery):
                break
            recovery = await self._take_over()
            held = await self.venue.holdings()
        adopted, counted = adopted_left(kept, recovery)
        self.counted.update(counted)
        return held, recovery, adopted

    async def _take_over(self) -> Recovery | None:
        return await self.take_over() if self.take_over is not None else None

    async def _cancel_orphans(self, orphans: list[OpenOrder]) -> None:
        """Each orphan by our id, or by the venue's for one placed without (by hand)."""
        for order in orphans:
            venue_id = None if order.client_order_id else order.venue_order_id
            await self.venue.cancel(order.symbol, order.client_order_id, venue_id)
        if orphans:
            self.stats.orphans_cancelled += len(orphans)
            log.warning("orphans_cancelled", count=len(orphans))

    def _position_report(self, venue_lots: Mapping[str, int], recovery: Recovery | None
                         ) -> list[str]:  # fmt: skip
        expected = dict(recovery.expected) if recovery is not None else self.bot_positions
        return position_differences(venue_lots, expected, self.cfg.position_tolerance_lots)

    def _check_position(self, venue_lots: Mapping[str, int], recovery: Recovery | None) -> None:
        report = self._position_report(venue_lots, recovery)
        if report:
            raise LiveHalt(
                "position mismatch beyond tolerance "
                f"({self.cfg.position_tolerance_lots} lots): " + "; ".join(report)
                + _recovered_from(recovery)
            )  # fmt: skip

    async def shutdown(self) -> None:
        """Freeze the engine, cancel all, confirm nothing is open, and collect every fill
        the venue made for this run (the engine and its journal hear all of it)."""
        while not self._events.empty():
            self._handle(self._events.get_nowait())
        now = self.clock.now_ns()
        self._handle(FreezeRequest(now, True, "shutdown"))
        if self.shadow is not None:
            self._shadow_execute(self.shadow, CancelAll(now, None, "shutdown"), now)
            return
        try:
            await self._cancel_all_confirmed()
        finally:
            await self._collect_fills()
        self.stats.balance_end = float(await self.venue.balance())

    async def _cancel_all_confirmed(self) -> None:
        """Cancel all until the venue says nothing is open. A venue failing past the
        retry budget (a 5xx storm: the likely reason the run is stopping) is retried
        with backoff for `shutdown_patience_s`; after that the run exits with its orders
        open, which the venue's dead-man switch cancels if it was armed."""
        give_up_ns = self.clock.now_ns() + int(self.cfg.shutdown_patience_s * 1e9)
        wait_s = RECONNECT_FIRST_S
        while True:
            try:
                await self._cancel_all_once()
                return
            except NetworkError as exc:  # ccxt's: unreachable, 5xx, timeouts, rate limits
                if self.clock.now_ns() + int(wait_s * 1e9) > give_up_ns:
                    log.error("live_shutdown_unconfirmed", error=str(exc),
                              dead_man_armed=self.stats.dead_man)  # fmt: skip
                    raise
                log.warning("live_shutdown_retry", error=type(exc).__name__, retry_in_s=wait_s)
                await asyncio.sleep(wait_s)
                wait_s = min(RECONNECT_MAX_S, wait_s * 2)

    async def _cancel_all_once(self) -> None:
        for attempt in range(3):
            for report in await self._cancel_all(None):
                self._deliver(report)
            # a deposed leader answers for its own orders only
            left = await self._open_orders(own=self.leads is not None and not self.leads())
            if not left:
                log.info("live_shutdown_clean", attempts=attempt + 1)
                return
        raise LiveHalt(f"{len(left)} orders still open after cancel-all: "
                       + ", ".join(o.client_order_id for o in left))  # fmt: skip

    async def _collect_fills(self) -> None:
        self.venue_fills = await self._venue_fills()
        for fill in self.venue_fills:
            self._deliver(fill)

    async def _venue_fills(self) -> list[OrderFill]:
        """Every fill the venue made for this run's orders (REST), oldest first."""
        since_ms = self._history_since_ms or self.stats.first_ts_ns // NS_PER_MS
        fills = await self.venue.account_fills(since_ms)
        return [f for f in fills if f.trade_id not in self.counted and self._ours(f)]

    def _ours(self, report: VenueReport) -> bool:
        """The account's streams and history also tell of other runs' orders (a standby
        taking over, a second bot): the engine hears of this run's orders only."""
        if report.client_order_id in self._placed:
            return True
        self.stats.foreign += 1
        return False

    async def _reconcile_every(self, period_s: float) -> None:
        """The periodic financial reconciliation (bot/runtime/reconcile.py)."""
        while True:
            await asyncio.sleep(period_s)
            if self.leads is not None and not self.leads():
                continue  # deposed: the new leader trades the account now, not these books
            before = self.stats.reconcile_differences
            found = await self.reconcile_books()
            if found and before:
                raise LiveHalt("financial reconciliation, two rounds in a row: " + "; ".join(found))

    async def reconcile_books(self) -> list[str]:
        """One round: the venue's position, then its trade history of the run (the fills
        the engine has not heard go to it first), against the bot's books."""
        venue_lots = await self.venue.positions()
        fills = await self._venue_fills()
        for fill in fills:
            self._report(fill)
        for _ in range(DRAIN_POLLS):  # the engine books what was just handed over
            if self._events.empty():
                break
            await asyncio.sleep(0.001)
        found = differences(tally(fills, self.venue.instruments), self.booked, venue_lots,
                            self.opening_lots)  # fmt: skip
        self.stats.reconciliations += 1
        self.stats.reconcile_differences = found
        if found:
            log.error("live_books_differ", differences=found)
        return found

    # --- engine side -----------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            self._handle(await self._events.get())

    def _handle(self, event: Event) -> None:
        self.stats.events += 1
        self.stats.last_ts_ns = event.ts_ns
        if type(event) is OrderAck:
            self.ack_ns = event.ts_ns
        elif type(event) is OrderFill and self.shadow is None:
            self.booked[event.symbol].add(event, self.venue.instruments[event.symbol])
        for command in self.engine.on_event(event):
            self.stats.commands += 1
            if self.shadow is None:
                self._commands.put_nowait(command)
            else:
                self._shadow_execute(self.shadow, command, event.ts_ns)

    def _market(self, event: BookUpdate | Trade) -> None:
        """Market events reach the engine through the queue; a shadow run's at once, so
        that its venue answers the engine's orders before the next message, as a replay's
        does: a live shadow journals what a replay of the market it heard journals."""
        if self.shadow is None:
            self._events.put_nowait(event)
        else:
            self._handle(event)

    def _shadow_execute(self, shadow: LiveShadow, command: Command, ts_ns: int) -> None:
        if isinstance(command, Freeze):
            log.warning("engine_freeze", reason=command.reason)
            return
        for report in shadow.execute(command, ts_ns):
            self._deliver(report)

    def _deliver(self, report: VenueReport) -> None:
        """A report from any channel, to the engine once (directly: the consumer may be
        gone at shutdown, and the journal must still see it)."""
        if self.delivery.admit(report):
            self.stats.reports += 1
            self._handle(report)
        else:
            self.stats.duplicates += 1

    def _report(self, report: VenueReport) -> None:
        if self.delivery.admit(report):
            self.stats.reports += 1
            self._events.put_nowait(report)
        else:
            self.stats.duplicates += 1

    async def _send(self) -> None:
        while True:
            command = await self._commands.get()
            for report in await self._execute(command):
                self._report(report)

    async def _execute(self, command: Command) -> list[VenueReport]:
        if isinstance(command, Place):
            if self.gate is not None and (refused := self.gate(command)) is not None:
                self._events.put_nowait(refused)  # fenced: never reaches the venue
                return []
            self._placed.add(command.client_order_id)
            reports = await self.venue.place(command)
            if command.post_only and all(isinstance(r, OrderAck) for r in reports):
                # accepted is not live: the order stream says New or post-only-cancelled
                self.delivery.hold(command.client_order_id, self.clock.now_ns())
                return []
            return reports
        if isinstance(command, Cancel):
            return await self.venue.cancel(command.symbol, command.client_order_id)
        if isinstance(command, CancelAll):
            return await self._cancel_all(command.symbol)
        if isinstance(command, Freeze):
            log.warning("engine_freeze", reason=command.reason)
        return []

    async def _cancel_all(self, symbol: str | None) -> list[VenueReport]:
        if self.leads is None or self.leads():
            return await self.venue.cancel_all(symbol)
        reports: list[VenueReport] = []
        for order in await self._open_orders(own=True):
            if symbol in (None, order.symbol):
                reports += await self.venue.cancel(order.symbol, order.client_order_id)
        log.warning("cancel_all_own_only", symbol=symbol, orders=len(reports))
        return reports

    async def _open_orders(self, own: bool) -> list[OpenOrder]:
        """The venue's open orders of the account, or only this run's."""
        found = [o for s in self.venue.instruments for o in await self.venue.open_orders(s)]
        return [o for o in found if o.client_order_id in self._placed] if own else found

    async def _tick(self, stop: asyncio.Event) -> None:
        period_s = self.cfg.timer_ms / 1_000
        while not stop.is_set():
            await asyncio.sleep(period_s)
            now = self.clock.now_ns()
            self._events.put_nowait(Timer(now))
            if self.on_heartbeat is not None:
                self.on_heartbeat(now)
            self._poll_state(now)
            for coid in self.delivery.overdue(now, self.cfg.confirm_ms * NS_PER_MS):
                await self._look_up(coid)

    def _poll_state(self, now: int) -> None:
        """The shared state's turn, after the tick: its events reach the engine next."""
        if self.on_timer is not None:
            for event in self.on_timer(now, self.market_ns, self.ack_ns):
                self._events.put_nowait(event)

    def _heard_book(self, book: Any, now: int) -> None:
        self.market_ns = now
        stamp = book.get("timestamp")
        if stamp:
            self.ws_lag_s = (now // NS_PER_MS - int(stamp)) / 1_000

    async def _look_up(self, client_order_id: str) -> None:
        self.stats.lookups += 1
        for symbol in self.venue.instruments:
            found = await self.venue.order_reports(symbol, client_order_id)
            for report in found:
                self._report(report)
            if found:
                return

    # --- streams ---------------------------------------------------------------------------

    async def _stream(
        self,
        name: str,
        watch: Callable[[], Awaitable[T]],
        on_update: Callable[[T], None],
        resync: Callable[[], Awaitable[None]] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """Watch one stream for the whole run. A lost connection (or a book gap, which
        fails it on purpose) is retried with backoff; ccxt reconnects and resubscribes
        on the next watch, and the book comes back from the snapshot sent on subscribe.
        What a private stream missed meanwhile is fetched over REST (`resync`) once the
        new subscription is on its way."""
        failures = 0
        while True:
            pending = asyncio.ensure_future(watch())
            if failures and resync is not None:
                await asyncio.sleep(0)  # let the watch send its subscribe first
                await resync()
            try:
                update = await pending
            except NetworkError as exc:
                self._down.add(name)
                if on_lost is not None:
                    on_lost()
                failures += 1
                self.stats.reconnects += 1
                delay = min(RECONNECT_MAX_S, RECONNECT_FIRST_S * 2 ** (failures - 1))
                log.warning("stream_lost", stream=name, error=type(exc).__name__,
                            retry_in_s=delay, failures=failures)  # fmt: skip
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("stream_back", stream=name, after_failures=failures)
                failures = 0
                self._down.discard(name)
            on_update(update)

    async def _watch_book(self, symbol: str) -> None:
        inst = self.venue.instruments[symbol]
        ccxt_symbol = self.venue.ccxt_symbol(symbol)

        def on_book(book: Any) -> None:
            now = self.clock.now_ns()
            self._heard_book(book, now)
            if self.tape is not None:
                self.tape.book(symbol, book, now)
            if self.shadow is not None:
                for report in self.shadow.on_book(symbol, book, now):
                    self._deliver(report)
            if not book["bids"] or not book["asks"]:
                return
            (bid, bid_qty), (ask, ask_qty) = book["bids"][0][:2], book["asks"][0][:2]
            top = (units(bid, inst.tick_size), units(bid_qty, inst.lot_size),
                   units(ask, inst.tick_size), units(ask_qty, inst.lot_size))  # fmt: skip
            if top != self._tops.get(symbol):
                self._tops[symbol] = top
                self.stats.book_updates += 1
                self._market(BookUpdate(now, symbol, *top))

        def on_lost() -> None:
            if self.tape is not None:
                self.tape.gap(symbol)

        watch = self.venue.exchange.watch_order_book
        await self._stream(
            f"book:{symbol}", lambda: watch(ccxt_symbol, self.cfg.book_depth), on_book,
            on_lost=on_lost,
        )  # fmt: skip

    async def _watch_trades(self, symbol: str) -> None:
        inst = self.venue.instruments[symbol]
        ccxt_symbol = self.venue.ccxt_symbol(symbol)
        seen = self._trade_ids.setdefault(symbol, RecentIds())

        def on_trades(trades: Any) -> None:
            now = self.clock.now_ns()
            for t in trades:
                if not seen.add(str(t["id"])):
                    self.stats.duplicates += 1  # a message delivered twice
                    continue
                self.stats.trades += 1
                if self.tape is not None:
                    self.tape.trade(symbol, t, now)
                side = Side.BUY if t["side"] == "buy" else Side.SELL
                trade = Trade(
                    now, symbol, str(t["id"]), units(t["price"], inst.tick_size),
                    units(t["amount"], inst.lot_size), side,
                )  # fmt: skip
                self._market(trade)
                if self.shadow is not None:
                    for report in self.shadow.on_trade(trade):
                        self._deliver(report)

        watch = self.venue.exchange.watch_trades
        await self._stream(f"trades:{symbol}", lambda: watch(ccxt_symbol), on_trades)

    async def _watch_orders(self) -> None:
        def on_orders(orders: Any) -> None:
            for order in orders:
                symbol = self.venue.venue_symbol(order["symbol"])
                for report in order_reports(order, symbol, self.clock.now_ns()):
                    if self._ours(report):
                        self._report(report)

        await self._stream(
            "orders", self.venue.exchange.watch_orders, on_orders, self._resync_orders
        )

    async def _watch_fills(self) -> None:
        def on_fills(trades: Any) -> None:
            for trade in trades:
                symbol = self.venue.venue_symbol(trade["symbol"])
                fill = fill_from_ccxt(trade, symbol, self.venue.instruments[symbol],
                                      self.clock.now_ns())  # fmt: skip
                if self._ours(fill):
                    self._report(fill)

        await self._stream(
            "fills", self.venue.exchange.watch_my_trades, on_fills, self._resync_fills
        )

    async def _resync_orders(self) -> None:
        """After the order stream was down: what became of every order still working."""
        for coid in self.delivery.working():
            await self._look_up(coid)

    async def _resync_fills(self) -> None:
        for fill in await self._venue_fills():
            self._report(fill)


def _lots(held: Mapping[str, tuple[int, int]]) -> dict[str, int]:
    return {symbol: lots for symbol, (lots, _) in held.items()}


def _recovered_from(recovery: Recovery | None) -> str:
    if recovery is None or recovery.previous is None:
        return ""
    return (f" (the bot's: run {recovery.previous}'s opening and its fills at the venue, "
            f"{len(recovery.missed)} of them never journaled)")  # fmt: skip
