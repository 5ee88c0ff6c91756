"""The shadow venue: fills inferred from the market feed by the paper venue's own rules
(risk_averse queue, trades through, the book moving through) without order latency.

By hand on a two-level book, then on the real Binance capture: there shadow's fills
are exactly the paper venue's with zero latency, and the paper venue's latency is
what the accuracy gate then sees.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.config import AccuracyConfig, Settings, instruments
from bot.market.book import ASK, BID, L2Book
from bot.model import OrderAck, OrderFill, OrderReject, Place, Side, VenueReport
from bot.runtime.run import RunMode, RunSpec, execute
from bot.venues.shadow import ShadowVenue
from gates.accuracy import accuracy_gate
from gates.kpi import Journal, interval_series, load_journal
from gates.verdict import Status

SYM = "BTCUSDT"


def setup() -> tuple[ShadowVenue, L2Book]:
    book = L2Book()
    book.apply_delta(BID, 600_000, 100)  # 100 lots displayed ahead of a bid joining here
    book.apply_delta(ASK, 600_001, 100)
    return ShadowVenue(Settings(), instruments(Settings()), {SYM: book}), book


def drain(venue: ShadowVenue, ts: int) -> list[VenueReport]:
    out = []
    while venue.next_ts() <= ts:
        report = venue.pop_due(ts)
        if report is not None:
            out.append(report)
    return out


def bid(venue: ShadowVenue, px: int = 600_000, qty: int = 10) -> None:
    venue.submit(Place(5, SYM, "b1", Side.BUY, px, qty), 5)
    (ack,) = drain(venue, 5)
    assert isinstance(ack, OrderAck) and ack.ts_ns == 5  # no latency: live at once


def test_trades_at_the_quote_fill_it_only_past_the_queue_it_joined() -> None:
    venue, _ = setup()
    bid(venue)
    venue.on_trade(SYM, 7, ASK, 600_000, 60)  # 60 of the 100 ahead
    venue.on_trade(SYM, 8, ASK, 600_000, 36)  # 96
    assert drain(venue, 8) == []
    venue.on_trade(SYM, 9, ASK, 600_000, 7)  # 103: 3 lots reach us
    (fill,) = drain(venue, 9)
    assert isinstance(fill, OrderFill) and (fill.qty, fill.px, fill.ts_ns) == (3, 600_000, 9)
    venue.on_trade(SYM, 10, ASK, 600_000, 50)  # the rest of our 10
    (last,) = drain(venue, 10)
    assert isinstance(last, OrderFill) and last.qty == 7
    assert venue.live == {}


def test_cancels_at_the_level_never_advance_the_quote() -> None:
    venue, book = setup()
    bid(venue)
    # 90 of the level's 100 lots cancelled: risk_averse assumes they were behind us,
    # but the queue ahead can be no longer than the level (10 lots)
    venue.on_depth(SYM, BID, 600_000, 100, 10)
    book.apply_delta(BID, 600_000, 10 + 10)  # the level as the feed shows it, with us
    venue.on_trade(SYM, 7, ASK, 600_000, 10)
    assert drain(venue, 7) == []
    venue.on_trade(SYM, 8, ASK, 600_000, 4)
    (fill,) = drain(venue, 8)
    assert isinstance(fill, OrderFill) and fill.qty == 4


def test_a_trade_through_the_quote_fills_it_whole_and_the_wrong_side_never() -> None:
    venue, _ = setup()
    venue.submit(Place(0, SYM, "s1", Side.SELL, 600_003, 10), 0)
    drain(venue, 0)
    venue.on_trade(SYM, 1, BID, 600_002, 50)  # below our ask: no fill
    venue.on_trade(SYM, 2, ASK, 600_004, 50)  # a sell aggressor never lifts our ask
    venue.on_trade(SYM, 3, BID, 600_003, 50)  # at our ask, with the level empty before us
    (at,) = drain(venue, 3)
    assert isinstance(at, OrderFill) and at.qty == 10 and at.px == 600_003
    assert at.fee < 0  # mm1 maker rebate
    venue.submit(Place(4, SYM, "s2", Side.SELL, 600_001, 10), 4)
    drain(venue, 4)
    venue.on_trade(SYM, 5, BID, 600_002, 1)  # one lot through: all 10 (the sweep's last level)
    (through,) = drain(venue, 5)
    assert isinstance(through, OrderFill) and through.qty == 10


def test_the_book_moving_through_the_quote_fills_it() -> None:
    venue, book = setup()
    bid(venue)
    book.apply_delta(ASK, 600_001, 0)
    book.apply_delta(ASK, 599_999, 1)  # an ask below our bid would have traded with it
    book.apply_delta(BID, 600_000, 0)
    book.apply_delta(BID, 599_998, 5)
    venue.on_touch(SYM, 9)
    (fill,) = drain(venue, 9)
    assert isinstance(fill, OrderFill) and (fill.qty, fill.px) == (10, 600_000)


def test_shadow_keeps_the_venue_rules() -> None:
    venue, _ = setup()
    venue.submit(Place(0, SYM, "x", Side.BUY, 600_001, 10), 0)
    (reject,) = drain(venue, 0)
    assert isinstance(reject, OrderReject) and "PostOnly" in reject.reason


# --- on the real capture -----------------------------------------------------------

def latency(ms: int) -> tuple[str, ...]:
    legs = tuple(f"sim.{leg}_latency_ms={ms}" for leg in ("entry", "cancel", "response"))
    return (*legs, "sim.latency_jitter_ms=0")


def run_on(data: Path, out: Path, mode: RunMode, overrides: tuple[str, ...] = ()) -> Journal:
    execute(RunSpec(mode=mode, out_dir=out, data=data, profile="mm3", overrides=overrides,
                    progress=False))  # fmt: skip
    return load_journal(out)


@pytest.fixture(scope="module")
def real(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Journal]:
    """The demo quoter (mm3) on the 5.7 min capture: shadow, and paper at 0, 1 and 600 ms."""
    root = tmp_path_factory.mktemp("shadow-real")
    runs = {"shadow": ("shadow", ()), "paper-0ms": ("paper", latency(0)),
            "paper-1ms": ("paper", latency(1)), "paper-600ms": ("paper", latency(600))}  # fmt: skip
    return {name: run_on(binance_dir, root / name, mode, sets)  # type: ignore[arg-type]
            for name, (mode, sets) in runs.items()}  # fmt: skip


FILL_COLUMNS = ["ts_ns", "side", "px_ticks", "qty_lots", "liquidity", "fee"]


def test_shadow_fills_are_the_paper_venue_s_without_latency(real: dict[str, Journal]) -> None:
    shadow = real["shadow"].table("fills")[FILL_COLUMNS]
    paper = real["paper-0ms"].table("fills")[FILL_COLUMNS]
    assert len(shadow) > 30  # the quoter trades on the real capture
    pd.testing.assert_frame_equal(shadow.reset_index(drop=True), paper.reset_index(drop=True))


def test_latency_is_what_paper_adds(real: dict[str, Journal]) -> None:
    shadow = real["shadow"].table("fills")
    for name in ("paper-1ms", "paper-600ms"):
        paper = real[name].table("fills")
        assert not shadow["ts_ns"].reset_index(drop=True).equals(
            paper["ts_ns"].reset_index(drop=True)
        ), name
    late = real["paper-600ms"]
    assert len(late.table("fills")) < 0.7 * len(shadow)  # 600 ms: quotes late or refused
    assert "halted" not in set(late.table("risk")["state"])  # late, not broken


CFG = AccuracyConfig(interval="30s", min_windows=6)  # 12 intervals in 5.7 min


def judged(reference: Journal, candidate: Journal) -> dict[str, Status]:
    verdict = accuracy_gate(
        interval_series(reference, CFG.interval), interval_series(candidate, CFG.interval), CFG
    )
    return {c.name: c.status for c in verdict.checks} | {"verdict": verdict.status}


def test_accuracy_gate_passes_agreeing_runs(real: dict[str, Journal]) -> None:
    assert judged(real["shadow"], real["paper-0ms"])["verdict"] is Status.PASS
    # 1 ms of latency moves a few fills: their counts and maker share still agree
    one_ms = judged(real["shadow"], real["paper-1ms"])
    assert (one_ms["fills"], one_ms["maker_share"]) == (Status.PASS, Status.PASS)
    assert one_ms["net_bps"] is Status.PASS


def test_accuracy_gate_fails_600_ms_of_latency_either_way_round(real: dict[str, Journal]) -> None:
    for a, b in (("shadow", "paper-600ms"), ("paper-600ms", "shadow")):
        got = judged(real[a], real[b])
        assert got["verdict"] is Status.FAIL and got["fills"] is Status.FAIL, (a, b)
