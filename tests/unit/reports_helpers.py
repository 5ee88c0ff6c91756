"""Inputs for the report tests, built by hand so they are the same on every machine.

`write_journal` writes a 3-minute journal with three fills whose maker share is
worked out by hand: maker notional 599.99 + 600.01 = 1200.00 of 1800.005 in all.
The frames and verdicts below feed the golden reports directly (no simulation).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from bot.config import Settings
from bot.journal import JournalWriter
from bot.profiles import redacted_dict
from gates.verdict import Check, Status, Verdict

T0 = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z
S = 1_000_000_000
SYMBOL = "BTCUSDT"
FROZEN = "2024-08-10T12:00:00Z"

# t_s, side, price, qty, liquidity, fee, mid
FILLS = [
    (10, 1, 59_999.0, 0.01, "maker", -0.003, 60_000.0),
    (70, -1, 60_001.0, 0.01, "maker", -0.003, 60_000.0),
    (130, 1, 60_000.5, 0.01, "taker", 0.033, 60_000.0),
]
MAKER_SHARE = 1200.0 / 1800.005
# the rates these fees are charged at (0.003 / 599.99 and 0.033 / 600.005 of notional)
FEE_TIER = {"name": "hand", "maker_bps": -0.05, "taker_bps": 0.55}


def write_journal(root: Path, mode: str = "paper", seed: int = 7) -> Path:
    manifest = {"mode": mode, "seed": seed, "symbols": [SYMBOL], "fee_tier": FEE_TIER,
                "settings": redacted_dict(Settings())}  # fmt: skip
    writer = JournalWriter(root, manifest)
    for t in range(0, 181):
        writer.append("book", T0 + t * S, SYMBOL, 59_999.5, 60_000.5, 1.0, 1.0, 60_000.0)
    for i, (t, side, price, qty, liquidity, fee, mid) in enumerate(FILLS):
        cid = f"c{i}"
        send = T0 + (t - 1) * S
        place = ("place", side, price, qty, "pending", send, 0, "")
        writer.append("orders", send, SYMBOL, cid, *place)
        ack = send + (20 + 10 * i) * 1_000_000
        writer.append("orders", ack, SYMBOL, cid, "ack", side, price, qty, "open", send, ack, "")
        writer.append(
            "fills",
            T0 + t * S,
            SYMBOL,
            cid,
            f"t{i}",
            side,
            price,
            qty,
            round(price * 10),
            round(qty * 1000),
            liquidity,
            fee,
            Decimal(str(fee)),
            mid,
        )
    writer.close()
    return root


def minutes(n: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(T0 + np.arange(n) * 60 * S, unit="ns", utc=True))


def equity_frame(n: int = 120) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "ts_ns": T0 + t * 60 * S,
            "pnl_usd": np.round(0.25 * t - 3.0 * np.sin(t / 7.0), 6),
            "position": np.round(0.01 * np.sin(t / 5.0), 6),
            "inventory_usd": np.round(600.0 * np.sin(t / 5.0), 6),
        }
    )


def edges_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gross_bps": [1.5, 1.5, -0.5, 2.0],
            "fee_bps": [0.5, 0.5, -5.5, 0.5],
            "adverse_bps": [0.5, 1.5, 0.0, 1.0],
            "net_bps": [1.5, 0.5, -6.0, 1.5],
            "notional": [600.0, 600.0, 600.0, 1200.0],
        }
    )


def interval_frame(n: int = 60, shift: float = 0.0) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "net_bps": np.round(3.0 + shift + np.sin(t / 4.0), 6),
            "maker_share": np.round(0.93 - 0.03 * np.cos(t / 6.0), 6),
            "fills": (5 + t % 4).astype(float),
            "order_latency_ms": np.round(300.0 + 60.0 * np.sin(t / 9.0), 6),
            "inventory_ratio": np.round(0.3 + 0.15 * np.abs(np.sin(t / 11.0)), 6),
            "pnl_usd": np.round(0.2 * t, 6),
            "turnover_usd": np.full(n, 3000.0),
            "error_rate": np.zeros(n),
        },
        index=pd.DatetimeIndex(minutes(n), name="start"),
    )


def kpi_verdict() -> Verdict:
    return Verdict.of(
        "kpi",
        [
            Check("adverse_p95_bps", Status.PASS, 3.2, 4, 6),
            Check("cancel_ratio", Status.PASS, 0.41, 0.55, 0.70),
            Check("inventory_ratio_p95", Status.WARN, 0.44, 0.40, 0.50, "0.44 > warn bound 0.4"),
            Check("maker_share", Status.PASS, 0.93, 0.90, 0.85),
            Check("net_bps", Status.PASS, 3.05, 2.7, 2.0),
            Check("order_latency_p95_ms", Status.FAIL, None, 350, 400, "missing"),
        ],
        {"kpis": {"net_bps": 3.05, "maker_share": 0.93}},
    )


def canary_verdict() -> Verdict:
    return Verdict.of(
        "canary",
        [
            Check(
                "net_bps",
                Status.PASS,
                -0.04,
                0.1,
                0.1,
                "",
                {"canary": 2.96, "baseline": 3.08, "p_value": 0.41},
            ),
            Check(
                "inventory_ratio",
                Status.WARN,
                0.12,
                0.1,
                0.25,
                "inventory ratio up 12% | p=0.03",
                {"canary": 0.37, "baseline": 0.33},
            ),
            Check("fills", Status.PASS, 0.02, 0.25, 0.5),
        ],
        {"score": 82.5, "baseline_run": "base-1"},
    )


KPIS = {
    "net_bps": 3.05,
    "gross_bps": 1.6,
    "fee_bps": 0.5,
    "adverse_bps": 0.8,
    "maker_share": 0.93,
    "fills": 240,
    "turnover_usd": 144_000.0,
    "pnl_usd": 43.92,
    "order_latency_p95_ms": float("nan"),
}
