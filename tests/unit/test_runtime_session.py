"""The soak's sim session: segments continue one run, a checkpoint resumes it exactly,
parameters change between segments, and bad input is refused by name."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from bot.runtime.run import RunSpec, settings_for
from bot.runtime.session import SessionError, SimSession

# 6 min of the thinned synthetic book in three 2 min segments
SPEC = RunSpec(mode="paper", out_dir=Path("unused"), profile="mm3", duration="6m",
               overrides=("data.synth.book_rate_hz=250",))  # fmt: skip


def digest(journal: Path) -> str:
    parts = sorted(journal.rglob("*.parquet"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three segments run without a pause."""
    root = tmp_path_factory.mktemp("straight")
    session = SimSession(SPEC, settings_for(SPEC))
    return [session.run_segment("2m", root / f"seg{i}").journal for i in range(3)]


def test_segments_cover_the_data_without_drift(straight: list[Path]) -> None:
    from gates.kpi import load_journal

    spans = [load_journal(j).manifest["data_span"] for j in straight]
    for i, span in enumerate(spans):
        seconds = (span["last_ts_ns"] - span["first_ts_ns"]) / 1e9
        assert 100 <= seconds <= 121, (i, seconds)  # 2 min, to the last row before the next
    assert all(a["last_ts_ns"] < b["first_ts_ns"] for a, b in itertools.pairwise(spans))


def test_a_resumed_session_writes_the_same_journals(straight: list[Path], tmp_path: Path) -> None:
    session = SimSession(SPEC, settings_for(SPEC))
    session.run_segment("2m", tmp_path / "seg0")
    session.checkpoint(tmp_path / "ck", extra={"tuner": "state"})
    resumed, extra = SimSession.resume(tmp_path / "ck")
    assert extra == {"tuner": "state"}
    # a half-written attempt at segment 1 is replaced, not appended to
    (tmp_path / "seg1").mkdir()
    (tmp_path / "seg1" / "junk").write_text("left by a killed attempt")
    got = [resumed.run_segment("2m", tmp_path / f"seg{i}").journal for i in (1, 2)]
    assert [digest(j) for j in got] == [digest(j) for j in straight[1:]]
    assert not (tmp_path / "seg1" / "junk").exists()


def test_retune_changes_quotes_from_the_next_segment(straight: list[Path], tmp_path: Path) -> None:
    session = SimSession(SPEC, settings_for(SPEC))
    session.run_segment("2m", tmp_path / "seg0")
    session.retune({"strategy.min_half_spread_bps": 10.0})
    tuned = session.run_segment("2m", tmp_path / "seg1")
    assert digest(tuned.journal) != digest(straight[1])
    assert session.params == {"strategy.min_half_spread_bps": 10.0}


def test_retune_refuses_what_is_not_a_strategy_field() -> None:
    session = SimSession(SPEC, settings_for(SPEC))
    with pytest.raises(SessionError, match=r"risk\.max_inventory_usd"):
        session.retune({"risk.max_inventory_usd": 1.0})
    with pytest.raises(SessionError, match=r"strategy\.no_such"):
        session.retune({"strategy.no_such": 1.0})


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ck"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(SessionError, match="unreadable"):
        SimSession.resume(bad)


def test_only_paper_mode_runs_in_a_session() -> None:
    spec = RunSpec(mode="shadow", out_dir=Path("unused"), profile="mm3")
    with pytest.raises(SessionError, match="paper mode"):
        SimSession(spec, settings_for(spec))
