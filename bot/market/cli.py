"""`mmbot market ...`: generate, inspect and convert market data."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast

import typer

from bot.cli_common import ProfileOpt, SetOpt, fail, with_log_options

market_app = typer.Typer(no_args_is_help=True, help="Market data: synth, info, convert")


# --- info / convert (readers and validation) -------------------------------------------
# Readers, pyarrow and numpy are imported inside the commands so that `mmbot --help`
# and the other commands do not pay for them.


class SourceFormat(StrEnum):
    auto = "auto"
    tardis = "tardis"
    bybit = "bybit"
    parquet = "parquet"


class OnError(StrEnum):
    raise_ = "raise"
    skip = "skip"


_SRC_HELP = "Tardis CSV directory, Bybit *_ob500.data[.zip|.gz], or project Parquet"
_SYMBOL_HELP = "Symbol to read (files holding several symbols)"


def _fail(code: int, message: str) -> NoReturn:
    raise fail(message, code)


def _logs_to_stderr() -> None:
    """stdout is data: send structlog lines to stderr unless someone configured it."""
    import structlog

    if not structlog.is_configured():
        # sys.stderr is looked up per logger, not bound once: a test runner swaps it
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))


def market_info(
    path: Path, fmt: str = "auto", symbol: str | None = None, max_gap_ms: int | None = None
) -> dict[str, object]:
    """What `mmbot market info` prints, as a dict."""
    from bot.market.readers import detect_format, open_market
    from bot.market.validate import describe

    kind = detect_format(path) if fmt == "auto" else fmt
    stats = describe(open_market(path, cast(Any, kind), symbol=symbol), max_gap_ms)
    return {"path": str(path), "format": kind, **stats.to_dict()}


def convert_market(
    src: Path,
    out: Path,
    fmt: str = "auto",
    symbol: str | None = None,
    on_error: str = "raise",
    max_gap_ms: int | None = None,
) -> dict[str, object]:
    """Validates `src` and writes it to `out` (project Parquet); returns a summary.

    The file is written under a temporary name and renamed at the end, so a failed
    conversion never leaves a truncated file that looks finished.
    """
    from bot.config import ValidationConfig
    from bot.market.readers import open_market
    from bot.market.recorder import write_parquet
    from bot.market.validate import MarketDataError, Validator

    gap = {"max_gap_ms": max_gap_ms} if max_gap_ms else {}
    validator = Validator(ValidationConfig(on_error=cast(Any, on_error), **gap))
    chunks = validator.validate(open_market(src, cast(Any, fmt), symbol=symbol))
    first = next(chunks, None)
    if first is None:
        raise MarketDataError(f"{src}: no rows to convert")
    rows = [0]

    def counted() -> Iterator[Any]:
        for chunk in chain([first], chunks):
            rows[0] += len(chunk)
            yield chunk

    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_parquet(counted(), partial, first.symbol)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "src": str(src),
        "out": str(out),
        "symbol": first.symbol,
        "rows": rows[0],
        "skipped": dict(sorted(validator.skipped.items())),
    }


def _run(action: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Calls `action`, turning data and path problems into named exit codes."""
    from bot.exitcodes import ExitCode
    from bot.market.validate import MarketDataError

    try:
        return action()
    except MarketDataError as exc:
        _fail(ExitCode.DATA, str(exc))
    except FileNotFoundError as exc:
        _fail(ExitCode.USAGE, str(exc))


def _format_info(info: dict[str, object]) -> str:
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        lines.append(f"{key:<20} {value}")
    return "\n".join(lines)


@market_app.command("info")
@with_log_options
def info(
    path: Annotated[Path, typer.Argument(help=_SRC_HELP)],
    fmt: Annotated[SourceFormat, typer.Option("--format", help="Source format")] = (
        SourceFormat.auto
    ),
    symbol: Annotated[str | None, typer.Option(help=_SYMBOL_HELP)] = None,
    max_gap_ms: Annotated[int, typer.Option(help="Gaps longer than this are counted")] = 60_000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Symbol, time range, rows per kind, rate, gaps and clock inversions of market data."""
    _logs_to_stderr()
    result = _run(lambda: market_info(path, fmt.value, symbol, max_gap_ms))
    typer.echo(json.dumps(result, sort_keys=True) if as_json else _format_info(result))


@market_app.command("convert")
@with_log_options
def convert(
    src: Annotated[Path, typer.Argument(help=_SRC_HELP)],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write")],
    fmt: Annotated[SourceFormat, typer.Option("--format", help="Source format")] = (
        SourceFormat.auto
    ),
    symbol: Annotated[str | None, typer.Option(help=_SYMBOL_HELP)] = None,
    on_error: Annotated[OnError, typer.Option(help="Bad rows: raise or skip")] = OnError.raise_,
    max_gap_ms: Annotated[int, typer.Option(help="Gaps longer than this are errors")] = 60_000,
) -> None:
    """Validate market data and write it in the project's Parquet format."""
    _logs_to_stderr()
    result = _run(lambda: convert_market(src, out, fmt.value, symbol, on_error.value, max_gap_ms))
    typer.echo(json.dumps(result, sort_keys=True))


# --- end of info / convert ---------------------------------------------------------------


# --- synth (seeded synthetic market) ----------------------------------------------------


def synth_market(
    seed: int,
    out_dir: Path,
    *,
    duration: str | None = None,
    symbol: str | None = None,
    profile: str | Path | None = "base",
    start: str | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[str, object]:
    """Writes `out_dir/<SYMBOL>.parquet` from the profile's `data.synth`; returns a summary.

    Options given here override the profile. Written under a temporary name and
    renamed at the end, so an interrupted run leaves no finished-looking file.
    """
    from bot.config import SynthConfig
    from bot.market.recorder import write_parquet
    from bot.market.synth import StreamTally, generate
    from bot.profiles import load_settings
    from bot.runtime.clock import iso_utc

    settings = load_settings(profile, overrides=overrides)
    given = {"duration": duration, "symbol": symbol, "start": start}
    cfg = SynthConfig.model_validate(
        {**settings.data.synth.model_dump(), **{k: v for k, v in given.items() if v is not None}}
    )
    spec = settings.venue.symbols.get(cfg.symbol)
    if spec is None:
        known = ", ".join(sorted(settings.venue.symbols))
        raise KeyError(f"symbol {cfg.symbol!r} is not in venue.symbols (known: {known})")
    out = out_dir / f"{cfg.symbol}.parquet"
    partial = out.with_name(out.name + ".partial")
    tally = StreamTally()
    try:
        write_parquet(tally.counted(generate(cfg, spec, seed)), partial, cfg.symbol)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "symbol": cfg.symbol,
        "seed": seed,
        "rows": tally.rows,
        "book_rows": tally.book_rows,
        "trades": tally.trades,
        "start": iso_utc(tally.first_ts) if tally.first_ts is not None else None,
        "end": iso_utc(tally.last_ts) if tally.last_ts is not None else None,
        "path": str(out),
    }


@market_app.command("synth")
@with_log_options
def synth(
    out: Annotated[Path, typer.Option(help="Directory; writes <SYMBOL>.parquet there")],
    seed: Annotated[int, typer.Option(help="Seed of the generator: same seed, same bytes")] = 7,
    duration: Annotated[str | None, typer.Option(help="e.g. 90m, 24h (profile's default)")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol from venue.symbols")] = None,
    profile: ProfileOpt = "base",
    start: Annotated[str | None, typer.Option(help="UTC start, e.g. 2024-08-08T00:00:00Z")] = None,
    overrides: SetOpt = None,
) -> None:
    """Generate a seeded synthetic L2 + trades stream and print a one-line JSON summary."""
    from bot.exitcodes import ExitCode
    from bot.market.synth import SynthConfigError
    from bot.profiles import ConfigError

    _logs_to_stderr()
    try:
        result = synth_market(
            seed, out, duration=duration, symbol=symbol, profile=profile, start=start,
            overrides=tuple(overrides or ()),
        )  # fmt: skip
    except (ConfigError, SynthConfigError, KeyError, ValueError) as exc:
        _fail(ExitCode.USAGE, str(exc).strip("'\""))
    typer.echo(json.dumps(result, sort_keys=True))


# --- record (live public streams) ---------------------------------------------------------


@market_app.command("record")
@with_log_options
def record(
    out: Annotated[Path, typer.Option(help="Directory; writes <SYMBOL>.parquet per symbol")],
    symbols: Annotated[
        str, typer.Option(help="ccxt symbols, comma-separated, e.g. BTC/USDT:USDT")
    ] = "BTC/USDT:USDT",
    duration: Annotated[str, typer.Option(help="how long to record, e.g. 90s, 1h")] = "1h",
    exchange: Annotated[str | None, typer.Option(help="ccxt exchange (venue.name)")] = None,
    exchange_url: Annotated[
        str | None, typer.Option(help="another server, e.g. the local exchange")
    ] = None,
    testnet: Annotated[bool, typer.Option(help="the exchange's testnet")] = False,
    profile: ProfileOpt = "base",
    overrides: SetOpt = None,
) -> None:
    """Record the exchange's public L2 book and trades into the market-data Parquet
    format (exchange and local timestamps; a reconnect is a fresh snapshot, counted as a
    gap), and print a one-line JSON summary."""
    import asyncio

    from bot.exitcodes import ExitCode
    from bot.profiles import ConfigError, load_settings
    from bot.runtime.clock import WallClock, parse_duration

    _logs_to_stderr()
    try:
        settings = load_settings(profile, overrides=tuple(overrides or ()))
        seconds = parse_duration(duration) / 1e9
        # imported here: no other market command loads ccxt
        from bot.market.live_record import record_market
        from bot.venues.exchange import ccxt_exchange

        client = ccxt_exchange(
            exchange or settings.venue.name, None, url=exchange_url,
            testnet=testnet or settings.venue.testnet,
        )  # fmt: skip
        wanted = [s.strip() for s in symbols.split(",") if s.strip()]
        files = asyncio.run(record_market(client, wanted, seconds, out, WallClock()))
    except (ConfigError, ValueError) as exc:
        _fail(ExitCode.USAGE, str(exc))
    typer.echo(json.dumps({"files": files, "duration": duration}, sort_keys=True))
