"""The typed result every gate returns and every report renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
        return max(statuses, key=lambda s: s.rank, default=Status.PASS)


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One judged quantity: its value, the bounds it was held to, and why it failed."""

    name: str
    status: Status
    value: float | None
    warn: float | None = None
    fail: float | None = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    gate: str
    status: Status
    checks: tuple[Check, ...]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.reason}" for c in self.checks if c.status is not Status.PASS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "status": self.status.value,
            "reasons": self.reasons,
            "summary": self.summary,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status.value,
                    "value": c.value,
                    "warn": c.warn,
                    "fail": c.fail,
                    "reason": c.reason,
                    "detail": c.detail,
                }
                for c in self.checks
            ],
        }

    @classmethod
    def of(cls, gate: str, checks: list[Check], summary: dict[str, Any] | None = None) -> Verdict:
        return cls(gate, Status.worst([c.status for c in checks]), tuple(checks), summary or {})
