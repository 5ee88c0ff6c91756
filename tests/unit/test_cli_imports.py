"""`mmbot run` imports only what a run needs (issue 7 §7): start-up is most of a
short replay, and reports, scipy, Great Expectations, Prefect and boto3 cost
seconds. Checked in fresh interpreters, on a real replay."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import flows.script

# top-level packages a `mmbot run` process must not load: pandas neither, which
# `pa.array` on Python lists imports (the journal writer builds its arrays from numpy)
HEAVY = ("reports", "gates", "jinja2", "scipy", "great_expectations", "prefect", "boto3",
         "pandas")  # fmt: skip
NOT_ON_IMPORT = HEAVY
# modules a replay of recorded data does not need: the generator; rich and Click, which
# only a terminal's progress bar and help show (structlog would import rich, typer
# carries its own Click): ~90 ms of every start; everything of live trading (ccxt, the
# exchange venue, the local exchange server)
NOT_FOR_A_REPLAY = ("bot.market.synth", "rich", "click", "ccxt", "bot.venues.exchange",
                    "bot.venues.local_exchange")  # fmt: skip

LOADED_BY = """
import json, sys
from flows.cli import main

codes, heavy = [], []
for args in json.loads(sys.argv[1]):  # what is loaded after each command, in turn
    codes.append(main(args))
    heavy.append(sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
                 + sorted(set(sys.modules) & set(json.loads(sys.argv[3]))))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def loaded_by(*commands: list[str], cwd: Path) -> dict[str, list]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED_BY, json.dumps(commands), json.dumps(HEAVY),
         json.dumps(NOT_FOR_A_REPLAY)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, list] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_real_run_and_its_help_load_none_of_the_heavy_packages(
    tmp_path: Path, binance_dir: Path
) -> None:
    run = ["run", "--data", str(binance_dir), "--duration", "20s", "--out", "j", "--no-progress"]
    result = loaded_by(run, ["run", "--help"], cwd=tmp_path)
    # the help shows in rich: loaded then, not before
    assert result == {"codes": [0, 0], "heavy": [[], ["rich"]]}
    assert (tmp_path / "j" / "run.json").is_file()


def test_the_judging_commands_still_load_what_they_need(tmp_path: Path) -> None:
    # the other direction: the same check sees gates when a command needs them
    result = loaded_by(["kpi", "--help"], ["gate", "kpi", "--help"], cwd=tmp_path)
    assert result["codes"] == [0, 0]
    assert "gates" in result["heavy"][0]


def test_a_synthetic_run_loads_the_generator(tmp_path: Path) -> None:
    # the other direction of NOT_FOR_A_REPLAY: the check sees the module when it is used
    run = ["run", "--synth", "1", "--duration", "5s", "--out", "j", "--no-progress"]
    result = loaded_by(run, cwd=tmp_path)
    assert result == {"codes": [0], "heavy": [["bot.market.synth"]]}


def test_importing_the_cli_loads_none_of_them(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import flows.cli"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # lines: "import time: self | cumulative | <indent>module.name"
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()[1:]}
    assert "flows.cli" in modules and "bot.runtime.run" in modules
    assert not {m for m in modules if m.split(".")[0] in NOT_ON_IMPORT}


PLUGINS_SEARCHED = """
import bot.config  # builds the settings models
from pydantic.plugin import _loader

print(_loader._plugins is not None)  # None until pydantic searched the entry points
"""


def test_pydantic_searches_no_plugins_unless_the_user_asks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    searched = {}
    for value in (None, ""):  # unset: bot/__init__.py's default; empty: all plugins
        done = subprocess.run(
            [sys.executable, "-c", PLUGINS_SEARCHED], cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
            env=env if value is None else {**env, "PYDANTIC_DISABLE_PLUGINS": value},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        searched[value] = done.stdout.strip()
    assert searched == {None: "False", "": "True"}


def test_the_console_script_runs_the_cli_with_the_imports_frozen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = [ep.value for ep in entry_points(group="console_scripts") if ep.name == "mmbot"]
    assert script == ["flows.script:main"]
    monkeypatch.setattr(sys, "argv", ["mmbot", "run", "--help"])
    try:
        code = flows.script.main()
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # this test process goes on collecting as before
    assert code == 0 and "--out" in capsys.readouterr().out
    assert gc.isenabled() and frozen > 10_000  # the collector is back, the imports frozen
