"""`mmbot exchange local`: the local Bybit server for a rehearsal of live trading."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from bot.cli_common import JsonOpt, ProfileOpt, SetOpt, fail, with_log_options
from bot.config import instruments
from bot.profiles import ConfigError, load_settings
from bot.runtime.clock import WallClock
from bot.runtime.run import RunError, RunSpec, market_source
from bot.runtime.secrets import SecretsError, exchange_credentials
from bot.runtime.telemetry import configure_for

exchange_app = typer.Typer(no_args_is_help=True, help="exchanges the bot can talk to")


@exchange_app.command("local")
@with_log_options
def local(
    port: Annotated[int, typer.Option(help="TCP port on --host (0: any free port)")] = 8765,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    data: Annotated[Path | None, typer.Option(help="market data to replay")] = None,
    synth: Annotated[int | None, typer.Option(help="synthetic market with this seed")] = None,
    balance: Annotated[float, typer.Option(help="USDT in the test account")] = 100_000.0,
    profile: ProfileOpt = "base",
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve a Bybit v5-compatible exchange (REST and streams) on HOST:PORT, matching
    with the simulated venue over a replay of market data. It accepts the API key pair
    in MMBOT_API_KEY / MMBOT_API_SECRET, the same variables the bot reads."""
    try:
        settings = load_settings(profile, overrides=[*(set_ or ()), "secrets.provider=env"])
        configure_for(settings)
        credentials = exchange_credentials(settings, os.environ)
        spec = RunSpec(mode="paper", out_dir=Path("."), data=data, synth_seed=synth)
        source, chunks = market_source(spec, settings)
    except (ConfigError, RunError, SecretsError) as exc:
        raise fail(str(exc)) from exc
    # imported here: no other command loads aiohttp or the local exchange
    from bot.venues.local_exchange import ApiKey, LocalExchange, LocalVenue

    tier = settings.fees.tiers[settings.fees.tier]
    venue = LocalVenue(
        instruments(settings), WallClock(), fee=tier, queue=settings.sim.queue_model,
        balance=Decimal(str(balance)),
    )  # fmt: skip
    venue.replay(chunks)
    key = ApiKey(credentials.api_key.get_secret_value(), credentials.api_secret.get_secret_value())
    exchange = LocalExchange(venue, {key.key: key})

    async def serve() -> None:
        url = await exchange.start(host, port)
        line = {"url": url, "ws": exchange.ws_url, "market": source}
        typer.echo(
            json.dumps(line) if as_json else f"local exchange on {url} ({source}); Ctrl-C stops it"
        )
        try:
            await asyncio.Event().wait()
        finally:
            await exchange.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
