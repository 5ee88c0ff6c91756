"""On the console a stage that stopped as designed (a gate FAIL, a rejection) is its
failed-state line: Prefect's traceback record of it is dropped; a crash keeps its own."""

from __future__ import annotations

import logging
import sys

from flows.artifacts import StageFailed, _NoStopTracebacks, quiet_stage_stops
from flows.promote import PromotionRejected
from gates.verdict import Check, Status, Verdict

FAILED = Verdict.of("kpi", [Check("fills", Status.FAIL, 2.0, 50, 20, "fills: 2 < fail bound 20")])


def record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    message = "Encountered exception during execution: %r"
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, message, (exc,), info)


def test_stage_stops_lose_their_traceback_record_and_crashes_keep_it() -> None:
    keep = _NoStopTracebacks().filter
    assert not keep(record_of(StageFailed("shadow", FAILED)))
    assert not keep(record_of(PromotionRejected("rejected by bob: not on a Friday")))
    assert keep(record_of(KeyError("a bug")))
    plain = logging.LogRecord("prefect", logging.INFO, __file__, 1, "Finished", (), None)
    assert keep(plain)


def test_the_filter_goes_on_prefect_s_console_handler_once() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    root = logging.getLogger()
    handler = PrefectConsoleHandler()
    root.addHandler(handler)
    try:
        quiet_stage_stops()
        quiet_stage_stops()
        assert sum(isinstance(f, _NoStopTracebacks) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
