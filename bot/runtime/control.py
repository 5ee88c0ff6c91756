"""The trading loop's side of the shared state (bot/runtime/state.py).

`StateLink` is what a shell calls from inside its own loop (never a side thread,
so a stuck loop shows as a stale heartbeat and a lost lease):

- `start()`: take the account's leader lease (its fencing token), or `LeaseHeld`;
- `on_timer(ts, market_ts, ack_ts)` after each engine timer: at most once per
  `poll_ms` of wall time it renews the lease, writes the heartbeat and turns the
  operator's queued commands into engine events. A lease that could not be renewed
  before it expired becomes a freeze (the engine cancels everything); holding it
  again lifts that freeze unless an operator froze the bot meanwhile;
- `gate(place)`: the fence on the venue path. A Place goes out only under the
  account's latest token while its lease is held; a deposed leader's late order
  becomes a reject for its own engine;
- `leads()`: the same fence as a yes/no, for commands that act on the whole account;
- `close()`: release the lease.

The wall clock is injected; loop times are the loop's own (data time in the sim).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog

from bot.config import StateConfig
from bot.model import Event, FreezeRequest, OrderReject, Place, UnhaltRequest
from bot.runtime.clock import Clock
from bot.runtime.state import ControlCommand, Heartbeat, LeaseHeld, StateStore, StateUnavailable

if TYPE_CHECKING:
    from bot.runtime.journal_stream import JournalStream

log = structlog.get_logger(__name__)

NS_PER_MS: Final = 1_000_000
LEASE_SOURCE: Final = "lease"
BOT_AUTHOR: Final = "mmbot"
_TIMING: Final = StateConfig()  # the profile's defaults (`state.*`), one place for them


@dataclass(frozen=True, slots=True)
class LinkSettings:
    owner: str  # this process, e.g. host:pid
    lease_ttl_ms: int = _TIMING.lease_ttl_ms
    poll_ms: int = _TIMING.poll_ms  # wall time between polls; renewals need a few per ttl
    spool_dir: Path | None = None  # the journal stream's spool; None: no journal stream

    @classmethod
    def of(cls, owner: str, timing: StateConfig, spool_dir: Path | None = None) -> LinkSettings:
        """The link's settings from the profile's `state` section (validated there)."""
        return cls(owner, timing.lease_ttl_ms, timing.poll_ms, spool_dir)


def to_event(command: ControlCommand, ts_ns: int) -> Event:
    """An operator's command as the engine event it asks for."""
    if command.action == "unhalt":
        return UnhaltRequest(ts_ns, command.reason, command.author)
    freeze = command.action == "freeze"
    return FreezeRequest(ts_ns, freeze, command.reason, command.author, hold=freeze)


class StateLink:
    def __init__(
        self,
        store: StateStore,
        settings: LinkSettings,
        wall: Clock,
        trading_state: Callable[[], str] = lambda: "",
    ) -> None:
        self.store = store
        self.settings = settings
        self.wall = wall
        self.trading_state = trading_state
        self.token: int | None = None
        self.redis_errors = 0
        self.fenced = 0  # places refused by the fence
        self.reachable = True  # the last poll reached the store
        self._expires_ns = 0
        self._next_poll_ns = 0
        self._lease_frozen = False  # our freeze for a lost lease is in force
        self._frozen_at_start = False
        self._ttl_ns = settings.lease_ttl_ms * NS_PER_MS
        self.stream: JournalStream | None = None  # set by the run that publishes to it

    def start(self) -> int:
        """Take the lease (or raise LeaseHeld); a freeze flag set before the start is
        heard at the first poll."""
        store, s = self.store, self.settings
        token = store.acquire(s.owner, s.lease_ttl_ms)
        if token is None:
            holder = store.holder()
            if holder is not None:
                raise LeaseHeld(store.account, holder)
            token = store.acquire(s.owner, s.lease_ttl_ms)  # expired between the two calls
            if token is None:
                raise StateUnavailable(store.url, "the lease could not be taken")
        self._held(token)
        # frozen before the start: no order goes out until the first poll freezes the engine
        self._frozen_at_start = store.freeze_flag() is not None
        log.info("lease_acquired", account=store.account, owner=s.owner, token=token)
        return token

    def _held(self, token: int) -> None:
        self.token = token
        self._expires_ns = self.wall.now_ns() + self._ttl_ns

    @property
    def leader(self) -> bool:
        return self.token is not None

    def on_timer(self, ts_ns: int, market_ns: int, ack_ns: int) -> list[Event]:
        now = self.wall.now_ns()
        if now < self._next_poll_ns:
            return []
        first = self._next_poll_ns == 0
        self._next_poll_ns = now + self.settings.poll_ms * NS_PER_MS
        events: list[Event] = []
        try:
            events.extend(self._lease(ts_ns, now))
            if first:
                events.extend(self._standing_freeze(ts_ns))
                self._frozen_at_start = False
            self.store.write_heartbeat(Heartbeat(
                now, ts_ns, market_ns, ack_ns, self.trading_state(), self.settings.owner,
                self.token or 0,
            ))  # fmt: skip
            events.extend(to_event(c, ts_ns) for c in self.store.pop_controls())
            if self.stream is not None and self.stream.behind:
                self.stream.drain()
            self.reachable = True
        except StateUnavailable:
            self.redis_errors += 1
            self.reachable = False
            events.extend(self._expired(ts_ns, now))
        return events

    def _standing_freeze(self, ts_ns: int) -> list[Event]:
        """The first poll: commands queued before this bot started are superseded by
        the freeze flag, which says where they left the account."""
        stale = self.store.pop_controls()
        if stale:
            log.info("control_superseded", account=self.store.account, commands=len(stale))
        flag = self.store.freeze_flag()
        if flag is None:
            return []
        return [FreezeRequest(ts_ns, True, f"{flag.reason} (frozen before start)", flag.author,
                              hold=True)]  # fmt: skip

    def _lease(self, ts_ns: int, now: int) -> list[Event]:
        store, s = self.store, self.settings
        if self.token is not None:
            if now < self._expires_ns and store.renew(s.owner, self.token, s.lease_ttl_ms):
                self._expires_ns = now + self._ttl_ns
                return []
            return self._lost(ts_ns, "could not renew before expiry")
        token = store.acquire(s.owner, s.lease_ttl_ms)
        if token is None:
            return []
        self._held(token)
        log.warning("lease_reacquired", account=store.account, owner=s.owner, token=token)
        if not self._lease_frozen:
            return []
        self._lease_frozen = False
        if store.freeze_flag() is not None:
            return []  # an operator froze the bot meanwhile: theirs to lift
        return [FreezeRequest(ts_ns, False, f"leader lease held again (token {token})",
                              BOT_AUTHOR, LEASE_SOURCE)]  # fmt: skip

    def _expired(self, ts_ns: int, now: int) -> list[Event]:
        """Redis unreachable: the lease is ours only until it would have expired."""
        if self.token is not None and now >= self._expires_ns:
            return self._lost(ts_ns, "state store unreachable")
        return []

    def _lost(self, ts_ns: int, why: str) -> list[Event]:
        log.error("lease_lost", account=self.store.account, owner=self.settings.owner,
                  token=self.token, why=why)  # fmt: skip
        self.token = None
        self._lease_frozen = True
        return [FreezeRequest(ts_ns, True, f"leader lease lost: {why}", BOT_AUTHOR, LEASE_SOURCE,
                              hold=True)]  # fmt: skip

    def gate(self, place: Place) -> Event | None:
        """None: `place` may go to the venue; else the reject its engine hears."""
        why = self._refusal()
        if why is None:
            return None
        self.fenced += 1
        return OrderReject(place.ts_ns, place.symbol, place.client_order_id, why)

    def leads(self) -> bool:
        """Whether the fence says this process leads the account now (an account-wide
        cancel is this process's to send only then)."""
        return self._refusal() is None

    def _refusal(self) -> str | None:
        if self._frozen_at_start:
            return "fenced: frozen before start"
        token = self.token
        if token is None:
            return "fenced: not the leader (no lease)"
        try:
            ok = self.store.fence_ok(token)
        except StateUnavailable:
            self.redis_errors += 1
            return "fenced: state store unreachable"
        return None if ok else f"fenced: not the leader (token {token} superseded)"

    def close(self) -> None:
        if self.token is None:
            return
        try:
            self.store.release(self.settings.owner, self.token)
        except StateUnavailable:
            self.redis_errors += 1  # the lease then expires on its own
        self.token = None
