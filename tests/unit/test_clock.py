"""Clocks and time parsing: the only place that reads wall time."""

from __future__ import annotations

import pytest

from bot.runtime.clock import (
    FrozenClock,
    SimClock,
    WallClock,
    default_clock,
    iso_utc,
    parse_duration,
    parse_utc,
)


@pytest.mark.parametrize(
    ("text", "ns"),
    [("250ms", 250_000_000), ("90s", 90 * 10**9), ("30m", 1800 * 10**9), ("1.5h", 5400 * 10**9),
     ("2d", 172_800 * 10**9)],
)  # fmt: skip
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "6", "h6", "6 hours", "-1h"])
def test_bad_duration_names_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_parse_utc_and_back() -> None:
    ns = parse_utc("2024-08-08T23:54:15.319702Z")
    assert ns == 1_723_161_255_319_702_000
    assert iso_utc(ns) == "2024-08-08T23:54:15.319702Z"
    assert parse_utc("2024-08-08T00:00:00") == parse_utc("2024-08-08T00:00:00+00:00")


def test_default_clock_is_frozen_under_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBOT_FREEZE_UTC", "2026-01-02T03:04:05Z")
    clock = default_clock()
    assert isinstance(clock, FrozenClock)
    assert clock.now_ns() == parse_utc("2026-01-02T03:04:05Z") == clock.now_ns()
    monkeypatch.delenv("MMBOT_FREEZE_UTC")
    wall = default_clock()
    assert isinstance(wall, WallClock)
    assert wall.now_ns() > parse_utc("2024-01-01T00:00:00Z")


def test_sim_clock_only_moves_forward() -> None:
    clock = SimClock(100)
    clock.advance_to(200)
    clock.advance_to(150)
    assert clock.now_ns() == 200
