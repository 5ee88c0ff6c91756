"""The README's command-line facts against the code: the exit code table against
bot/exitcodes.py, the error example against a real error, and what its commands
write against `make clean` and .gitignore."""

from __future__ import annotations

import re
import shlex
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from bot.exitcodes import ExitCode
from bot.state_cli import DEFAULT_AUDIT_LOG, DEFAULT_STATE_DIR
from flows.cli import DEMO_OUT, main
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"### {title}\n")
    end = README.find("\n#", start + 1)
    return README[start:end]


def test_the_exit_code_table_lists_every_exit_code() -> None:
    rows = re.findall(
        r"^\| (\d+) \| `([A-Z_]+)` \| .+ \|$", _section("Errors and exit codes"), re.M
    )
    assert {name: int(code) for code, name in rows} == {m.name: m.value for m in ExitCode}
    assert len(rows) == len(ExitCode)  # each once


def test_the_exit_code_table_fails_on_a_missing_member() -> None:
    # the check above is not vacuous: a table without one member does not match
    table = _section("Errors and exit codes").replace("| 69 | `UNAVAILABLE` |", "| 69 | `GONE` |")
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \| .+ \|$", table, re.M)
    assert {name: int(code) for code, name in rows} != {m.name: m.value for m in ExitCode}


def test_the_error_example_is_what_mmbot_prints(capsys: pytest.CaptureFixture[str]) -> None:
    example = re.search(r"```\n(error: missing argument .*?)```", README, re.S)
    assert example is not None
    assert main(["gate", "kpi"]) == ExitCode.USAGE  # the console script's entry
    assert capsys.readouterr().err == example.group(1)


def _sh_commands() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [shlex.split(line) for line in lines if line.startswith(("mmbot", "make"))]


OPERATOR = (["freeze"], ["unfreeze"], ["unhalt"])


def _written_dirs() -> set[str]:
    """The top directory each README command writes under (relative paths only)."""
    dirs = set()
    for words in _sh_commands():
        for flag, value in pairwise(words):
            if flag == "--out":
                path = value.removeprefix("file://").removeprefix("./")
                if not path.startswith(("/", "..")) and not path.isupper():
                    dirs.add(Path(path).parts[0])
        if words[:2] in (["make", "demo"], ["mmbot", "demo"]) and "--out" not in words:
            dirs.add(DEMO_OUT.parts[0])
        # the shared state's defaults: the embedded Redis, the operator's audit file
        joins = words[:2] != ["mmbot", "run"] or "--account" in words or "--state" in words
        if words[1:2] in (["run"], ["status"], *OPERATOR) and joins and "--state" not in words:
            dirs.add(DEFAULT_STATE_DIR.parts[0])
        if words[1:2] in OPERATOR and "--audit-log" not in words:
            dirs.add(DEFAULT_AUDIT_LOG.parts[0])
    return dirs


def test_the_readme_commands_write_where_expected() -> None:
    # the parse finds the outputs it must (a guard against a parse that finds nothing)
    assert {"runs", "data", "artifacts", "state", "audit"} <= _written_dirs()


def test_make_clean_removes_every_directory_the_readme_commands_write() -> None:
    dry = subprocess.run(["make", "-n", "clean"], cwd=REPO, capture_output=True, text=True,
                         check=True)  # fmt: skip
    removed = set(shlex.split(dry.stdout.strip().removeprefix("rm -rf ")))
    missing = _written_dirs() - removed
    assert not missing, f"make clean leaves {sorted(missing)}"


@pytest.mark.parametrize("name", sorted({"runs", "data", "artifacts", "state", "audit"}))
def test_the_output_directories_are_git_ignored(name: str) -> None:
    done = subprocess.run(["git", "check-ignore", "-q", f"{name}/x"], cwd=REPO, check=False)
    assert done.returncode == 0, f"{name}/ is not git-ignored"


def test_a_directory_that_is_not_ignored_is_seen() -> None:
    done = subprocess.run(["git", "check-ignore", "-q", "bot/x.py"], cwd=REPO, check=False)
    assert done.returncode == 1
