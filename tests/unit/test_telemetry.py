"""structlog configuration: JSON lines, run id, redaction of every secret."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from bot.profiles import load_settings
from bot.runtime.clock import FrozenClock, parse_utc
from bot.runtime.secrets import secret_values
from bot.runtime.telemetry import (
    MASK,
    LogFormat,
    SecretRedactor,
    configure_logging,
    new_run_id,
)

SECRET = "xK9-pRiVaTe-Q2"  # pragma: allowlist secret
T0 = parse_utc("2024-08-08T00:00:00Z")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_run_id_and_clock_time() -> None:
    out = io.StringIO()
    configure_logging("json", "info", run_id="run-1", clock=FrozenClock(T0), stream=out)
    structlog.get_logger("test").info("order_placed", symbol="BTCUSDT", client_order_id="c1")
    (event,) = lines(out)
    assert event == {
        "event": "order_placed",
        "symbol": "BTCUSDT",
        "client_order_id": "c1",
        "level": "info",
        "run_id": "run-1",
        "timestamp": "2024-08-08T00:00:00.000000Z",
    }


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", clock=FrozenClock(T0), stream=out)
    log = structlog.get_logger("test")
    log.info("quiet")
    log.warning("loud")
    assert [e["event"] for e in lines(out)] == ["loud"]
    with pytest.raises(ValueError, match="log level 'chatty'"):
        configure_logging("json", "chatty")


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    pipe = io.StringIO()
    configure_logging("auto", clock=FrozenClock(T0), stream=pipe)
    structlog.get_logger("t").info("hello", k=1)
    assert json.loads(pipe.getvalue())["event"] == "hello"
    tty = Tty()
    configure_logging("auto", clock=FrozenClock(T0), stream=tty)
    structlog.get_logger("t").info("hello", k=1)
    text = tty.getvalue()
    assert text.startswith("2024-08-08T00:00:00.000000Z") and "hello" in text and "k=1" in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_logged_secret_is_redacted_everywhere(fmt: LogFormat) -> None:
    out = io.StringIO()
    configure_logging(fmt, "debug", secrets=[SECRET], clock=FrozenClock(T0), stream=out)

    class Leaky:
        def __repr__(self) -> str:
            return f"Leaky({SECRET})"

    log = structlog.get_logger("test")
    log.info(
        f"connecting with {SECRET}",
        api_key=SECRET,
        nested={"a": [SECRET, 1]},
        wrapped=SecretStr("other-secret-value"),
        obj=Leaky(),
    )
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("login_failed")
    text = out.getvalue()
    assert SECRET not in text
    assert "other-secret-value" not in text
    assert text.count(MASK) >= 5
    assert "auth failed for" in text  # the traceback is kept, only the secret is masked


def test_secrets_from_settings_reach_the_redactor() -> None:
    settings = load_settings(None, overrides=[f"secrets.api_key={SECRET}"], env={})
    out = io.StringIO()
    configure_logging("json", secrets=secret_values(settings), clock=FrozenClock(T0), stream=out)
    structlog.get_logger("t").info("cfg", dump=settings.model_dump(), raw=SECRET)
    assert SECRET not in out.getvalue()


def test_redactor_masks_longest_first() -> None:
    redact = SecretRedactor(["abcd", "abcdefgh"])
    assert redact.scrub("x abcdefgh y abcd") == f"x {MASK} y {MASK}"


def test_run_id_is_deterministic_with_a_seed() -> None:
    clock = FrozenClock(T0)
    assert new_run_id(clock, 7) == new_run_id(FrozenClock(T0), 7)
    assert new_run_id(clock, 7) != new_run_id(clock, 8)
    assert new_run_id(clock, 7).startswith("20240808T000000Z-")
    assert len(new_run_id(clock, 7).split("-")[1]) == 8
    assert new_run_id(clock) != new_run_id(clock)  # unseeded: random


def test_default_stream_is_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", secrets=[SECRET], run_id="r", clock=FrozenClock(T0))
    structlog.get_logger("t").info("to_stderr", token=SECRET)
    captured = capsys.readouterr()
    assert captured.out == ""
    event = json.loads(captured.err)
    assert (event["event"], event["token"], event["run_id"]) == ("to_stderr", MASK, "r")


CONSOLE_EXCEPTION = """
import io, sys
if sys.argv[1] == "rich-first":
    import rich.console  # structlog then finds rich, as it does when nothing hides it
from bot.runtime.clock import FrozenClock, parse_utc
from bot.runtime.telemetry import configure_logging
import structlog

out = io.StringIO()
configure_logging("console", clock=FrozenClock(parse_utc("2024-08-08T00:00:00Z")), stream=out)
try:
    raise RuntimeError("boom")
except RuntimeError:
    structlog.get_logger("t").exception("failed", k=1)
print(structlog.dev.rich is not None)
print(out.getvalue())
"""


def test_a_console_traceback_reads_the_same_whether_structlog_saw_rich_or_not() -> None:
    # bot/__init__.py hides rich from structlog's import (start-up time); this is why
    # no log line changes: tracebacks are text before the console renderer
    texts = {}
    for order in ("bot-first", "rich-first"):
        done = subprocess.run([sys.executable, "-c", CONSOLE_EXCEPTION, order],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        saw_rich, text = done.stdout.split("\n", 1)
        texts[order] = (saw_rich, text)
    assert texts["bot-first"][0] == "False" and texts["rich-first"][0] == "True"
    assert texts["bot-first"][1] == texts["rich-first"][1]
    assert "Traceback (most recent call last)" in texts["bot-first"][1]
    assert "RuntimeError: boom" in texts["bot-first"][1]
