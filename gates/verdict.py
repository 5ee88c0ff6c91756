"""The typed result every gate returns and every report renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    # A check the run's mode cannot measure (latency in shadow mode). It is no evidence
    # either way: it neither passes nor fails the gate, and a gate with nothing but N/A
    # checks has judged nothing, which is a FAIL (see `overall`).
    NA = "N/A"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
        return max(statuses, key=lambda s: s.rank, default=Status.PASS)

    @staticmethod
    def overall(statuses: list[Status] | tuple[Status, ...]) -> Status:
        """The status of a verdict: the worst measured status; FAIL when none was measured
        (no check at all, or only N/A ones), because nothing has earned a PASS."""
        measured: list[Status] = [s for s in statuses if s is not Status.NA]
        return Status.worst(measured) if measured else Status.FAIL


_RANK = {Status.NA: -1, Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One judged quantity: its value, the bounds it was held to, and why it failed.

    `direction` is the bad side of the bounds, as the gate held them: "min" (a value
    below a bound is bad: a floor), "max" (above is bad: a ceiling), "" where the gate
    states none (a statistical comparison). Reports read it to say what would pass."""

    name: str
    status: Status
    value: float | None
    warn: float | None = None
    fail: float | None = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    direction: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "value": self.value,
            "warn": self.warn,
            "fail": self.fail,
            "reason": self.reason,
            "detail": self.detail,
            "direction": self.direction,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A gate's judgment. `parts` are the sub-verdicts a stage verdict rests on (the
    journal's quality suites under the KPI stage); the status already includes them."""

    gate: str
    status: Status
    checks: tuple[Check, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    parts: tuple[Verdict, ...] = ()

    @property
    def reasons(self) -> list[str]:
        """Why the verdict is not a PASS: every WARN or FAIL check, its parts' too."""
        own = [f"{c.name}: {c.reason}" for c in self.checks if c.status.rank > Status.PASS.rank]
        return [*own, *(r for part in self.parts for r in part.reasons)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "status": self.status.value,
            "reasons": self.reasons,
            "summary": self.summary,
            "checks": [c.to_dict() for c in self.checks],
            "parts": [p.to_dict() for p in self.parts],
        }

    @classmethod
    def of(
        cls,
        gate: str,
        checks: list[Check],
        summary: dict[str, Any] | None = None,
        parts: tuple[Verdict, ...] = (),
    ) -> Verdict:
        statuses = [c.status for c in checks]
        status = Status.overall(statuses)
        if parts:
            status = Status.worst([status, *(p.status for p in parts)])
        return cls(gate, status, tuple(checks), summary or {}, parts)
