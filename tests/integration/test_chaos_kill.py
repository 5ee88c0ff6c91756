"""Chaos: a live bot killed with SIGKILL mid-run (open orders at the venue, fills
behind it), then a standby on the same account takes over once the dead one's lease
expires. The venue and the two journals must agree: position, orders, fills."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bot.exitcodes import ExitCode
from bot.journal import OPENING, RECOVERED, read_manifest
from bot.runtime.run import SUMMARY
from tests.integration.live_bots import (
    LiveBot,
    flatten,
    hit_both_sides,
    order_intervals,
    our_orders,
    sell_through_best_bid,
    venue_position,
    wait_for,
)
from tests.integration.local_exchange import SYMBOL, ServerThread

pytestmark = pytest.mark.integration


def signed_lots(fills: pd.DataFrame) -> int:
    return int((fills["side"] * fills["qty_lots"]).sum()) if len(fills) else 0


def test_kill_9_then_a_standby_takes_over_with_venue_and_journals_agreeing(
    server: ServerThread, state_url: str, tmp_path: Path
) -> None:
    server.reset()
    executions_before = len(server.venue.executions)
    position_before = venue_position(server)
    dead = LiveBot.start(server, tmp_path / "dead", state=state_url, account="kill")
    standby: LiveBot | None = None
    try:
        first = wait_for("quotes", lambda: our_orders(server), procs=(dead.proc,))
        dead_run = first[0].order_link_id.split("-")[0]
        wait_for("both sides hit", lambda: hit_both_sides(server, ts=100), procs=(dead.proc,))
        wait_for("both fills in the journal", lambda: len(dead.journal("fills")) == 2,
                 procs=(dead.proc,))  # fmt: skip
        wait_for("quotes again", lambda: len(our_orders(server, dead_run)) >= 2, procs=(dead.proc,))
        standby = LiveBot.start(server, tmp_path / "next", state=state_url, account="kill",
                                standby=True)  # fmt: skip
        dead.stop(signal.SIGKILL)
        orphans = our_orders(server, dead_run)
        assert orphans  # the dead bot's quotes are still at the venue

        # the standby waits out the lease, cancels the orphans first, then quotes
        def new_quotes() -> list[Any]:
            return [o for o in our_orders(server) if not o.order_link_id.startswith(dead_run)]

        mine = wait_for("the standby's quotes", new_quotes, 60, (standby.proc,))
        assert not our_orders(server, dead_run)
        prefix = mine[0].order_link_id.split("-")[0]
        wait_for("a bid hit", lambda: sell_through_best_bid(server, prefix, ts=200), 30,
                 (standby.proc,))  # fmt: skip
        wait_for("the standby's fill", lambda: len(standby.journal("fills")) >= 1, 30,
                 (standby.proc,))  # fmt: skip
    finally:
        dead.stop(signal.SIGKILL)
        code = standby.stop() if standby is not None else None
    assert code == ExitCode.OK, standby.stderr() if standby else ""
    assert server.venue.open_orders(None) == []
    # every venue fill of the two runs is in exactly one journal, once
    venue_fills = [e.exec_id for e in server.venue.executions[executions_before:]]
    journaled = pd.concat([dead.journal("fills"), standby.journal("fills")])
    assert sorted(journaled["trade_id"]) == sorted(venue_fills)
    assert len(venue_fills) >= 3
    # the position the journals add up to is the venue's
    assert position_before + signed_lots(journaled) == venue_position(server) != position_before
    # no order twice: the restart placed ids of its own run only, each once, and the
    # venue holds only those (the dead run's orders table died in its buffer; its ids
    # carry its own run id, which no later run reuses). A place the engine decided as
    # the stop came may never have been sent: its only other row is the stop's cancel.
    orders = standby.journal("orders")
    placed = orders[orders["event"] == "place"]["client_order_id"]
    assert placed.is_unique and not placed.str.startswith(dead_run).any()
    runs = order_intervals(server)
    at_venue = {o.order_link_id for o in server.venue.orders.values()
                if o.order_link_id.startswith(f"{prefix}-")}  # fmt: skip
    assert at_venue and at_venue <= set(placed)
    unsent = orders[orders["client_order_id"].isin(set(placed) - at_venue)]
    assert set(unsent["event"]) <= {"place", "cancel"}
    assert not orders["reason"].fillna("").str.contains("duplicate", case=False).any()
    # at no instant both runs' orders at the venue
    assert max(end for _, end in runs[dead_run]) <= min(start for start, _ in runs[prefix])
    summary = json.loads((standby.out / SUMMARY).read_text())
    assert summary["live"]["orphans_cancelled"] == len(orphans)
    assert summary["shared_state"]["token"] > 1  # a newer lease than the dead one's


def test_kill_9_after_a_fill_it_never_heard_then_the_restart_takes_over_the_position(
    server: ServerThread, state_url: str, tmp_path: Path
) -> None:
    server.reset()
    flatten(server, ts=299)  # a new account: it starts flat
    executions_before = len(server.venue.executions)
    position_before = venue_position(server)
    dead = LiveBot.start(server, tmp_path / "dead", state=state_url, account="missed")
    restart: LiveBot | None = None
    try:
        first = wait_for("quotes", lambda: our_orders(server), procs=(dead.proc,))
        dead_run = first[0].order_link_id.split("-")[0]
        wait_for("a bid hit", lambda: sell_through_best_bid(server, dead_run, ts=300),
                 procs=(dead.proc,))  # fmt: skip
        wait_for("the fill in the journal", lambda: len(dead.journal("fills")) == 1,
                 procs=(dead.proc,))  # fmt: skip
        wait_for("a bid again", lambda: [o for o in our_orders(server, dead_run) if o.side > 0],
                 procs=(dead.proc,))  # fmt: skip
        dead.proc.send_signal(signal.SIGSTOP)
        # the venue fills the frozen bot's bid: it never hears of it, then dies
        assert sell_through_best_bid(server, dead_run, ts=301)
        dead.stop(signal.SIGKILL)
        left = venue_position(server)
        orphans = {o.order_link_id for o in our_orders(server, dead_run)}
        assert orphans  # its ask still rests at the venue: the restart adopts it
        restart = LiveBot.start(server, tmp_path / "next", state=state_url, account="missed",
                                standby=True, extra=("--set", "live.orphans=adopt"))  # fmt: skip

        def new_quotes() -> list[Any]:
            return [o for o in our_orders(server) if not o.order_link_id.startswith(dead_run)]

        wait_for("the restart's quotes", new_quotes, 60, (restart.proc,))
    finally:
        dead.stop(signal.SIGKILL)
        code = restart.stop() if restart is not None else None
    assert restart is not None and code == ExitCode.OK, restart.stderr() if restart else ""
    assert server.venue.open_orders(None) == []
    manifest = read_manifest(restart.out)
    # the restart opened with the position the dead run left, the unheard fill included
    assert left > position_before
    assert manifest[OPENING][SYMBOL]["qty"] == pytest.approx((left - position_before) * 0.001)
    recovered = manifest[RECOVERED]
    assert recovered["from_run"] == dead_run and len(recovered["fills"]) == 1
    # every venue fill is in exactly one journal, once: the dead run's, or the restart's
    # (its own fills table, or the fill it recovered for the dead run)
    heard = list(dead.journal("fills")["trade_id"])
    missed = [f["trade_id"] for f in recovered["fills"]]
    after = restart.journal("fills")
    own = list(after["trade_id"]) if len(after) else []
    venue_fills = [e.exec_id for e in server.venue.executions[executions_before:]]
    assert sorted(heard + missed + own) == sorted(venue_fills) and len(heard) == 1
    assert left + signed_lots(after) == venue_position(server)
    # the orphans became the restart's own orders: journaled as adopted, then managed
    # (requoted or cancelled at its stop) by its engine like the orders it placed
    orders = restart.journal("orders")
    adopted = orders[orders["reason"].fillna("") == f"adopted from run {dead_run}"]
    assert set(adopted["client_order_id"]) == orphans and set(adopted["event"]) == {"ack"}
    gone = orders[orders["event"] == "cancel_ack"]["client_order_id"]
    assert orphans <= set(gone) | set(after["client_order_id"] if len(after) else [])
    summary = json.loads((restart.out / SUMMARY).read_text())
    assert summary["live"]["orphans_adopted"] == len(orphans)
    assert summary["live"]["orphans_cancelled"] == 0
