"""A reader of the journal recomputes PnL from `fills` exactly.

The bot's own snapshots (`positions`) are checked against an independent cash
flow recomputation from the exact integer columns (`px_ticks`, `qty_lots`,
`fee_exact`), in Fractions: no float, no accounting convention involved.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd

from bot.journal import read_manifest, read_table
from bot.runtime.run import RunSpec, execute


def cash_flow_pnl(fills: pd.DataFrame, mark: Fraction, tick: Fraction, lot: Fraction) -> Fraction:
    """Total PnL at `mark`: cash paid and received, position marked, fees subtracted."""
    signed_lots = fills.side.astype(int) * fills.qty_lots.astype(int)
    pairs = zip(signed_lots, fills.px_ticks, strict=True)
    cash_ticks_lots = -sum(int(s) * int(p) for s, p in pairs)
    position_lots = int(signed_lots.sum())
    fees = sum((Fraction(fee) for fee in fills.fee_exact), Fraction(0))
    return cash_ticks_lots * tick * lot + position_lots * lot * mark - fees


def test_positions_recompute_exactly_from_fills(binance_dir: Path, tmp_path: Path) -> None:
    execute(RunSpec(mode="paper", out_dir=tmp_path, data=binance_dir, duration="200s"))
    fills = read_table(tmp_path, "fills")
    positions = read_table(tmp_path, "positions")
    spec = read_manifest(tmp_path)["symbols"]["BTCUSDT"]
    tick, lot = Fraction(Decimal(spec["tick_size"])), Fraction(Decimal(spec["lot_size"]))
    assert len(fills) >= 10, "the run must trade for this test to mean anything"
    assert all(isinstance(fee, Decimal) for fee in fills.fee_exact)

    checked = 0
    for snap in positions.itertuples():
        if (fills.ts_ns == snap.ts_ns).any():
            continue  # a fill at the snapshot's own instant: order within the ns is not recorded
        before = fills[fills.ts_ns < snap.ts_ns]
        mark = Fraction(Decimal(repr(snap.mid)))
        exact = cash_flow_pnl(before, mark, tick, lot)
        position = int((before.side.astype(int) * before.qty_lots).sum()) * lot
        assert float(position) == snap.position
        bot_total = (
            Fraction(Decimal(repr(snap.realized_pnl)))
            + Fraction(Decimal(repr(snap.unrealized_pnl)))
            - Fraction(Decimal(repr(snap.fees)))
        )
        # the snapshot's three floats are each one rounding of an exact value
        assert abs(float(exact) - float(bot_total)) <= 1e-9 * max(1.0, abs(float(exact)))
        checked += 1
    assert checked >= 50


def test_fee_exact_is_notional_times_the_tier_rate(binance_dir: Path, tmp_path: Path) -> None:
    execute(RunSpec(mode="paper", out_dir=tmp_path, data=binance_dir, duration="120s"))
    fills = read_table(tmp_path, "fills")
    manifest = read_manifest(tmp_path)
    spec, tier = manifest["symbols"]["BTCUSDT"], manifest["fee_tier"]
    tick, lot = Decimal(spec["tick_size"]), Decimal(spec["lot_size"])
    rate = Decimal(str(tier["maker_bps"])) / Decimal(10_000)
    assert len(fills) > 0
    for row in fills.itertuples():
        notional = int(row.px_ticks) * tick * int(row.qty_lots) * lot
        assert row.fee_exact == notional * rate
