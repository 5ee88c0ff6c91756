"""The per-fill edge in basis points: the one definition (DESIGN §6).

For a fill with side s (+1 buy, -1 sell), price p, notional n, signed fee f
(positive paid, negative rebate), mid m at the fill and m_H, the first mid at
or after fill time + H:

- gross_bps   = s·(m − p)/m·1e4      spread captured
- fee_bps     = −f/n·1e4             a rebate is positive
- adverse_bps = s·(m − m_H)/m·1e4    the mid moved against us
- net_bps     = gross_bps + fee_bps − adverse_bps

Plain arithmetic only, so the same lines work on floats (the risk engine's
edge guard, one fill at a time) and on numpy arrays or pandas Series (the KPIs
in ``gates/kpi.py``, a whole journal at once). Prices may be in any unit as
long as p, m and m_H share it (ticks in the engine, quote currency in the
journal).
"""

from __future__ import annotations

from typing import Any, Final

BPS: Final = 1e4

# a float, a numpy array or a pandas Series: the operands mix (an int side times
# a float price), which no single type variable describes
Num = Any


def gross_bps(side: Num, px: Num, mid: Num) -> Num:
    return side * (mid - px) / mid * BPS


def fee_bps(fee: Num, notional: Num) -> Num:
    return -fee / notional * BPS


def adverse_bps(side: Num, mid: Num, mid_h: Num) -> Num:
    return side * (mid - mid_h) / mid * BPS


def net_bps(gross: Num, fee: Num, adverse: Num) -> Num:
    return gross + fee - adverse
