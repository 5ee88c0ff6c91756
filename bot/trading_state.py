"""The trading state and the only ways between its values (one transition table).

- ACTIVE: every pre-trade check applies.
- REDUCING: only orders that shrink |position| pass (inventory guard, with
  hysteresis back to ACTIVE).
- FROZEN: nothing new is placed; the engine cancels everything. Lifted by an
  operator ``unfreeze`` or, if the profile sets ``freeze_cooldown_ms``, by the
  first timer after the cool-down.
- HALTED: the kill switch (loss limit, drawdown, venue protocol error,
  operator). Nothing in the bot leaves it on its own: an operator's ``unhalt``
  (with a reason, after looking at why it halted) or a restart.

Every change is returned as a ``RiskEvent``, one row of the journal's ``risk``
table; nothing here reads a clock (time is the ``ts_ns`` handed in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

import structlog

log = structlog.get_logger(__name__)

ALL_SYMBOLS: Final = "*"  # the `symbol` of risk events that concern the whole bot


class TradingState(Enum):
    ACTIVE = "active"
    REDUCING = "reducing"
    FROZEN = "frozen"
    HALTED = "halted"


class RiskAction(Enum):
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    REDUCE = "reduce"
    RESUME = "resume"
    KILL = "kill"
    UNHALT = "unhalt"


_A = TradingState.ACTIVE
_R = TradingState.REDUCING
_F = TradingState.FROZEN
_H = TradingState.HALTED

# (state, action) -> next state. A pair that is missing is an illegal transition.
TRANSITIONS: Final[Mapping[tuple[TradingState, RiskAction], TradingState]] = {
    (_A, RiskAction.FREEZE): _F,
    (_R, RiskAction.FREEZE): _F,
    (_F, RiskAction.FREEZE): _F,  # a second freeze restarts the cool-down
    (_H, RiskAction.FREEZE): _H,  # already stricter than frozen: recorded, nothing loosens
    (_F, RiskAction.UNFREEZE): _A,
    (_A, RiskAction.REDUCE): _R,
    (_R, RiskAction.RESUME): _A,
    (_A, RiskAction.KILL): _H,
    (_R, RiskAction.KILL): _H,
    (_F, RiskAction.KILL): _H,
    (_H, RiskAction.KILL): _H,
    (_H, RiskAction.UNHALT): _A,
}

# the `kind` column of the journal's risk table for each action
_KIND: Final[Mapping[RiskAction, str]] = {
    RiskAction.FREEZE: "freeze",
    RiskAction.UNFREEZE: "unfreeze",
    RiskAction.REDUCE: "reduce_only",
    RiskAction.RESUME: "resume",
    RiskAction.KILL: "kill",
    RiskAction.UNHALT: "unhalt",
}


class RiskError(Exception):
    """Base of the risk engine's errors."""


class InvalidRiskTransition(RiskError):
    """An action that the current trading state does not allow (caller's bug or operator error)."""

    def __init__(self, state: TradingState, action: RiskAction) -> None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        super().__init__(
            f"cannot {action.value} while {state.value}; allowed from {state.value}: {allowed}"
        )
        self.state = state
        self.action = action


def next_state(state: TradingState, action: RiskAction) -> TradingState:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise InvalidRiskTransition(state, action) from None


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One row of the journal ``risk`` table (fields in column order).

    kind: block / freeze / unfreeze / reduce_only / resume / kill / unhalt;
    state: the trading state after the event.
    """

    ts_ns: int
    symbol: str
    kind: str
    check: str
    reason: str
    state: str

    def row(self) -> tuple[int, str, str, str, str, str]:
        return (self.ts_ns, self.symbol, self.kind, self.check, self.reason, self.state)


class TradingStateTable:
    """The current trading state, moved only through ``TRANSITIONS``."""

    __slots__ = ("freezes", "frozen_at_ns", "state")

    def __init__(self) -> None:
        self.state = TradingState.ACTIVE
        self.freezes = 0  # how many times FROZEN was entered
        self.frozen_at_ns = 0  # when the last freeze began (start of the cool-down)

    @property
    def trading(self) -> bool:
        """ACTIVE or REDUCING: the states the runtime guards may still tighten."""
        state = self.state
        return state is _A or state is _R

    def apply(
        self, action: RiskAction, ts_ns: int, check: str, reason: str, symbol: str = ALL_SYMBOLS
    ) -> RiskEvent:
        before = self.state
        after = next_state(before, action)
        self.state = after
        if action is RiskAction.FREEZE and after is _F:
            self.frozen_at_ns = ts_ns
            if before is not _F:
                self.freezes += 1
        event = RiskEvent(ts_ns, symbol, _KIND[action], check, reason, after.value)
        log.warning(
            "risk_state_change",
            ts_ns=ts_ns,
            symbol=symbol,
            kind=event.kind,
            check=check,
            reason=reason,
            before=before.value,
            after=after.value,
        )
        return event
