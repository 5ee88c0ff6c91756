"""The account's trading record in the shared state: what a restart after a crash
needs to take over the position the last run left.

A live run that leads an account keeps two things in the account's Redis keys:
- `ledger`: its run id, the positions it opened with (lots per symbol, checked
  against the venue when it started), its start time (ms), the orders it adopted
  and the trade ids of their fills already in its opening;
- `ledger:<run id>:heard`: the trade id of every fill it journaled, added as the
  fill reaches the journal on disk.

The next run on the account (a restart, a standby taking over) reads them before its
first quote: the previous run's opening plus every fill the venue made for that run's
orders is the position it left (`Recovery.expected`), and the venue's fills missing
from its heard set are the ones it never journaled (made while it was dying, or after
it died, before the venue cancelled its orders). The restart checks the venue's
position against `expected` (someone else trading the account halts it), records the
unheard fills in its own journal and opens with the venue's position.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import structlog

from bot.model import OrderFill
from bot.runtime.state import StateError, StateStore

if TYPE_CHECKING:
    from bot.venues.exchange import ExchangeVenue, OpenOrder

log = structlog.get_logger(__name__)

# long enough for any restart to find the set; short enough that Redis forgets old runs
HEARD_TTL_S: Final = 30 * 24 * 3600
# the venue's history is read from a little before the previous start: the clocks differ
CLOCK_MARGIN_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    opening: Mapping[str, int]  # lots per symbol
    since_ms: int
    adopted: tuple[str, ...] = ()  # a previous run's orders this one took over
    # trade ids of the adopted orders' fills already in `opening` (made before the take-over)
    counted: tuple[str, ...] = ()

    def owns(self, client_order_id: str) -> bool:
        return client_order_id.startswith(f"{self.run_id}-") or client_order_id in self.adopted


@dataclass(frozen=True, slots=True)
class Recovery:
    """What the previous run on the account left, by the venue's trade history."""

    previous: str | None
    expected: Mapping[str, int]  # lots per symbol
    missed: tuple[OrderFill, ...]  # fills of its orders it never journaled
    theirs: tuple[OrderFill, ...] = ()  # every fill of its orders the history showed


def recover(record: RunRecord | None, venue_fills: Sequence[OrderFill],
            heard: set[str]) -> Recovery:  # fmt: skip
    """The position `record`'s run left and the fills it did not hear, from the venue's
    fills since its start (`venue_fills`, any run's) and its heard trade ids."""
    if record is None:
        return Recovery(None, {}, ())
    counted = set(record.counted)
    theirs = tuple(
        f for f in venue_fills if record.owns(f.client_order_id) and f.trade_id not in counted
    )
    expected = dict(record.opening)
    for fill in theirs:
        expected[fill.symbol] = expected.get(fill.symbol, 0) + fill.qty * int(fill.side)
    missed = tuple(f for f in theirs if f.trade_id not in heard)
    return Recovery(record.run_id, expected, missed, theirs)


def adopted_left(orders: Sequence[OpenOrder], recovery: Recovery | None
                 ) -> tuple[list[OpenOrder], tuple[str, ...]]:  # fmt: skip
    """The adopted `orders` with what the venue's history says they filled (read after
    the open orders, so it may know of more), and those fills' trade ids: they are in
    the opening, never this run's fills. An order filled whole meanwhile is dropped."""
    ids = {o.client_order_id for o in orders}
    prior = [f for f in (recovery.theirs if recovery else ()) if f.client_order_id in ids]
    filled = Counter[str]()
    for fill in prior:
        filled[fill.client_order_id] += fill.qty
    left = [replace(o, filled=max(o.filled, filled[o.client_order_id])) for o in orders]
    return [o for o in left if o.qty > o.filled], tuple(f.trade_id for f in prior)


class AccountLedger:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.errors = 0  # heard ids Redis did not take (a later restart journals them twice)

    @property
    def _key(self) -> str:
        return self.store.keys.key("ledger")

    def _heard_key(self, run_id: str) -> str:
        return self.store.keys.key(f"ledger:{run_id}:heard")

    def last(self) -> RunRecord | None:
        found = self.store.call("ledger", self.store.client.hgetall, self._key)
        if not found:
            return None
        try:
            opening = {str(s): int(n) for s, n in json.loads(found["opening"]).items()}
            adopted = tuple(str(c) for c in json.loads(found.get("adopted", "[]")))
            counted = tuple(str(t) for t in json.loads(found.get("counted", "[]")))
            return RunRecord(str(found["run_id"]), opening, int(found["since_ms"]), adopted,
                             counted)  # fmt: skip
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StateError(f"account {self.store.account!r}: corrupt ledger {found!r}") from exc

    def begin(self, record: RunRecord) -> None:
        """This run now trades the account, from `record.opening`."""
        fields = {"run_id": record.run_id, "since_ms": record.since_ms,
                  "opening": json.dumps(dict(sorted(record.opening.items()))),
                  "adopted": json.dumps(list(record.adopted)),
                  "counted": json.dumps(list(record.counted))}  # fmt: skip
        self.store.call("ledger", self.store.client.hset, self._key, mapping=fields)

    def heard(self, run_id: str, trade_ids: Iterable[str]) -> None:
        """Fills this run journaled. Never raises: the journal on disk has them, and a
        Redis outage must not stop trading (the cost: a restart records them again)."""
        ids = [str(t) for t in trade_ids]
        if not ids:
            return
        pipe = self.store.client.pipeline()
        pipe.sadd(self._heard_key(run_id), *ids)
        pipe.expire(self._heard_key(run_id), HEARD_TTL_S)
        try:
            self.store.call("ledger", pipe.execute)
        except StateError:
            self.errors += len(ids)
            log.warning("ledger_heard_lost", run_id=run_id, fills=len(ids))

    def heard_ids(self, run_id: str) -> set[str]:
        return set(self.store.call("ledger", self.store.client.smembers, self._heard_key(run_id)))


async def take_over(ledger: AccountLedger, venue: ExchangeVenue) -> Recovery:
    """What the account's previous run left, read from the ledger and the venue's trade
    history. Orders it left that are adopted can still fill: the live loop reads again
    until the venue's position agrees (LiveLoop._adopt)."""
    record = ledger.last()
    if record is None:
        return recover(None, (), set())
    since_ms = record.since_ms - CLOCK_MARGIN_MS
    fills = await venue.account_fills(since_ms)
    return recover(record, fills, ledger.heard_ids(record.run_id))
