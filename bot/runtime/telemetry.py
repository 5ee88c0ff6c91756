"""Logging: structlog key-value events to stderr, one run id, no secret ever printed.

`configure_logging` is called once by each entry point (CLI command, flow, live
loop). Redaction happens twice: on the event dict before rendering (every secret
value and every SecretStr, at any depth), and on the rendered line (for values
that only became text inside the renderer, e.g. an object's repr).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import uuid
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, Literal, TextIO, cast

import structlog
from pydantic import SecretStr

from bot.config import Settings
from bot.runtime.clock import Clock, default_clock, iso_utc
from bot.runtime.secrets import secret_values

MASK: Final = "**********"
LogFormat = Literal["auto", "json", "console"]
_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class SecretRedactor:
    """A structlog processor: replaces secret values and SecretStr anywhere in an
    event (keys' values, nested containers, the message) or in a rendered line."""

    def __init__(self, secrets: Iterable[str | SecretStr] = ()) -> None:
        values = {s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets}
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted((v for v in values if v), key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, SecretStr):
            return MASK
        if isinstance(value, str):
            return self._scrub_text(value)
        if isinstance(value, Mapping):
            return {key: self.scrub(child) for key, child in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(child) for child in value]
        return value

    def _scrub_text(self, text: str) -> str:
        for secret in self._values:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __call__(self, logger: Any, method: str, event: Any) -> Any:
        if isinstance(event, Mapping):
            return {key: self.scrub(value) for key, value in event.items()}
        if isinstance(event, str):
            return self._scrub_text(event)
        if isinstance(event, bytes):
            return self._scrub_text(event.decode("utf-8", "replace")).encode("utf-8")
        return event


class _ClockStamper:
    """ISO-8601 UTC timestamps from the injected clock (frozen in tests and goldens)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event["timestamp"] = iso_utc(self._clock.now_ns())
        return event


def _use_json(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (callable(isatty) and isatty())
    return fmt == "json"


def _logger_factory(stream: TextIO | None) -> Any:
    if stream is not None:
        return structlog.PrintLoggerFactory(file=stream)
    # sys.stderr is looked up per logger: test runners and daemonizers swap it.
    return lambda *_: structlog.PrintLogger(sys.stderr)


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "info",
    secrets: Iterable[str | SecretStr] = (),
    run_id: str | None = None,
    *,
    clock: Clock | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for this process: JSON lines when `fmt` is json or stderr is
    not a terminal, a console renderer in a terminal. Binds `run_id` for every event
    logged afterwards in this context. Calling it again replaces the configuration."""
    if level not in _LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(_LEVELS)}")
    out = stream if stream is not None else sys.stderr
    redact = SecretRedactor(secrets)
    as_json = _use_json(fmt, out)
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False, sort_keys=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _ClockStamper(clock if clock is not None else default_clock()),
            structlog.processors.StackInfoRenderer(),
            # Tracebacks become text here so that the redactor sees them too.
            structlog.processors.format_exc_info,
            redact,
            renderer,
            redact,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=_logger_factory(stream),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    if run_id is not None:
        structlog.contextvars.bind_contextvars(run_id=run_id)


def new_run_id(clock: Clock, seed: int | None = None) -> str:
    """'20240808T000000Z-3f2a9c1e': the clock's instant plus 8 hex digits, a hash of
    (instant, seed) when seeded so that a replayed run gets the same id, random
    only when there is no seed."""
    ts_ns = clock.now_ns()
    stamp = iso_utc(ts_ns)  # 2024-08-08T00:00:00.000000Z
    compact = stamp[:19].replace("-", "").replace(":", "") + "Z"
    if seed is None:
        suffix = uuid.uuid4().hex[:8]
    else:
        suffix = hashlib.sha256(f"{ts_ns}:{seed}".encode()).hexdigest()[:8]
    return f"{compact}-{suffix}"


_COMMAND_LINE: dict[str, str] = {}


def prefer(fmt: str | None = None, level: str | None = None) -> None:
    """What the command line said (`mmbot --log-level ...`) wins over any profile."""
    _COMMAND_LINE.clear()
    _COMMAND_LINE.update({k: v for k, v in (("fmt", fmt), ("level", level)) if v is not None})


def level_given() -> bool:
    """Whether the command line named a log level (`--log-level`, $MMBOT_LOG_LEVEL)."""
    return "level" in _COMMAND_LINE


def log_format_for(settings: Settings) -> LogFormat:
    """The log format in force: the command line's, else the settings'."""
    return cast(LogFormat, _COMMAND_LINE.get("fmt", settings.telemetry.log_format))


def configure_for(settings: Settings, run_id: str | None = None) -> None:
    """Logging as the settings say (unless the command line said otherwise), redacting
    every secret those settings can see."""
    configure_logging(
        log_format_for(settings),
        _COMMAND_LINE.get("level", settings.telemetry.log_level),
        secrets=secret_values(settings),
        run_id=run_id,
    )
