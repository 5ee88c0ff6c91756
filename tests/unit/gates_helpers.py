"""A small hand-made journal whose KPIs are worked out by hand in the gates tests.

Timeline (ms after T0; book every 500 ms, bid/ask = mid ∓ 0.1):
  mids: 0:100.0 500:100.0 1000:100.2 1500:100.2 2000:99.8 2500:99.8 3000:99.6
        3500..7000:100.0
  fills: F1 t=0    buy  99.9 x2 maker fee -0.02 mid 100.0
         F2 t=1200 sell 100.3 x1 maker fee -0.01 mid 100.2
         F3 t=2000 buy  99.9 x1 taker fee +0.03 mid 99.8
         F4 t=6500 sell 100.1 x1 maker fee -0.01 mid 100.0  (no book at t+1 s)
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.journal import JournalWriter, MemoryJournal

T0 = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z, a multiple of every test interval
MS = 1_000_000
SYMBOL = "BTCUSDT"

MIDS = {0: 100.0, 500: 100.0, 1000: 100.2, 1500: 100.2, 2000: 99.8, 2500: 99.8, 3000: 99.6}
MIDS.update({t: 100.0 for t in range(3500, 7001, 500)})

FILLS = [
    # t_ms, side, price, qty, liquidity, fee, mid
    (0, 1, 99.9, 2.0, "maker", -0.02, 100.0),
    (1200, -1, 100.3, 1.0, "maker", -0.01, 100.2),
    (2000, 1, 99.9, 1.0, "taker", 0.03, 99.8),
    (6500, -1, 100.1, 1.0, "maker", -0.01, 100.0),
]

MANIFEST: dict[str, Any] = {
    "mode": "paper",
    "seed": 7,
    "symbols": {SYMBOL: {"tick_size": "0.1", "lot_size": "0.001"}},
    "max_inventory_usd": 1000.0,
    # the fills above keep to these rates within 0.003 bps (quality's tolerance is 0.01)
    "fee_tier": {"name": "hand", "maker_bps": -1.0, "taker_bps": 3.0},
    "settings": {
        "strategy": {"max_quote_distance_bps": 15.0},
        "risk": {"price_band_bps": 50.0, "max_order_qty": "2.0"},
    },
}

# (t_ms, side, price, qty): decisions at 0, 2000, 3000 ... see the quote_uptime test
QUOTES = [
    (0, 1, 99.9, 1.0),
    (0, -1, 100.1, 1.0),
    (2000, 1, 99.7, 1.0),
    (2000, -1, 99.9, 1.0),
    (4000, 1, 99.9, 1.0),
    (4000, -1, 100.1, 0.0),  # ask withdrawn: not quoted
    (5000, 1, 99.9, 1.0),
    (5000, -1, 100.1, 1.0),
]

# (t_ms, event, ts_send_ms, ts_ack_ms) -- ack latencies 10, 40, 20, 30 ms, one unknown
ORDERS = [
    (0, "place", 0, 0),
    (10, "ack", 0, 10),
    (100, "place", 100, 0),
    (140, "ack", 100, 140),
    (200, "place", 200, 0),
    (220, "ack", 200, 220),
    (300, "place", 300, 0),
    (330, "ack", 300, 330),
    (400, "place", 400, 0),
    (450, "ack", 400, -1),  # ack stamp unknown: not a latency sample
    (500, "cancel", 0, 0),
    (600, "cancel", 0, 0),
    (700, "cancel", 0, 0),
    (2100, "reject", 0, 0),
]

# frozen 1.0-1.1 s and 3.1-5.2 s: samples at 1.0, 3.5, 4.0, 4.5 and 5.0 s are not quoted
RISK = [
    (1000, "freeze"),
    (1100, "unfreeze"),
    (3000, "block"),
    (3100, "freeze"),
    (5200, "unfreeze"),
]


# without the ack whose stamp is unknown (which the orders quality suite rejects)
CLEAN_ORDERS = [row for row in ORDERS if not (row[1] == "ack" and row[3] < 0)]


def record(
    recorder: Any, symbol: str = SYMBOL, orders: list[tuple[int, str, int, int]] = ORDERS
) -> None:
    """Append the hand-made rows to any Recorder (JournalWriter or MemoryJournal)."""
    for t, mid in MIDS.items():
        recorder.append("book", T0 + t * MS, symbol, mid - 0.1, mid + 0.1, 5.0, 5.0, mid)
    for t, side, price, qty, liquidity, fee, mid in FILLS:
        recorder.append(
            "fills", T0 + t * MS, symbol, f"c{t}", f"tr{t}", side, price, qty,
            round(price * 10), round(qty * 1000), liquidity, fee, Decimal(str(fee)), mid,
        )  # fmt: skip
    for t, side, price, qty in QUOTES:
        recorder.append("quotes", T0 + t * MS, symbol, side, 0, price, qty, MIDS[t])
    for t, event, send, ack in orders:
        send_ns = T0 + send * MS if event == "ack" else 0
        ack_ns = T0 + ack * MS if ack >= 0 and event == "ack" else 0
        recorder.append(
            "orders", T0 + t * MS, symbol, f"o{send}", event, 1, 99.9, 1.0, event,
            send_ns, ack_ns, "",
        )  # fmt: skip
    for t, kind in RISK:
        recorder.append("risk", T0 + t * MS, symbol, kind, "edge", "why", "ACTIVE")


def write_journal(
    root: Path,
    manifest: dict[str, Any] = MANIFEST,
    orders: list[tuple[int, str, int, int]] = ORDERS,
) -> Path:
    writer = JournalWriter(root, manifest)
    record(writer, orders=orders)
    writer.close()
    return root


def memory_tables() -> dict[str, Any]:
    memory = MemoryJournal()
    record(memory)
    return {name: memory.frame(name) for name in memory.buffers}
