"""Chaos: two live bots on one account. The leader is stopped (SIGSTOP: a stuck
process, its lease left to expire) while a --standby waits; the standby takes the
lease and the account, then the old leader wakes up. At no instant do both have open
orders at the venue, the woken one places nothing more (the fence) and its freeze
cancels its own orders only, never the new leader's."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bot.exitcodes import ExitCode
from bot.runtime.run import SUMMARY
from tests.integration.live_bots import (
    LiveBot,
    MarketTicks,
    order_intervals,
    our_orders,
    wait_for,
)
from tests.integration.local_exchange import ServerThread

pytestmark = pytest.mark.integration


def test_a_stuck_leader_and_a_standby_never_both_hold_orders(
    server: ServerThread, state_url: str, tmp_path: Path
) -> None:
    server.reset()
    with MarketTicks(server):
        _two_bots(server, state_url, tmp_path)


def _two_bots(server: ServerThread, state_url: str, tmp_path: Path) -> None:
    old = LiveBot.start(server, tmp_path / "old", state=state_url, account="two")
    new: LiveBot | None = None
    try:
        quotes = wait_for("the leader's quotes", lambda: our_orders(server), procs=(old.proc,))
        old_run = quotes[0].order_link_id.split("-")[0]
        # the standby starts once the leader leads: started at once, on a busy machine it
        # could take the free lease first, and the leader (no --standby) would refuse
        new = LiveBot.start(server, tmp_path / "new", state=state_url, account="two", standby=True)
        time.sleep(2)  # the standby is up and waiting: it must not quote meanwhile
        assert {o.order_link_id.split("-")[0] for o in our_orders(server)} == {old_run}
        old.proc.send_signal(signal.SIGSTOP)

        def new_quotes() -> list[Any]:
            return [o for o in our_orders(server) if not o.order_link_id.startswith(old_run)]

        mine = wait_for("the standby's quotes", new_quotes, 60, (new.proc,))
        new_run = mine[0].order_link_id.split("-")[0]
        assert not our_orders(server, old_run)  # the orphans went before the first quote
        old.proc.send_signal(signal.SIGCONT)
        time.sleep(2)  # the old leader hears what happened, polls, loses its lease
        assert not our_orders(server, old_run)  # nothing new from the deposed leader
        assert our_orders(server, new_run)  # and the new leader still quotes
    finally:
        old.proc.send_signal(signal.SIGCONT)
        old_code = old.stop()
        new_code = new.stop() if new is not None else None
    assert old_code == ExitCode.OK, old.stderr()
    assert new is not None and new_code == ExitCode.OK, new.stderr()
    assert server.venue.open_orders(None) == []
    # the venue's order history: every order of the old run closed before the first
    # of the new run was created
    runs = order_intervals(server)
    assert max(end for _, end in runs[old_run]) <= min(start for start, _ in runs[new_run])
    # the journals: the old run placed nothing after the new one's first place, and
    # journaled the lost lease as the freeze that stopped it
    old_orders, new_orders = old.journal("orders"), new.journal("orders")
    first_new = int(new_orders[new_orders["event"] == "place"]["ts_ns"].min())
    assert (old_orders[old_orders["event"] == "place"]["ts_ns"] < first_new).all()
    risk = old.journal("risk")
    lost = risk[(risk["kind"] == "freeze") & (risk["check"] == "lease")]
    assert lost["reason"].str.startswith("leader lease lost").any()
    fenced = old_orders[(old_orders["event"] == "reject")
                        & old_orders["reason"].fillna("").str.startswith("fenced")]  # fmt: skip
    assert (fenced["ts_ns"] >= first_new).all()  # only ever the woken leader's late orders
    # the new leader's orders were cancelled only when it asked: none by the old one's
    # freeze (an account-wide cancel-all would have)
    asked = set(new_orders[new_orders["event"] == "cancel"]["client_order_id"])
    gone = set(new_orders[new_orders["event"] == "cancel_ack"]["client_order_id"])
    assert gone and gone <= asked
    # each heard the other's orders on the account's stream and journaled none of them
    for journal in (old_orders, new_orders):
        assert not journal["reason"].fillna("").str.contains("unknown order").any()
        assert (journal["status"] != "UNKNOWN").all()
    heard = [json.loads((bot.out / SUMMARY).read_text())["live"]["foreign"] for bot in (old, new)]
    assert sum(heard) > 0
