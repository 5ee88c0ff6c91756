"""`mmbot` commands of the bot itself: config, market data, runs.

The full `mmbot` app (with gates, reports and flows) is assembled in
`flows/cli.py`, the outermost shell, so that `bot/` imports none of them.
"""

from __future__ import annotations

import typer

from bot.market.cli import market_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="mmbot: market-making rebate bot")
app.add_typer(market_app, name="market")
