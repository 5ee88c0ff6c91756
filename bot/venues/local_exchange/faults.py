"""Faults a test switches on for the next requests the server answers.

Each fault applies to the next `count` requests whose path starts with `path`
(every path by default), in the order they were added:
  http_error   an HTTP status (5xx) with a plain-text body, the request not processed;
  delay        the request IS processed, then the response waits `seconds` (a client
               with a shorter timeout sees a timeout for an order that was placed);
  rate_limit   retCode 10006 "Too many visits!", the request not processed;
  post_only_reject  the next post-only orders are cancelled as if they crossed
               (LocalExchange.reject_post_only).
Websocket faults count messages, not requests:
  skip         the next book deltas are not sent (the stream's `u` jumps: a gap);
  duplicate    the next messages are sent twice;
  reorder      the next messages are each held back and sent after the one that
               follows them on their connection (out of order).
A dropped connection is LocalExchange.drop_streams().
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["http_error", "delay", "rate_limit"]
WsFault = Literal["skip", "duplicate", "reorder"]


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    count: int
    path: str = "/"
    status: int = 503
    seconds: float = 0.0


@dataclass(slots=True)
class FaultControl:
    """Mutable on purpose: the test arms faults while the server runs."""

    pending: list[Fault] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    ws: dict[str, int] = field(default_factory=dict)

    def http_error(self, count: int = 1, status: int = 503, path: str = "/") -> None:
        self.pending.append(Fault("http_error", count, path, status=status))

    def delay(self, seconds: float, count: int = 1, path: str = "/") -> None:
        self.pending.append(Fault("delay", count, path, seconds=seconds))

    def rate_limit(self, count: int = 1, path: str = "/") -> None:
        self.pending.append(Fault("rate_limit", count, path))

    def ws_skip(self, count: int = 1) -> None:
        self.ws["skip"] = self.ws.get("skip", 0) + count

    def ws_duplicate(self, count: int = 1) -> None:
        self.ws["duplicate"] = self.ws.get("duplicate", 0) + count

    def ws_reorder(self, count: int = 1) -> None:
        self.ws["reorder"] = self.ws.get("reorder", 0) + count

    def clear(self) -> None:
        self.pending.clear()
        self.ws.clear()

    def take_ws(self, kind: WsFault) -> bool:
        """True when this message is hit by an armed websocket fault (and counts it)."""
        left = self.ws.get(kind, 0)
        if left <= 0:
            return False
        self.ws[kind] = left - 1
        self.fired[kind] = self.fired.get(kind, 0) + 1
        return True

    def take(self, path: str) -> Fault | None:
        """The fault that hits this request, if any (one per request)."""
        for fault in self.pending:
            if path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                return fault
        return None
