"""Engine: data in, commands and journal rows out. No mocks: real policy, orders,
portfolio and risk engine behind one `on_event`.

Default instrument BTCUSDT: tick 0.1, lot 0.001, min qty 1 lot. Fees tier mm1:
maker -0.5 bps. With fair value = mid and vol off, the half-spread is the floor
max(1.0, 0.5 + 1.0 - 0.5) = 1.0 bps. Book 60000.0 / 60000.1 -> mid 600000.5 ticks,
1 bps = 60.00005 ticks -> bid floor(599940.49995) = 599940, ask ceil(600060.50005) = 600061.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from bot.config import Settings
from bot.engine import Engine, IllegalCommand, UnknownSymbol
from bot.journal import MemoryJournal
from bot.model import (
    BookUpdate,
    Cancel,
    CancelAck,
    CancelAll,
    Command,
    Event,
    Freeze,
    FreezeRequest,
    Liquidity,
    OrderAck,
    OrderFill,
    OrderReject,
    Place,
    Side,
    Timer,
    Trade,
    UnhaltRequest,
)
from gates.kpi import Journal, fill_edges

SYM = "BTCUSDT"
S = 1_000_000_000
MS = 1_000_000
T0 = 1_723_161_600 * S  # 2024-08-09T00:00:00Z


def settings(**sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "strategy": {"fair_value": "mid", "vol_multiplier": 0.0, "order_qty": "0.01"},
    }
    for key, value in sections.items():
        data.setdefault(key, {})
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    return Settings.model_validate(data)


def make(**sections: Any) -> tuple[Engine, MemoryJournal]:
    journal = MemoryJournal()
    return Engine(settings(**sections), journal, id_prefix="t1"), journal


def book(ts: int, bid: int = 600_000, ask: int = 600_001, bq: int = 5, aq: int = 5) -> BookUpdate:
    return BookUpdate(ts, SYM, bid, bq, ask, aq)


def places(commands: list[Command]) -> list[Place]:
    return [c for c in commands if isinstance(c, Place)]


def ack_all(engine: Engine, commands: list[Command], ts: int) -> None:
    for place in places(commands):
        assert engine.on_event(OrderAck(ts, SYM, place.client_order_id)) == []


def fill_of(place: Place, ts: int, qty: int | None = None, trade_id: str = "T1") -> OrderFill:
    return OrderFill(
        ts,
        SYM,
        place.client_order_id,
        trade_id,
        place.side,
        place.px,
        qty if qty is not None else place.qty,
        Liquidity.MAKER,
        Decimal("-0.0300005"),
    )


def frame(journal: MemoryJournal, table: str) -> pd.DataFrame:
    return journal.frame(table)


_NOT_TERMINAL = {"PENDING_NEW", "OPEN", "PARTIALLY_FILLED", "PENDING_CANCEL"}


def open_orders(journal: MemoryJournal) -> pd.DataFrame:
    """Our orders not yet terminal, by the journal: the last orders row of each order."""
    last = frame(journal, "orders").groupby("client_order_id", sort=False).last()
    return last[last["status"].isin(_NOT_TERMINAL)]


def test_a_book_update_produces_two_places() -> None:
    engine, journal = make()
    commands = engine.on_event(book(T0))
    assert commands == [
        Place(T0, SYM, "t1-1", Side.BUY, 599_940, 10),
        Place(T0, SYM, "t1-2", Side.SELL, 600_061, 10),
    ]
    quotes = frame(journal, "quotes")
    assert quotes[["side", "level", "price", "qty", "mid"]].values.tolist() == [
        [1, 0, 59994.0, 0.01, 60000.05],
        [-1, 0, 60006.1, 0.01, 60000.05],
    ]
    orders = frame(journal, "orders")
    assert orders["event"].tolist() == ["place", "place"]
    assert orders["status"].tolist() == ["PENDING_NEW", "PENDING_NEW"]
    assert orders["ts_send_ns"].tolist() == [T0, T0]
    assert open_orders(journal).index.tolist() == ["t1-1", "t1-2"]


def test_requote_only_on_a_real_move_and_not_too_often() -> None:
    engine, journal = make()
    first = engine.on_event(book(T0))
    ack_all(engine, first, T0 + 10 * MS)
    assert engine.on_event(book(T0 + 20 * MS)) == []  # same touch
    # a big move 30 ms later: throttled by min_interval (50 ms)
    assert engine.on_event(book(T0 + 30 * MS, 601_000, 601_001)) == []
    # 60 ms: the move is 1000 ticks (16 bps) > threshold 0.5 bps -> cancel both, place both
    commands = engine.on_event(book(T0 + 60 * MS, 601_000, 601_001))
    assert [type(c) for c in commands] == [Cancel, Cancel, Place, Place]
    assert {c.client_order_id for c in commands if isinstance(c, Cancel)} == {"t1-1", "t1-2"}
    assert open_orders(journal)["status"].tolist()[:2] == ["PENDING_CANCEL"] * 2
    # a 1-tick move (0.17 bps < 0.5 threshold) 100 ms later changes nothing
    ack_all(engine, commands, T0 + 70 * MS)
    assert engine.on_event(book(T0 + 160 * MS, 601_001, 601_002)) == []


def test_max_quote_age_requotes_on_the_timer() -> None:
    engine, _ = make()
    ack_all(engine, engine.on_event(book(T0)), T0 + 10 * MS)
    assert places(engine.on_event(Timer(T0 + 4_900 * MS))) == []
    engine.on_event(book(T0 + 4_950 * MS))  # book is alive (no stale-data freeze)
    commands = engine.on_event(Timer(T0 + 5_000 * MS))  # max_quote_age 5 s
    assert [type(c) for c in commands] == [Cancel, Cancel, Place, Place]


def test_a_fill_updates_the_position_and_journals_it() -> None:
    engine, journal = make()
    commands = engine.on_event(book(T0))
    ack_all(engine, commands, T0 + 10 * MS)
    bid = places(commands)[0]
    engine.on_event(fill_of(bid, T0 + 100 * MS, qty=4))
    assert engine.portfolio.position_lots(SYM) == 4
    engine.on_event(fill_of(bid, T0 + 110 * MS, qty=6, trade_id="T2"))
    assert engine.portfolio.position_lots(SYM) == 10
    fills = frame(journal, "fills")
    assert fills["qty_lots"].tolist() == [4, 6]
    assert fills["price"].tolist() == [59994.0, 59994.0]
    assert fills["mid"].tolist() == [60000.05, 60000.05]
    assert fills["fee_exact"].tolist() == [Decimal("-0.0300005")] * 2
    assert fills["fee"].tolist() == [-0.0300005] * 2
    assert fills["liquidity"].tolist() == ["maker", "maker"]
    fill_rows = frame(journal, "orders").query("event == 'fill'")
    assert fill_rows["status"].tolist() == ["PARTIALLY_FILLED", "FILLED"]
    assert fill_rows["ts_ack_ns"].tolist() == [T0 + 10 * MS] * 2
    assert "t1-1" not in open_orders(journal).index
    summary = engine.summary()
    assert summary["fills"] == 2 and summary["maker_share"] == 1.0
    assert summary["turnover_usd"] == pytest.approx(599.94)


def test_duplicate_and_unknown_fills_change_nothing() -> None:
    engine, journal = make()
    commands = engine.on_event(book(T0))
    bid = places(commands)[0]
    engine.on_event(fill_of(bid, T0 + 100 * MS, qty=4))
    assert engine.on_event(fill_of(bid, T0 + 101 * MS, qty=4)) == []  # same trade id
    stray = OrderFill(
        T0, SYM, "other-run-7", "T9", Side.SELL, 600_100, 3, Liquidity.MAKER, Decimal(0)
    )
    assert engine.on_event(stray) == []
    assert engine.portfolio.position_lots(SYM) == 4
    assert len(frame(journal, "fills")) == 1
    unknown = frame(journal, "orders").query("status == 'UNKNOWN'")
    assert unknown["client_order_id"].tolist() == ["other-run-7"]
    summary = engine.summary()
    assert (summary["duplicate_reports"], summary["unknown_reports"]) == (1, 1)


def test_freeze_cancels_all_and_stops_quoting_until_unfrozen() -> None:
    engine, journal = make()
    ack_all(engine, engine.on_event(book(T0)), T0 + 10 * MS)
    commands = engine.on_event(FreezeRequest(T0 + 20 * MS, True, "operator says stop"))
    assert commands == [
        CancelAll(T0 + 20 * MS, None, "operator says stop"),
        Freeze(T0 + 20 * MS, "operator says stop"),
    ]
    assert set(open_orders(journal)["status"]) == {"PENDING_CANCEL"}
    risk = frame(journal, "risk")
    assert risk[["kind", "state"]].values.tolist() == [["freeze", "frozen"]]
    for i, client_order_id in enumerate(open_orders(journal).index):
        engine.on_event(CancelAck(T0 + (30 + i) * MS, SYM, client_order_id))
    assert open_orders(journal).empty
    assert engine.summary()["open_orders"] == 0
    assert engine.on_event(book(T0 + 200 * MS, 601_000, 601_001)) == []
    assert places(engine.on_event(Timer(T0 + 300 * MS))) == []
    commands = engine.on_event(FreezeRequest(T0 + 400 * MS, False, "all clear"))
    assert [p.side for p in places(commands)] == [Side.BUY, Side.SELL]
    assert frame(journal, "risk")["kind"].tolist() == ["freeze", "unfreeze"]
    assert engine.summary()["freezes"] == 1


def test_unfreeze_when_not_frozen_is_journaled_and_ignored() -> None:
    engine, journal = make()
    engine.on_event(book(T0))
    assert engine.on_event(FreezeRequest(T0 + 1, False, "oops")) == []
    row = frame(journal, "risk").iloc[0]
    assert (row["kind"], row["state"]) == ("unfreeze", "active")
    assert "ignored" in row["reason"]


def test_canary_scales_order_size() -> None:
    # 0.1 x 0.05 = 0.005 -> 5 lots
    canary: dict[str, Any] = {
        "mode": "canary",
        "canary": {"fraction": 0.05},
        "secrets": {"provider": "env"},
    }
    engine, _ = make(**canary, strategy={"order_qty": "0.1"})
    assert [p.qty for p in places(engine.on_event(book(T0)))] == [5, 5]
    # 0.01 x 0.05 = 0.0005 -> below one lot: the min qty (1 lot)
    engine, _ = make(**canary)
    assert [p.qty for p in places(engine.on_event(book(T0)))] == [1, 1]
    # other modes ignore the fraction
    engine, _ = make(**{**canary, "mode": "live"})
    assert [p.qty for p in places(engine.on_event(book(T0)))] == [10, 10]


def test_a_risk_block_writes_a_journal_row_and_sends_nothing() -> None:
    engine, journal = make(risk={"max_order_qty": "0.005"})  # 5 lots < 10 wanted
    assert engine.on_event(book(T0)) == []
    risk = frame(journal, "risk")
    assert risk["kind"].tolist() == ["block", "block"]
    assert risk["check"].tolist() == ["max_order_qty", "max_order_qty"]
    assert risk["reason"].str.contains("qty 10 lots > max 5 lots").all()
    assert engine.summary()["blocks"] == 2
    assert frame(journal, "orders").empty


def test_reducing_state_quotes_only_the_reducing_side() -> None:
    # max inventory 1000 USD, reduce-only above 0.8 x 1000 = 800; 15 lots = 900 USD
    engine, journal = make(risk={"max_inventory_usd": 1000.0}, strategy={"order_qty": "0.015"})
    commands = engine.on_event(book(T0))
    ack_all(engine, commands, T0 + 10 * MS)
    bid, _ask = places(commands)
    engine.on_event(fill_of(bid, T0 + 20 * MS))
    assert engine.portfolio.position_lots(SYM) == 15
    commands = engine.on_event(Timer(T0 + 100 * MS))
    assert engine.risk.state.value == "reducing"
    assert "reduce_only" in frame(journal, "risk")["kind"].tolist()
    assert all(p.side is Side.SELL and p.reduce_only for p in places(commands))
    assert open_orders(journal)["side"].tolist() == [int(Side.SELL)]
    # a later re-quote still never adds a buy
    commands = engine.on_event(book(T0 + 300 * MS, 601_000, 601_001))
    assert [p.side for p in places(commands)] == [Side.SELL]
    assert places(commands)[0].reduce_only


def test_a_venue_protocol_error_halts_for_good() -> None:
    engine, journal = make()
    commands = engine.on_event(book(T0))
    ack_all(engine, commands, T0 + 10 * MS)
    bid = places(commands)[0]
    overfill = fill_of(bid, T0 + 20 * MS, qty=11)
    out = engine.on_event(overfill)
    assert [type(c) for c in out] == [CancelAll, Freeze]
    assert "11 lots with 10 of 10 remaining" in (engine.summary()["fault"] or "")
    assert engine.portfolio.position_lots(SYM) == 0  # the impossible fill is not booked
    assert engine.risk.state.value == "halted"
    kill = frame(journal, "risk").iloc[-1]
    assert (kill["kind"], kill["check"]) == ("kill", "venue_protocol")
    assert engine.on_event(book(T0 + 500 * MS, 601_000, 601_001)) == []
    assert engine.on_event(FreezeRequest(T0 + 600 * MS, False, "try")) == []
    assert places(engine.on_event(Timer(T0 + 700 * MS))) == []
    # reports keep being booked: a real fill on the cancelled order still counts
    engine.on_event(fill_of(bid, T0 + 800 * MS, qty=3, trade_id="T7"))
    assert engine.portfolio.position_lots(SYM) == 3


def test_unhalt_is_the_way_out_of_a_halt_with_who_and_why_journaled() -> None:
    engine, journal = make()
    commands = engine.on_event(book(T0))
    ack_all(engine, commands, T0 + 10 * MS)
    engine.on_event(fill_of(places(commands)[0], T0 + 20 * MS, qty=11))  # protocol error
    assert engine.risk.state.value == "halted"
    out = engine.on_event(UnhaltRequest(T0 + 30 * MS, "overfill explained", "alice"))
    assert engine.risk.state.value == "active"
    assert [p.side for p in places(out)] == [Side.BUY, Side.SELL]  # quoting again at once
    row = frame(journal, "risk").iloc[-1]
    assert (row["kind"], row["check"], row["state"]) == ("unhalt", "operator", "active")
    assert row["reason"] == "overfill explained (by alice)"
    # a second unhalt finds nothing to lift: journaled, nothing changes
    assert engine.on_event(UnhaltRequest(T0 + 40 * MS, "again", "bob")) == []
    row = frame(journal, "risk").iloc[-1]
    assert (row["kind"], row["state"]) == ("unhalt", "active")
    assert row["reason"] == "unhalt ignored in state active: again (by bob)"


def test_a_held_freeze_outlasts_the_cooldown() -> None:
    engine, journal = make()
    engine.on_event(book(T0))
    engine.on_event(FreezeRequest(T0 + 1, True, "maintenance", "alice", hold=True))
    cooldown = engine_settings_cooldown_ms() * MS
    assert places(engine.on_event(Timer(T0 + 2 * cooldown))) == []
    assert engine.risk.state.value == "frozen"
    row = frame(journal, "risk").iloc[-1]
    assert (row["kind"], row["check"], row["reason"]) == (
        "freeze",
        "operator",
        "maintenance (by alice)",
    )
    engine.on_event(FreezeRequest(T0 + 3 * cooldown, False, "done", "alice"))
    assert engine.risk.state.value == "active"


def engine_settings_cooldown_ms() -> int:
    cooldown = settings().risk.freeze_cooldown_ms
    assert cooldown is not None
    return cooldown


def test_transition_refused_by_the_table_is_a_venue_error() -> None:
    engine, _ = make()
    bid = places(engine.on_event(book(T0)))[0]
    engine.on_event(OrderReject(T0 + 1, SYM, bid.client_order_id, "post-only would cross"))
    # a cancel-ack for a rejected order: the venue contradicts itself
    out = engine.on_event(CancelAck(T0 + 2, SYM, bid.client_order_id))
    assert [type(c) for c in out] == [CancelAll, Freeze]
    assert "cancel_ack is not allowed in status REJECTED" in (engine.summary()["fault"] or "")


def test_reject_counts_and_requotes() -> None:
    engine, journal = make()
    bid, _ = places(engine.on_event(book(T0)))
    out = engine.on_event(OrderReject(T0 + 60 * MS, SYM, bid.client_order_id, "would cross"))
    assert [p.side for p in places(out)] == [Side.BUY]
    row = frame(journal, "orders").query("event == 'reject'").iloc[0]
    assert (row["status"], row["reason"]) == ("REJECTED", "would cross")
    assert engine.summary()["rejects"] == 1


def test_timer_samples_book_and_positions_on_a_grid() -> None:
    engine, journal = make()
    engine.on_event(Timer(T0 - 10 * MS))  # no book yet: nothing to sample
    assert frame(journal, "book").empty
    engine.on_event(book(T0))
    for ms in (0, 50, 100, 150, 1_000, 1_050):
        engine.on_event(Timer(T0 + ms * MS))
    # book every 100 ms on the grid -> 0, 100, 1000; positions every 1 s -> 0, 1000
    assert (frame(journal, "book")["ts_ns"] - T0).tolist() == [0, 100 * MS, 1_000 * MS]
    positions = frame(journal, "positions")
    assert (positions["ts_ns"] - T0).tolist() == [0, 1_000 * MS]
    assert positions["mid"].tolist() == [60000.05, 60000.05]


def test_crossed_books_are_skipped_and_trades_counted() -> None:
    engine, _ = make()
    assert engine.on_event(book(T0, 600_001, 600_000)) == []
    assert engine.on_event(Trade(T0, SYM, "m1", 600_000, 3, Side.SELL)) == []
    summary = engine.summary()
    assert (summary["skipped_books"], summary["market_trades"]) == (1, 1)


def test_unknown_symbol_and_event_type_fail_loudly() -> None:
    engine, _ = make()
    with pytest.raises(UnknownSymbol, match="ETHUSDT"):
        engine.on_event(BookUpdate(T0, "ETHUSDT", 1, 1, 2, 1))
    with pytest.raises(IllegalCommand, match="str"):
        engine.on_event("not an event")  # type: ignore[arg-type]


def test_same_events_same_journal() -> None:
    def run() -> dict[str, pd.DataFrame]:
        engine, journal = make()
        ts = T0
        for i in range(200):
            ts += 37 * MS
            move = (i * 7) % 23 * 20
            out = engine.on_event(book(ts, 600_000 + move, 600_001 + move + i % 3))
            ack_all(engine, out, ts + MS)
            if i % 10 == 0 and places(out):
                engine.on_event(fill_of(places(out)[0], ts + 2 * MS, qty=1, trade_id=f"f{i}"))
            engine.on_event(Timer(ts + 5 * MS))
        return {t: journal.frame(t) for t in ("quotes", "orders", "fills", "book", "positions")}

    a, b = run(), run()
    assert len(a["orders"]) > 50
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table])


def test_rows_match_the_journal_schemas() -> None:
    engine, journal = make(risk={"max_order_qty": "0.05"})
    commands = engine.on_event(book(T0))
    ack_all(engine, commands, T0 + MS)
    engine.on_event(fill_of(places(commands)[0], T0 + 2 * MS, qty=3))
    engine.on_event(OrderFill(T0, SYM, "ghost", "G", Side.BUY, 1, 1, Liquidity.TAKER, Decimal(1)))
    engine.on_event(Timer(T0 + 3 * MS))
    engine.on_event(FreezeRequest(T0 + 4 * MS, True, "check"))
    for table in ("quotes", "orders", "fills", "risk", "book", "positions"):
        arrow = journal.buffers[table].take()  # builds typed arrays: raises on a wrong type
        assert arrow.num_rows > 0, table


def test_the_edge_guard_and_the_kpis_share_one_net_edge() -> None:
    """20 fills whose horizon mid is a sampled book row: the guard's freeze reason
    and gates/kpi.py's notional-weighted net_bps give the same figure."""
    engine, journal = make(risk={"edge_freeze_bps": 100.0, "edge_window_fills": 20})
    live: dict[str, Place] = {}

    def feed(event: Event) -> None:  # the venue answers every command at once
        for c in engine.on_event(event):
            if isinstance(c, Place):
                live[c.client_order_id] = c
                feed(OrderAck(event.ts_ns, SYM, c.client_order_id))
            elif isinstance(c, Cancel):
                live.pop(c.client_order_id)
                feed(CancelAck(event.ts_ns, SYM, c.client_order_id))

    moves = [0, 40, -25, 90, -60, 15, -5, 70, -80, 30]
    for k in range(20):
        t = T0 + k * 2 * S
        bid = 600_000 + moves[k % 10]
        for ts, touch in ((t, bid), (t + S, bid + moves[(k + 3) % 10])):
            feed(book(ts, touch, touch + 1))
            feed(Timer(ts))  # samples the book row at ts
            if ts == t:
                order = next(p for p in live.values() if p.side is (Side.BUY, Side.SELL)[k % 2])
                rebate = -(order.px * Decimal("0.0001")) * Decimal("0.00005")
                feed(
                    OrderFill(t, SYM, order.client_order_id, f"e{k}", order.side, order.px, 1,
                              Liquidity.MAKER, rebate)
                )  # fmt: skip
    freeze = frame(journal, "risk").query("kind == 'freeze'")
    assert freeze["check"].tolist() == ["edge"]
    tables = {t: journal.frame(t) for t in ("fills", "book")}
    edges = fill_edges(Journal.of(tables), horizon_ms=1_000)
    assert len(edges) == 20 and edges["net_bps"].notna().all()
    net = (edges["net_bps"] * edges["notional"]).sum() / edges["notional"].sum()
    assert freeze["reason"].iloc[0] == f"net edge {net:.2f} bps over the last 20 fills < 100 bps"
    assert abs(net) > 0.5  # the horizon moves matter: not just the spread and rebate


def test_adopted_orders_are_kept_when_wanted_and_cancelled_when_not() -> None:
    """A restart adopts a previous run's resting orders: the bid is where this run
    quotes, so it stays (no new bid); the ask is far off, so it is cancelled."""
    engine, journal = make()
    engine.adopt(T0, SYM, "old-7", Side.BUY, 599_940, 10, "v7", "adopted from run old")
    engine.adopt(T0, SYM, "old-8", Side.SELL, 600_500, 10, "v8", "adopted from run old")
    commands = engine.on_event(book(T0 + MS))
    assert [c.client_order_id for c in commands if isinstance(c, Cancel)] == ["old-8"]
    assert [(p.side, p.px) for p in places(commands)] == [(Side.SELL, 600_061)]
    orders = frame(journal, "orders")
    adopted = orders[orders["reason"] == "adopted from run old"]
    assert adopted[["client_order_id", "event", "status"]].values.tolist() == [
        ["old-7", "ack", "OPEN"], ["old-8", "ack", "OPEN"],
    ]  # fmt: skip
    fill = OrderFill(T0 + 2 * MS, SYM, "old-7", "T9", Side.BUY, 599_940, 10, Liquidity.MAKER,
                     Decimal("-0.03"))  # fmt: skip
    engine.on_event(fill)
    assert engine.portfolio.position_lots(SYM) == 10  # its fills are this run's


def test_an_opening_position_skews_the_quotes_and_counts_in_the_pnl() -> None:
    flat, _ = make()
    opened, _ = make()
    opened.open_positions({SYM: (10, 600_000)})  # 0.01 BTC long from 60,000
    assert opened.portfolio.position_lots(SYM) == 10
    assert opened.summary()["pnl_usd"] == 0  # before any book: marked at its entry price
    quoted = {engine: {p.side: p.px for p in places(engine.on_event(book(T0)))}
              for engine in (flat, opened)}  # fmt: skip
    assert quoted[opened][Side.BUY] < quoted[flat][Side.BUY]  # long: it bids lower
    assert opened.summary()["pnl_usd"] == pytest.approx(0.01 * 0.05)  # marked at the mid
