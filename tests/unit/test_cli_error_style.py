"""Click's usage errors and our own errors print in one style: a first line
`error: <message>` (lower case, no full stop), Click's usage hint below it where Click
gives one, and never Click's "Error:" or a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode
from flows.cli import main

LINE = re.compile(r"^error: [a-z0-9'/-].*[^.]$")

CASES = [
    # Click's own
    (["gate", "kpi"], ExitCode.USAGE, True),
    (["config", "show", "--sourcez"], ExitCode.USAGE, True),
    (["run", "--out", "x", "--format", "xlsx"], ExitCode.USAGE, True),
    (["no-such-command"], ExitCode.USAGE, True),
    # ours
    (["config", "show", "-p", "dmeo"], ExitCode.USAGE, False),
    (["run", "--out", "x", "--synth", "7", "--data", "y"], ExitCode.USAGE, False),
    (["kpi", "/no/such/journal"], ExitCode.DATA, False),
    (["journal", "export", "/no/such/journal", "--table", "fills"], ExitCode.DATA, False),
    (["kpi", "j", "--interval", "7x"], ExitCode.USAGE, False),
]


@pytest.mark.parametrize(("args", "code", "with_usage"), CASES)
def test_one_error_style(
    args: list[str],
    code: ExitCode,
    with_usage: bool,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert LINE.match(lines[0]), lines[0]
    assert "Error:" not in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    if with_usage:
        assert lines[1].startswith("Usage: mmbot ")
        assert lines[2].startswith("Try 'mmbot ") and lines[2].endswith(" --help' for help.")
    else:
        assert len(lines) == 1, captured.err
