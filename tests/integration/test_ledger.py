"""The account ledger (bot/runtime/ledger.py) in a real redis-server: the record a
restart reads, and what it makes of the venue's fills."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.model import Liquidity, OrderFill, Side
from bot.runtime.ledger import HEARD_TTL_S, AccountLedger, RunRecord, adopted_left, recover
from bot.runtime.state import StateError, StateStore, connect
from bot.venues.exchange import OpenOrder

pytestmark = pytest.mark.integration


@pytest.fixture()
def store(state_url: str) -> StateStore:
    client = connect(state_url)
    client.flushdb()
    return StateStore(client, "acct", state_url)


def fill(coid: str, trade: str, side: Side, qty: int, symbol: str = "BTCUSDT") -> OrderFill:
    return OrderFill(1, symbol, coid, trade, side, 600_000, qty, Liquidity.MAKER, Decimal("-0.01"))


def test_the_position_a_run_left_and_the_fills_it_never_heard() -> None:
    record = RunRecord("LOLD", {"BTCUSDT": 4}, since_ms=1_000)
    venue = [
        fill("LOLD-1", "t1", Side.BUY, 10),
        fill("LOLD-2", "t2", Side.SELL, 3),
        fill("LOLD-3", "t3", Side.BUY, 2, "ETHUSDT"),
        fill("LOTHER-1", "t4", Side.BUY, 50),  # another run's order: not this run's
        fill("LOLDER-1", "t5", Side.BUY, 7),  # a run id that merely starts alike
    ]
    found = recover(record, venue, heard={"t1"})
    assert found.previous == "LOLD"
    assert found.expected == {"BTCUSDT": 4 + 10 - 3, "ETHUSDT": 2}
    assert [f.trade_id for f in found.missed] == ["t2", "t3"]
    assert recover(None, venue, set()).expected == {}  # a first run: the venue must be flat


def test_an_adopted_orders_fills_before_its_take_over_count_once() -> None:
    """LB adopted LA-7 after LA-7's fill t1 (in LB's opening): a restart after LB counts
    only LA-7's later fills against LB."""
    record = RunRecord("LB", {"BTCUSDT": -2}, since_ms=1_000, adopted=("LA-7",), counted=("t1",))
    venue = [fill("LA-7", "t1", Side.SELL, 2), fill("LA-7", "t2", Side.SELL, 1),
             fill("LB-1", "t3", Side.BUY, 4)]  # fmt: skip
    found = recover(record, venue, heard={"t3"})
    assert found.expected == {"BTCUSDT": -2 - 1 + 4}
    assert [f.trade_id for f in found.theirs] == ["t2", "t3"]
    assert [f.trade_id for f in found.missed] == ["t2"]


def test_adopted_orders_keep_what_the_history_says_is_left() -> None:
    """The open orders were read before the history: an order the history shows filled
    further keeps less, one filled whole meanwhile is not adopted."""
    orders = [OpenOrder("BTCUSDT", "LA-1", "v1", Side.SELL, 600_010, 5, 1),
              OpenOrder("BTCUSDT", "LA-2", "v2", Side.BUY, 599_990, 2, 0),
              OpenOrder("BTCUSDT", "LA-3", "v3", Side.BUY, 599_980, 4, 0)]  # fmt: skip
    history = (fill("LA-1", "t1", Side.SELL, 1), fill("LA-1", "t2", Side.SELL, 2),
               fill("LA-2", "t3", Side.BUY, 2), fill("LA-9", "t4", Side.BUY, 1))  # fmt: skip
    recovery = recover(RunRecord("LA", {}, since_ms=0), history, heard=set())
    left, counted = adopted_left(orders, recovery)
    assert [(o.client_order_id, o.qty - o.filled) for o in left] == [("LA-1", 2), ("LA-3", 4)]
    assert counted == ("t1", "t2", "t3")
    assert adopted_left(orders, None) == (orders, ())


def test_the_ledger_round_trips_and_keeps_heard_ids_for_a_month(store: StateStore) -> None:
    ledger = AccountLedger(store)
    assert ledger.last() is None
    ledger.begin(RunRecord("LA", {"BTCUSDT": -3}, since_ms=42))
    ledger.heard("LA", ["t1", "t2"])
    ledger.heard("LA", [])
    assert ledger.last() == RunRecord("LA", {"BTCUSDT": -3}, since_ms=42)
    assert ledger.heard_ids("LA") == {"t1", "t2"}
    assert 0 < store.client.ttl(store.keys.key("ledger:LA:heard")) <= HEARD_TTL_S
    # the next run takes the record over
    ledger.begin(RunRecord("LB", {}, since_ms=43, adopted=("LA-1",), counted=("t1",)))
    assert ledger.last() == RunRecord("LB", {}, since_ms=43, adopted=("LA-1",), counted=("t1",))
    assert ledger.heard_ids("LB") == set()


def test_a_corrupt_ledger_is_a_typed_error_naming_the_account(store: StateStore) -> None:
    store.client.hset(store.keys.key("ledger"), mapping={"run_id": "LA", "opening": "{not json"})
    with pytest.raises(StateError, match="account 'acct': corrupt ledger"):
        AccountLedger(store).last()


def test_heard_ids_during_a_redis_outage_are_counted_not_raised(tmp_path: Path) -> None:
    gone = tmp_path / "gone.sock"  # the server went away: nothing listens there now
    client = redis.Redis(unix_socket_path=str(gone), decode_responses=True,
                         retry=Retry(NoBackoff(), 0))  # fmt: skip
    ledger = AccountLedger(StateStore(client, "acct", f"unix://{gone}"))
    ledger.heard("LA", ["t9"])  # the journal on disk has the fill: trading goes on
    assert ledger.errors == 1
