"""`mmbot --log-level` wins over the profile's telemetry.log_level."""

from __future__ import annotations

import io

import structlog

from bot.profiles import load_settings
from bot.runtime import telemetry


def test_command_line_level_wins_over_the_profile(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    monkeypatch.setattr(telemetry.sys, "stderr", stream)
    settings = load_settings("base", overrides=["telemetry.log_level=debug"])
    try:
        telemetry.prefer(fmt="json", level="warning")
        telemetry.configure_for(settings)
        log = structlog.get_logger("t")
        log.info("quiet_event")
        log.warning("loud_event")
        telemetry.prefer()  # a later command that said nothing: the profile decides again
        telemetry.configure_for(settings)
        structlog.get_logger("t").debug("debug_event")
    finally:
        telemetry.prefer()
    text = stream.getvalue()
    assert "loud_event" in text and "quiet_event" not in text
    assert "debug_event" in text
