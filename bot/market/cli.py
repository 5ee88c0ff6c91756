"""`mmbot market ...`: generate, inspect and convert market data."""

from __future__ import annotations

import typer

market_app = typer.Typer(no_args_is_help=True, help="Market data: synth, info, convert")
