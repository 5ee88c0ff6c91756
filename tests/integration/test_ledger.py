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
from bot.runtime.ledger import HEARD_TTL_S, AccountLedger, RunRecord, recover
from bot.runtime.state import StateError, StateStore, connect

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


def test_the_ledger_round_trips_and_keeps_heard_ids_for_a_month(store: StateStore) -> None:
    ledger = AccountLedger(store)
    assert ledger.last() is None
    ledger.begin(RunRecord("LA", {"BTCUSDT": -3}, since_ms=42))
    ledger.heard("LA", ["t1", "t2"])
    ledger.heard("LA", [])
    assert ledger.last() == RunRecord("LA", {"BTCUSDT": -3}, since_ms=42)
    assert ledger.heard_ids("LA") == {"t1", "t2"}
    assert 0 < store.client.ttl(store.keys.key("ledger:LA:heard")) <= HEARD_TTL_S
    ledger.begin(RunRecord("LB", {}, since_ms=43))  # the next run takes the record over
    assert ledger.last() == RunRecord("LB", {}, since_ms=43)
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
