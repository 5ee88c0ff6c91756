"""`mmbot` commands of the bot itself: config, market data, runs.

The full `mmbot` app (with gates, reports and flows) is assembled in
`flows/cli.py`, the outermost shell, so that `bot/` imports none of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Final

import typer

from bot.cli_common import JsonOpt, ProfileOpt, SetOpt, fail, with_log_options
from bot.config_cli import config_app
from bot.exchange_cli import exchange_app
from bot.exitcodes import ExitCode
from bot.journal import MANIFEST, partial_path
from bot.journal_cli import journal_app
from bot.market.cli import SourceFormat, market_app
from bot.market.validate import MarketDataError
from bot.profiles import ConfigError
from bot.runtime.run import (
    MODES,
    RunError,
    RunMode,
    RunSpec,
    run_bot,
    settings_for,
    summary_lines,
)
from bot.runtime.sim_loop import SimLoopError
from bot.runtime.telemetry import configure_for
from bot.state_cli import (
    DEFAULT_ACCOUNT,
    DEFAULT_STATE_DIR,
    StateDirOpt,
    StateOpt,
    open_link,
    register,
    serving,
)

LIVE_MODES: Final = ("live", "canary")

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="mmbot: market-making rebate bot"
)
app.add_typer(market_app, name="market")
app.add_typer(exchange_app, name="exchange")
app.add_typer(config_app, name="config")
app.add_typer(journal_app, name="journal")
register(app)


def _tell_partial(partial: Path) -> None:
    """After an error line: where the rows of a run stopped mid-way are (if it started)."""
    if (partial / MANIFEST).exists():
        typer.echo(f"partial journal at {partial}", err=True)


@app.command("run")
@with_log_options
def run(
    out: Annotated[Path, typer.Option("--out", help="journal directory")],
    mode: Annotated[
        str,
        typer.Option(
            help="paper (simulated venue), shadow (a replay, or with --exchange the "
            "exchange's streams), live / canary (real orders)"
        ),
    ] = "paper",
    profile: ProfileOpt = "base",
    data: Annotated[
        Path | None, typer.Option(help="Parquet, Tardis CSV dir or Bybit ob500 file")
    ] = None,
    fmt: Annotated[
        SourceFormat | None,
        typer.Option(
            "--format",
            help="format of --data (or the profile's data.path), overriding the guess "
            "from the file names; the same as --set data.format=FORMAT",
            show_default=False,
        ),
    ] = None,
    synth: Annotated[int | None, typer.Option(help="synthetic market with this seed")] = None,
    duration: Annotated[str | None, typer.Option(help="data time to run, e.g. 6h")] = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[bool, typer.Option(help="replace a journal already in --out")] = False,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress",
            help="a bar on a terminal, else a log line every --progress-every % of data time",
        ),
    ] = True,
    progress_every: Annotated[
        float, typer.Option(min=0.1, max=100, help="% of data time between progress log lines")
    ] = 10.0,
    state: StateOpt = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            help="join the shared state as this account's leader (heartbeat, lease, "
            f"operator commands); --state alone means --account {DEFAULT_ACCOUNT}",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port",
            min=0,
            max=65535,
            help="serve /health, /ready and /metrics on 127.0.0.1:PORT (0: any free port, "
            "logged); $MMBOT_HEALTH_TOKEN, if set, is the bearer token they require",
            show_default=False,
        ),
    ] = None,
    exchange: Annotated[
        str | None, typer.Option(help="live/canary: the ccxt exchange (venue.name), e.g. bybit")
    ] = None,
    exchange_url: Annotated[
        str | None,
        typer.Option(
            help="live/canary: another server, e.g. the local exchange (live.exchange_url)"
        ),
    ] = None,
    testnet: Annotated[
        bool, typer.Option(help="live/canary: the exchange's testnet (ccxt sandbox mode)")
    ] = False,
    standby: Annotated[
        bool,
        typer.Option(
            help="with the shared state: wait for the account's leader lease instead of "
            "refusing to start while another bot holds it (a failover standby)"
        ),
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            help="on an exchange's streams: also write the books and trades the bot heard "
            "to DIR as market data (<SYMBOL>.parquet), for a replay of the same window",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay market data through the bot in paper or shadow mode, or trade live; write
    the journal."""
    on_exchange = mode in LIVE_MODES or (mode == "shadow" and (exchange or exchange_url))
    if on_exchange:
        if data is not None or synth is not None or fmt is not None:
            raise fail(f"--data, --synth and --format are for replays; --mode {mode} runs live")
        live_mode: RunMode = (
            "live" if mode == "live" else "canary" if mode == "canary" else "shadow"
        )
        live_spec = RunSpec(
            mode=live_mode, out_dir=out, profile=profile, duration=duration,
            overrides=tuple(set_ or ()), force=force, record=record,
        )  # fmt: skip
        joined = state is not None or account is not None or standby
        joining = (state, account or DEFAULT_ACCOUNT, state_dir, standby) if joined else None
        _run_live(live_spec, exchange, exchange_url, testnet, as_json, joining, health_port)
        return
    if exchange is not None or exchange_url is not None or testnet:
        raise fail("--exchange, --exchange-url and --testnet are for --mode live, canary or shadow")
    if record is not None:
        raise fail("--record is for a run on an exchange's streams; a replay's market is its data")
    if mode not in MODES:
        modes = ", ".join((*MODES, *LIVE_MODES))
        typer.echo(f"error: --mode must be one of {modes}, got {mode!r}", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if data is not None and synth is not None:
        typer.echo("error: --data and --synth are alternatives; pass one", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if fmt is not None and synth is not None:
        raise fail("--format is the format of --data; a --synth market has none")
    run_mode: RunMode = "paper" if mode == "paper" else "shadow"
    # the format is a setting like any other (data.format): a --set after it, on the right
    overrides = (*((f"data.format={fmt.value}",) if fmt is not None else ()), *(set_ or ()))
    spec = RunSpec(
        mode=run_mode, out_dir=out, profile=profile, data=data, synth_seed=synth,
        duration=duration, overrides=overrides, force=force, progress=progress,
        progress_every_pct=progress_every,
    )  # fmt: skip
    partial = partial_path(out)
    try:
        settings = settings_for(spec)
        configure_for(settings)
        with serving(health_port, settings.state) as monitor:
            if state is None and account is None:
                result = run_bot(spec, settings, monitor=monitor)
            else:
                link = open_link(
                    state, account or DEFAULT_ACCOUNT, state_dir, settings.state, standby=standby
                )
                try:
                    result = run_bot(spec, settings, state=link, monitor=monitor)
                finally:
                    link.close()
    except KeyboardInterrupt as exc:
        started = (partial / MANIFEST).exists()
        where = f"partial journal at {partial}" if started else "no journal was started"
        typer.echo(f"interrupted; {where}", err=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from exc
    except (ConfigError, RunError, SimLoopError) as exc:
        typer.echo(f"error: {exc}", err=True)
        _tell_partial(partial)
        raise typer.Exit(ExitCode.USAGE) from exc
    except MarketDataError as exc:
        typer.echo(f"error: {exc}", err=True)
        _tell_partial(partial)
        raise typer.Exit(ExitCode.DATA) from exc
    if as_json:
        typer.echo(json.dumps(result.summary, sort_keys=True, default=str))
    else:
        typer.echo("\n".join(summary_lines(result.summary)))


def _run_live(
    spec: RunSpec, exchange: str | None, url: str | None, testnet: bool, as_json: bool,
    state: tuple[str | None, str, Path, bool] | None, health_port: int | None,
) -> None:  # fmt: skip
    # imported here: a replay never loads ccxt (DESIGN §2, commands import lazily)
    from ccxt.base.errors import BaseError as VenueError

    from bot.runtime.live_loop import LiveHalt
    from bot.runtime.live_run import check_armed, live_settings, run_live
    from bot.runtime.secrets import SecretsError
    from bot.venues.exchange import ExchangeHalted, PlacementUnknown

    partial = partial_path(spec.out_dir)
    try:
        settings = live_settings(
            spec, exchange=exchange, exchange_url=url, testnet=testnet, env=os.environ
        )
        configure_for(settings)
        if spec.mode != "shadow":
            check_armed(settings, os.environ)  # before a standby waits for its lease
        with serving(health_port, settings.state) as monitor:
            link = (
                None if state is None
                else open_link(*state[:3], settings.state, standby=state[3])
            )  # fmt: skip
            try:
                result = run_live(spec, settings, os.environ, state=link, monitor=monitor)
            finally:
                if link is not None:
                    link.close()
    except KeyboardInterrupt as exc:
        typer.echo(f"interrupted; orders cancelled, partial journal at {partial}", err=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from exc
    except (ConfigError, RunError, SecretsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc
    except (LiveHalt, ExchangeHalted, PlacementUnknown, VenueError) as exc:
        # a venue error the shell could not absorb (retries spent, e.g. a 5xx storm longer
        # than the retry budget; an answer it does not know) stopped the run after its
        # cancel-all: one line, no traceback, the partial journal kept
        typer.echo(f"halted: {type(exc).__name__}: {exc}", err=True)
        _tell_partial(partial)
        raise typer.Exit(ExitCode.FAIL) from exc
    if as_json:
        typer.echo(json.dumps(result.summary, sort_keys=True, default=str))
    else:
        live = result.summary["live"]
        typer.echo(
            f"run {result.run_id}  mode {result.summary['mode']}  fills {result.summary['fills']}"
            f"  open orders {result.summary['open_orders']}  stopped: {live['stop_reason']}"
        )
