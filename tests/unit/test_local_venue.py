"""The local exchange's account keeping and signature rules, without a socket."""

from __future__ import annotations

from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest

from bot.config import FeeTier, Settings, instruments
from bot.market.readers import open_market
from bot.market.schema import Kind
from bot.model import Side
from bot.runtime.clock import FrozenClock, SimClock
from bot.venues.local_exchange import LocalVenue, LocalVenueError
from bot.venues.local_exchange.auth import ApiKey, signature, verify
from tests.integration.local_exchange import rows, snapshot

NOW_MS = 1_733_000_000_000
KEY = ApiKey("k", "s")


def venue() -> LocalVenue:
    v = LocalVenue(
        instruments(Settings()), FrozenClock(NOW_MS * 1_000_000),
        fee=FeeTier(maker_bps=0.0, taker_bps=0.0), balance=Decimal(1_000),
    )  # fmt: skip
    v.apply(snapshot(100.0, 100.5))
    return v


def fill(v: LocalVenue, link: str, side: Side, px: float, lots: int) -> None:
    ticks = round(px * 10)
    v.place("BTCUSDT", side, ticks, lots, link, "PostOnly")
    # an aggressor through our price fills the whole order
    through = px + 0.1 if side is Side.SELL else px - 0.1
    v.apply(rows(Kind.TRADE, [(-int(side), through, 10.0)], ts=5))
    v.apply(snapshot(100.0, 100.5))


def test_position_realises_pnl_and_flips() -> None:
    v = venue()
    fill(v, "b1", Side.BUY, 100.0, 2_000)  # long 2 BTC at 100
    fill(v, "s1", Side.SELL, 100.5, 3_000)  # sell 3 at 100.5: +1.0 realised, short 1 at 100.5
    pos = v.account.positions["BTCUSDT"]
    assert pos.lots == -1_000
    assert pos.realised == Decimal("1.0")
    assert pos.avg_per_lot == Decimal("0.1005")
    assert v.account.balance == Decimal("1001.0")


def test_duplicate_link_id_and_unknown_order_are_bybit_codes() -> None:
    v = venue()
    v.place("BTCUSDT", Side.BUY, 990, 1, "d1", "PostOnly")
    with pytest.raises(LocalVenueError) as dup:
        v.place("BTCUSDT", Side.BUY, 990, 1, "d1", "PostOnly")
    assert dup.value.ret_code == 110072
    with pytest.raises(LocalVenueError) as missing:
        v.cancel("BTCUSDT", None, "nope")
    assert missing.value.ret_code == 110001


def signed(ts: int, payload: str, secret: str = "s") -> dict[str, str]:
    return {
        "X-BAPI-API-KEY": "k", "X-BAPI-TIMESTAMP": str(ts), "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": signature(secret, str(ts), "k", "5000", payload),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({**signed(NOW_MS, "a=1"), "X-BAPI-API-KEY": "other"}, 10003),
        (signed(NOW_MS, "a=1", secret="wrong"), 10004),  # pragma: allowlist secret
        (signed(NOW_MS - 6_000, "a=1"), 10002),
        (signed(NOW_MS + 1_000, "a=1"), 10002),
    ],
    ids=["unknown-key", "bad-sign", "too-old", "from-the-future"],
)
def test_signature_rules(headers: dict[str, str], code: int) -> None:
    with pytest.raises(LocalVenueError) as refused:
        verify(headers, "a=1", {"k": KEY}, NOW_MS)
    assert refused.value.ret_code == code


def test_a_good_signature_names_its_key() -> None:
    assert verify(signed(NOW_MS - 4_999, "a=1"), "a=1", {"k": KEY}, NOW_MS) is KEY
    assert "hunter2" not in repr(ApiKey("k", "hunter2"))


def test_replay_of_real_data_follows_the_exchange_clock(binance_dir: Path) -> None:
    clock = SimClock(NOW_MS * 1_000_000)
    v = LocalVenue(instruments(Settings()), clock, fee=FeeTier(maker_bps=0.0, taker_bps=0.0))
    chunks = list(islice(open_market(binance_dir, chunk_rows=4_096), 3))
    first = int(chunks[0].ts_local[0])
    v.replay(iter(chunks))
    assert v.advance() > 0  # the first rows are due at once
    book = v.books["BTCUSDT"]
    assert book.has_bid() and book.has_ask() and book.best_bid < book.best_ask
    clock.advance_to(clock.ts_ns + 1_000_000_000)
    applied_by_1s = v.advance()
    rows_in_window = sum(
        int(((c.ts_local > first) & (c.ts_local <= first + 10**9)).sum()) for c in chunks
    )
    due_at_start = sum(int((c.ts_local == first).sum()) for c in chunks)
    assert applied_by_1s == rows_in_window
    assert v.advance() == 0  # nothing more is due until the clock moves
    clock.advance_to(clock.ts_ns + 3_600 * 1_000_000_000)
    assert v.advance() == sum(len(c) for c in chunks) - rows_in_window - due_at_start


def test_reconciliation_names_a_fill_the_bot_did_not_book() -> None:
    from bot.model import Liquidity, OrderFill
    from bot.runtime.reconcile import reconcile_fills

    insts = instruments(Settings())
    fill = OrderFill(0, "BTCUSDT", "c-1", "t-1", Side.BUY, 600_000, 2, Liquidity.MAKER,
                     Decimal("-0.006"))  # fmt: skip
    booked = {"fills": 1, "turnover_usd": 120.0, "fees_usd": -0.006}
    assert reconcile_fills([fill], insts, booked)["matches"]
    missed = reconcile_fills([fill, fill], insts, booked)
    assert not missed["matches"] and missed["venue"]["fills"] == 2
