"""Stages that need more than a journal: refused without their input, rendered with it.

`tuning` needs a sweep table, `soak-final` the soak's iteration summaries, `release`
its stage verdicts (formats in reports.inputs). The release's verdict is
`gates.stage.release_verdict`, and `mmbot report release` exits with its code. Every
verdict here is made by the KPI stage's gate on the hand journal of reports_helpers,
under the default policy (FAIL) and under one loosened until it PASSes or WARNs.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.profiles import load_settings
from bot.runtime.clock import FREEZE_ENV, FrozenClock, parse_utc
from gates.kpi import load_journal
from gates.stage import RELEASE_REQUIRED, StageError, kpi_stage, release_verdict
from gates.verdict import Status, Verdict
from reports.cli import report_app
from reports.inputs import (
    InputError,
    iterations_table,
    read_iterations,
    read_stage_input,
    read_stages,
    read_sweep,
    sweep_table,
)
from reports.render import MissingInput, render_report
from tests.unit import reports_helpers as h

CLOCK = FrozenClock(parse_utc(h.FROZEN))
runner = CliRunner()

# The hand journal's fills keep to these rates (reports_helpers.FEE_TIER), and its 3
# fills and 0.667 maker share pass these floors; WARN_FILLS makes its 3 fills a WARN.
HAND_TIER = ("fees.tiers.mm1.maker_bps=-0.05", "fees.tiers.mm1.taker_bps=0.55")
LOOSE = (
    *HAND_TIER,
    "gates.kpi.fills.warn=2", "gates.kpi.fills.fail=1",
    "gates.kpi.maker_share.warn=0.5", "gates.kpi.maker_share.fail=0.4",
    "gates.kpi.quote_uptime.warn=0", "gates.kpi.quote_uptime.fail=0",
    "gates.kpi.adverse_p95_bps.warn=100", "gates.kpi.adverse_p95_bps.fail=200",
    "gates.kpi.net_bps.warn=-100", "gates.kpi.net_bps.fail=-200",
    "gates.kpi.net_bps.direction=min",
)  # fmt: skip
WARN_FILLS = (*LOOSE, "gates.kpi.fills.warn=4")


@pytest.fixture(autouse=True)
def logs_to_stderr() -> Iterator[None]:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h.write_journal(tmp_path_factory.mktemp("inputs") / "run-7")


@functools.cache
def verdict_of(journal: Path, overrides: tuple[str, ...]) -> Verdict:
    return kpi_stage(load_journal(journal), load_settings("base", overrides=overrides))


def verdicts(journal: Path) -> dict[Status, Verdict]:
    found = {
        Status.FAIL: verdict_of(journal, ()),
        Status.WARN: verdict_of(journal, WARN_FILLS),
        Status.PASS: verdict_of(journal, LOOSE),
    }
    assert {s: v.status for s, v in found.items()} == {s: s for s in found}
    return found


# --- the release verdict (gates) ----------------------------------------------------------


def test_release_fails_on_a_failing_stage_warns_on_a_warning_and_passes_clean(
    journal: Path,
) -> None:
    v = verdicts(journal)
    clean = {stage: v[Status.PASS] for stage in RELEASE_REQUIRED}
    assert release_verdict(clean).status is Status.PASS
    warned = release_verdict({**clean, "canary": v[Status.WARN]})
    assert warned.status is Status.WARN
    assert warned.reasons == [f"canary: fills: {v[Status.WARN].reasons[0].split(': ', 1)[1]}"]
    failed = release_verdict({**clean, "kpi-gate": v[Status.FAIL], "canary": v[Status.WARN]})
    assert failed.status is Status.FAIL
    assert [c.name for c in failed.checks if c.status is Status.FAIL] == ["kpi-gate"]


def test_release_fails_on_a_missing_required_stage_or_on_nothing(journal: Path) -> None:
    v = verdicts(journal)
    partial = release_verdict({"shadow": v[Status.PASS], "tuning": v[Status.PASS]})
    missing = [c.name for c in partial.checks if c.status is Status.FAIL]
    assert partial.status is Status.FAIL and missing == [
        s for s in RELEASE_REQUIRED if s != "shadow"
    ]
    assert "required stage canary has no verdict" in partial.reasons[-1]
    # the optional stage alone is judged; with nothing required and nothing handed: FAIL
    assert release_verdict({"tuning": v[Status.PASS]}, required=()).status is Status.PASS
    assert release_verdict({}, required=()).reasons == ["stages: no stage verdicts"]
    with pytest.raises(StageError, match="unknown stages \\['soak'\\]"):
        release_verdict({"soak": v[Status.PASS]})


# --- refusals and inputs (reports) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "needs"),
    [
        ("tuning", "needs a sweep table: a CSV"),
        ("soak-final", "needs the soak's iteration summaries: JSON Lines"),
        ("release", "needs the stage verdicts: a JSON object"),
    ],
)
def test_a_stage_without_its_input_is_refused_with_what_it_needs(
    journal: Path, stage: str, needs: str
) -> None:
    verdict = verdict_of(journal, ())
    with pytest.raises(MissingInput, match=needs):
        render_report(stage, journal, load_settings("base"), CLOCK, verdict=verdict)


def test_a_sweep_table_is_read_and_shown(journal: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.csv"
    sweep.write_text("strategy.min_half_spread_bps,net_bps,fills\n0.5,-0.12,1320\n1.0,0.31,17320\n")
    table = read_sweep(sweep)
    assert table.columns == ("strategy.min_half_spread_bps", "net_bps", "fills")
    assert table.rows == ((0.5, -0.12, 1320.0), (1.0, 0.31, 17320.0))
    report = render_report(
        "tuning", journal, load_settings("base"), CLOCK, verdict=verdict_of(journal, ()),
        tables=[table],
    )  # fmt: skip
    assert "| strategy.min_half_spread_bps | net_bps [bps] | fills [count] |" in report.markdown
    assert "| 1.00 | 0.31 | 17,320 |" in report.markdown


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("net_bps,fills\n0.1,3\n", "needs a column per swept setting"),
        ("strategy.x,net_bps,colour\n1,2,3\n", "unknown columns \\['colour'\\]"),
        ("strategy.x,net_bps\n", "no candidate rows"),
        ("strategy.x,net_bps\n1,2\n1,abc\n", "line 3 column net_bps: 'abc' is not a number"),
        ("strategy.x,net_bps\n1\n", "line 2: 1 cells, header has 2"),
    ],
)
def test_a_bad_sweep_names_what_is_wrong(tmp_path: Path, text: str, error: str) -> None:
    sweep = tmp_path / "sweep.csv"
    sweep.write_text(text)
    with pytest.raises(InputError, match=error):
        read_sweep(sweep)


def test_iteration_summaries_are_read_in_order(tmp_path: Path) -> None:
    lines = [
        {"iteration": 1, "status": "WARN", "kpis": {"net_bps": 0.2, "fills": 812}},
        {"iteration": 2, "status": "PASS", "kpis": {"net_bps": 0.4, "fills": 17320},
         "rss_mb": 251.5, "tuning": {"strategy.min_half_spread_bps": 1.5}},
    ]  # fmt: skip
    path = tmp_path / "iterations.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    table = read_iterations(path)
    assert table.key == "iterations"
    assert table.columns == ("iteration", "status", "net_bps", "fills", "rss_mb", "tuning")
    assert table.rows[0] == (1, "WARN", 0.2, 812, None, "-")
    assert table.rows[1][-1] == "strategy.min_half_spread_bps=1.5"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"iteration": 2, "status": "PASS", "kpis": {"fills": 1}}', "iteration 2, expected 1"),
        ('{"iteration": 1, "status": "OK", "kpis": {"fills": 1}}', "status 'OK' is not PASS"),
        ('{"iteration": 1, "status": "PASS"}', "missing \\['kpis'\\]"),
        ('{"iteration": 1, "status": "PASS", "kpis": {"pnl": 1}}', "unknown KPI 'pnl'"),
        ('{"iteration": 1, "status": "PASS", "kpis": {"fills": "9"}}', "kpis.fills = '9'"),
        ("[1, 2]", "an iteration summary is a JSON object"),
        ("{", "line 1: not JSON"),
    ],
)
def test_a_bad_iteration_summary_names_its_line(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "iterations.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match=error):
        read_iterations(path)


def stages_file(tmp_path: Path, journal: Path, kpi: Verdict) -> Path:
    """Every required stage PASSes but the KPI stage, whose verdict.json is a file."""
    (tmp_path / "kpi-verdict.json").write_text(json.dumps(kpi.to_dict()))
    clean = verdict_of(journal, LOOSE).to_dict()
    stages = [
        {"stage": s, "verdict": clean, "report": f"file:///reports/{s}/report.html"}
        for s in RELEASE_REQUIRED
        if s != "kpi-gate"
    ]
    stages.insert(3, {"stage": "kpi-gate", "verdict": "kpi-verdict.json"})
    path = tmp_path / "stages.json"
    path.write_text(json.dumps({"stages": stages}))
    return path


def test_stage_verdicts_are_read_from_inline_json_or_files(journal: Path, tmp_path: Path) -> None:
    stages = read_stages(stages_file(tmp_path, journal, verdict_of(journal, ())))
    assert [s.stage for s in stages] == list(RELEASE_REQUIRED)
    assert stages[3].verdict == verdict_of(journal, ()) and stages[3].report == ""
    assert stages[0].report == "file:///reports/shadow/report.html"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"stages": []}, "expected"),
        ({"stages": [{"stage": "shadow"}]}, "entry 0: needs stage and verdict"),
        ({"stages": [{"stage": "soak", "verdict": {}}]}, "unknown stage 'soak'"),
        ({"stages": [{"stage": "shadow", "verdict": "nope.json"}]}, "verdict file"),
        ({"stages": [{"stage": "shadow", "verdict": {"gate": "kpi"}}]}, "malformed"),
    ],
)
def test_bad_stage_verdicts_are_refused(tmp_path: Path, data: object, error: str) -> None:
    path = tmp_path / "stages.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=error):
        read_stages(path)


def test_an_input_given_to_a_stage_that_takes_none_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'kpi-gate' takes no --input"):
        read_stage_input("kpi-gate", tmp_path / "x.csv")


# --- the command ----------------------------------------------------------------------------


def report(args: list[str]) -> tuple[int, str, str]:
    result = runner.invoke(report_app(), args, env={FREEZE_ENV: h.FROZEN})
    return result.exit_code, result.stdout, result.stderr


def test_release_publishes_its_verdict_and_exits_with_it(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ["release", "--journal", str(journal), "--out", out.as_uri(), "--run-id", "rel-1"]
    (tmp_path / "a").mkdir()
    failing = stages_file(tmp_path / "a", journal, verdict_of(journal, ()))
    code, stdout, _ = report([*base, "--input", str(failing)])
    assert code == ExitCode.FAIL, stdout
    published = json.loads((out / "release/rel-1/verdict.json").read_text())
    assert (published["gate"], published["status"]) == ("release", "FAIL")
    assert [c["name"] for c in published["checks"] if c["status"] == "FAIL"] == ["kpi-gate"]
    html = (out / "release/rel-1/report.html").read_text()
    assert '<a href="file:///reports/canary/report.html">' in html
    (tmp_path / "b").mkdir()
    passing = stages_file(tmp_path / "b", journal, verdict_of(journal, LOOSE))
    code, stdout, _ = report([*base, "--input", str(passing)])
    assert code == ExitCode.OK, stdout
    md = (out / "release/rel-1/report.md").read_text()
    assert md.startswith("# Release summary: ✅ PASS") and "May this trade? **yes**" in md


@pytest.mark.parametrize("stage", ["tuning", "soak-final", "release"])
def test_the_command_refuses_a_stage_without_its_input(
    journal: Path, tmp_path: Path, stage: str
) -> None:
    # the hand journal names no profile: the policy is given, so no warning comes first
    argv = [stage, "--journal", str(journal), "-p", "base", "--out", tmp_path.as_uri()]
    code, stdout, stderr = report(argv)
    assert code == ExitCode.USAGE and stdout == ""
    assert stderr.startswith(f"error: report {stage!r} cannot judge a journal alone: it needs")
    assert not any(tmp_path.rglob("*.html"))


def test_a_flow_hands_the_same_inputs_over_in_memory() -> None:
    table = sweep_table(["strategy.levels", "fills"], [[1, 20], [2, 35]], "flow sweep")
    assert table.rows == ((1.0, 20.0), (2.0, 35.0))
    with pytest.raises(InputError, match="flow sweep line 2 column fills: 'nan'"):
        sweep_table(["strategy.levels", "fills"], [[1, float("nan")]], "flow sweep")
    good = {"iteration": 1, "status": "PASS", "kpis": {"fills": 3}}
    assert iterations_table([("soak it 1", good)]).rows == ((1, "PASS", 3),)
    with pytest.raises(InputError, match="soak it 2: iteration 1, expected 2"):
        iterations_table([("soak it 1", good), ("soak it 2", good)])
