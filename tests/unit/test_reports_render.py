"""Stage reports: formatting rules, self-contained HTML, contexts from journals, secrets."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import SecretsConfig, Settings, StorageConfig
from bot.runtime.clock import FrozenClock, parse_utc
from gates.canary import canary_judge
from gates.kpi import Journal, load_journal
from gates.stage import StageError, kpi_stage, release_verdict, stage_verdict
from gates.verdict import Check, Status, Verdict
from reports.charts import plotly_js
from reports.publish import FileStore, publish_report
from reports.render import (
    STAGES,
    Frames,
    MissingInput,
    ReportError,
    SecretLeak,
    StageContext,
    StageEvidence,
    Table,
    UnknownStage,
    build_context,
    fmt_bound,
    fmt_value,
    md_cell,
    render,
    render_report,
    report_from_context,
    stage_context,
    verdict_from_dict,
)
from tests.unit import gates_helpers as gh
from tests.unit import reports_helpers as h

CLOCK = FrozenClock(parse_utc(h.FROZEN))
API_SECRET = "SEKRET-api-9f3a7c"  # pragma: allowlist secret
S3_SECRET = "SEKRET-s3-41d2e8"  # pragma: allowlist secret
REDIS_PASSWORD = "SEKRETredispw77"  # pragma: allowlist secret


@functools.cache
def kpi_verdict() -> Verdict:
    """The KPI stage's verdict of the hand journal (tests/unit/gates_helpers), by the gate."""
    return kpi_stage(Journal.of(gh.memory_tables(), gh.MANIFEST), Settings())


@functools.cache
def canary_verdict() -> Verdict:
    return canary_judge(h.interval_frame(shift=0.4), h.interval_frame(), Settings().canary)


def full_context(stage: str, settings: Settings | None = None) -> StageContext:
    """Every section filled, so each template path runs; the verdicts are the gates'."""
    stages = [StageEvidence("kpi-gate", kpi_verdict(), "file:///tmp/kpi/report.html")]
    release = stage == "release"
    return stage_context(
        stage,
        settings or Settings(),
        run_id="r-1",
        verdict=release_verdict({"kpi-gate": kpi_verdict()}) if release else kpi_verdict(),
        evidence=[canary_verdict()],
        kpis=h.KPIS,
        by_symbol={"BTCUSDT": {"net_bps": 3.1}, "ETHUSDT": {"net_bps": 2.9}},
        frames=Frames(
            h.equity_frame(), h.edges_frame(), h.interval_frame(), h.interval_frame(shift=0.3)
        ),
        tables=[
            Table("sweep", "Sweep", ("strategy.spread", "net_bps"), ((1.0, 2.5), (1.5, 3.1))),
            Table("iterations", "Iterations", ("iteration", "status"), ((1, "PASS"),)),
        ],
        facts=[("mode", "paper")],
        links=[("html", "file:///tmp/a/report.html")],
        stages=stages if release else (),
    )


# --- formatting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "missing"),
        (math.nan, "n/a"),
        (True, "yes"),
        (240, "240"),
        (17_320, "17,320"),
        (0.0, "0"),
        (0.88, "0.88"),
        (0.1234, "0.1234"),
        (0.12344, "0.1234"),
        (3.14159, "3.14"),
        (-2.5, "-2.50"),
        (350.0, "350.0"),
        (144_000.0, "144,000"),
        (Status.WARN, "WARN"),
    ],
)
def test_values_print_by_fixed_rules(value: object, text: str) -> None:
    assert fmt_value(value) == text


def test_bounds_show_the_bad_side_without_judging() -> None:
    floor = Check("net_bps", Status.PASS, 3.0, 2.7, 2.0)
    ceiling = Check("order_latency_p95_ms", Status.PASS, 3.0, 350.0, 400.0)
    assert (fmt_bound(floor, "warn"), fmt_bound(floor, "fail")) == ("< 2.70", "< 2.00")
    assert (fmt_bound(ceiling, "warn"), fmt_bound(ceiling, "fail")) == ("> 350.0", "> 400.0")
    assert fmt_bound(Check("x", Status.PASS, 1.0), "warn") == ""


def test_markdown_cells_escape_pipes_and_newlines() -> None:
    assert md_cell("a|b\nc") == "a\\|b c"


# --- rendering -------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_renders_self_contained_html(stage: str) -> None:
    ctx = full_context(stage)
    html = render(stage, ctx, "html", CLOCK)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # plotly.js is inlined once; outside it the file names no URL and loads nothing
    assert html.count(plotly_js()) == 1
    ours = html.replace(plotly_js(), "")
    assert not re.search(r"https?://", ours)
    assert ours.index('id="decision"') < ours.index("<h2>Gate")
    assert not re.search(r"<link|<iframe|<img|@import|url\(", ours, re.I)
    # the only link: a release's stage report, given as an input
    links = re.findall(r"\s(?:src|href)\s*=\s*\"([^\"]*)\"", ours, re.I)
    assert links == (["file:///tmp/kpi/report.html"] if stage == "release" else [])
    assert ours.count('<div class="plot"') == len(ctx.charts) >= 9
    assert ours.count("<script") == len(ctx.charts) + 2  # bundle, figures, one bootstrap
    assert "2024-08-10T12:00:00.000000Z" in html
    assert "order_latency_p95_ms" in html and "May this trade?" in html


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_renders_markdown_tables(stage: str) -> None:
    md = render(stage, full_context(stage), "md", CLOCK)
    assert "| check | value | unit | WARN bound | FAIL bound | status | reason |" in md
    # the hand journal's 4 fills, a count, against the default floors (gates_helpers)
    if stage == "release":  # one check per stage, the stage's status and reasons
        assert "| kpi-gate | - |  |  |  | ❌ FAIL | adverse_p95_bps: " in md
        assert "| shadow | - |  |  |  | ❌ FAIL | required stage shadow has no verdict" in md
    else:
        assert "| fills | 4 | count | < 50 | < 20 | ❌ FAIL | 4 < fail bound 20 |" in md
    assert "## May this trade? **no** (❌ FAIL)" in md
    assert "\n\n\n" not in md and "<script" not in md


def test_html_escapes_text_from_the_inputs() -> None:
    verdict = Verdict.of("kpi", [Check("x", Status.FAIL, None, reason="<b>bad</b> & worse")])
    html = render("kpi-gate", stage_context("kpi-gate", Settings(), verdict=verdict), "html", CLOCK)
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in html and "<b>bad</b>" not in html


def test_the_headline_is_the_gates_status_not_recomputed() -> None:
    # a verdict whose status disagrees with its checks is shown as the gate said
    odd = Verdict("kpi", Status.WARN, (Check("x", Status.FAIL, 1.0, reason="r"),))
    md = render("kpi-gate", stage_context("kpi-gate", Settings(), verdict=odd), "md", CLOCK)
    assert md.startswith("# KPI gate: ⚠️ WARN\n")


def test_a_mapping_context_with_verdict_dicts_renders_like_the_object() -> None:
    ctx = full_context("canary")
    data = {
        "stage": "canary",
        "run_id": ctx.run_id,
        "verdict": ctx.verdict.to_dict(),  # type: ignore[union-attr]
        "evidence": [v.to_dict() for v in ctx.evidence],
        "kpis": ctx.kpis,
        "by_symbol": ctx.by_symbol,
        "charts": list(ctx.charts),
        "tables": list(ctx.tables),
        "facts": [list(f) for f in ctx.facts],
        "settings": ctx.settings,
        "links": [list(x) for x in ctx.links],
        "settings_source": ctx.settings_source,
    }
    assert render("canary", data, "md", CLOCK) == render("canary", ctx, "md", CLOCK)
    assert render("canary", data, "html", CLOCK) == render("canary", ctx, "html", CLOCK)
    assert verdict_from_dict(kpi_verdict().to_dict()) == kpi_verdict()


def test_bad_requests_are_typed_errors() -> None:
    with pytest.raises(UnknownStage, match=r"'soak'.*stages are shadow"):
        render("soak", {"stage": "soak"}, "md", CLOCK)
    with pytest.raises(ReportError, match="format 'pdf'"):
        render("canary", {"stage": "canary"}, "pdf", CLOCK)  # type: ignore[arg-type]
    with pytest.raises(ReportError, match="unknown keys \\['verdicts'\\]"):
        render("canary", {"stage": "canary", "verdicts": []}, "md", CLOCK)
    with pytest.raises(ReportError, match="for stage 'canary', asked to render 'shadow'"):
        render("shadow", {"stage": "canary"}, "md", CLOCK)
    with pytest.raises(ReportError, match="malformed"):
        verdict_from_dict({"gate": "kpi", "status": "MAYBE"})


# --- from a journal, through the gates ------------------------------------------------


@pytest.fixture()
def journal(tmp_path: Path) -> Path:
    return h.write_journal(tmp_path / "run-a")


def judged(journal: Path, settings: Settings | None = None) -> Verdict:
    """The verdict the KPI stage's gate function makes: what a report is handed."""
    return kpi_stage(load_journal(journal), settings or Settings())


def test_kpi_gate_context_from_a_journal(journal: Path) -> None:
    ctx = build_context("kpi-gate", journal, Settings(), run_id="run-a", verdict=judged(journal))
    assert ctx.verdict is not None and ctx.verdict.gate == "kpi"
    maker = next(c for c in ctx.verdict.checks if c.name == "maker_share")
    # 1200.00 maker of 1800.005 notional (reports_helpers) is below the 0.85 FAIL bound
    assert maker.value == pytest.approx(h.MAKER_SHARE) and maker.status is Status.FAIL
    assert ctx.kpis["fills"] == 3
    assert ("mode", "paper") in ctx.facts and ("journal", str(journal)) in ctx.facts
    keys = [c.key for c in ctx.charts]
    assert keys[:4] == ["price-BTCUSDT", "equity", "inventory", "edges"]
    assert "interval-net_bps" in keys


def test_a_report_never_makes_the_verdict_it_shows(tmp_path: Path) -> None:
    canary = h.write_journal(tmp_path / "canary", mode="canary")
    baseline = h.write_journal(tmp_path / "baseline", mode="live")
    for stage in ("canary", "kpi-gate", "shadow", "accuracy"):
        with pytest.raises(ReportError, match="pass the verdict its gate made"):
            build_context(stage, canary, Settings(), baseline_path=baseline)
    with pytest.raises(StageError, match="compares two journals"):
        stage_verdict("canary", load_journal(canary), Settings())
    verdict = stage_verdict("canary", load_journal(canary), Settings(), load_journal(baseline))
    shown = build_context("canary", canary, Settings(), baseline_path=baseline, verdict=verdict)
    assert shown.verdict is verdict and verdict.gate == "canary"
    assert "intervals: too few intervals (4 < 24)" in verdict.reasons  # 0-180 s: 4 minutes
    given = build_context(
        "canary", canary, Settings(), baseline_path=baseline, verdict=canary_verdict()
    )
    assert given.verdict == canary_verdict()
    assert ("baseline.mode", "live") in given.facts
    assert any(c.key == "dist-net_bps" for c in given.charts)


def test_accuracy_runs_the_gate_on_shadow_vs_sim(tmp_path: Path) -> None:
    shadow = h.write_journal(tmp_path / "shadow", mode="shadow")
    sim = h.write_journal(tmp_path / "sim", mode="paper")
    verdict = stage_verdict("accuracy", load_journal(shadow), Settings(), load_journal(sim))
    report = render_report(
        "accuracy", shadow, Settings(), CLOCK, baseline_path=sim, verdict=verdict
    )
    # 3 minutes of data: one 5-minute interval, far below min_windows (24)
    assert report.verdict is not None and report.verdict.gate == "accuracy"
    assert report.verdict.status is Status.FAIL
    assert "insufficient data" in report.markdown
    assert 'id="chart-compare-net_bps"' in report.html


def test_release_needs_its_stage_verdicts(journal: Path) -> None:
    with pytest.raises(MissingInput, match="needs the stage verdicts"):
        build_context("release", journal, Settings(), evidence=[kpi_verdict()])
    stages = [StageEvidence("kpi-gate", kpi_verdict())]
    with pytest.raises(MissingInput, match="needs the stage verdicts"):
        build_context("release", journal, Settings(), stages=stages)  # and their verdict
    verdict = release_verdict({s.stage: s.verdict for s in stages})
    ctx = build_context("release", journal, Settings(), verdict=verdict, stages=stages)
    assert ctx.verdict is verdict and ctx.stages == tuple(stages)


def test_same_journal_and_frozen_clock_give_identical_bytes(journal: Path) -> None:
    a = render_report("kpi-gate", journal, Settings(), CLOCK, run_id="x", verdict=judged(journal))
    b = render_report("kpi-gate", journal, Settings(), CLOCK, run_id="x", verdict=judged(journal))
    assert (a.markdown, a.html) == (b.markdown, b.html)
    assert a.verdict is not None and a.verdict.status is Status.FAIL


def test_a_journal_that_is_not_one_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not a journal directory"):
        build_context("shadow", tmp_path, Settings(), verdict=kpi_verdict())


# --- no secret anywhere -------------------------------------------------------------


def secret_settings() -> Settings:
    return Settings(
        secrets=SecretsConfig(
            provider="env",
            api_key=SecretStr(API_SECRET),
            api_secret=SecretStr(API_SECRET + "x"),
            s3_access_key_id=SecretStr("AKIASEKRETKEYID00001"),
            s3_secret_access_key=SecretStr(S3_SECRET),
        ),
        storage=StorageConfig(redis_url=f"redis://mmbot:{REDIS_PASSWORD}@127.0.0.1:6379/0"),
    )


def test_no_secret_in_any_stage_format_or_published_byte(journal: Path, tmp_path: Path) -> None:
    settings = secret_settings()
    store = FileStore(tmp_path / "artifacts")
    for stage in STAGES:
        context = full_context(stage, settings)
        publish_report(report_from_context(context, settings, CLOCK), store, "run-1")
    report = render_report(
        "kpi-gate", journal, settings, CLOCK, run_id="from-journal", verdict=judged(journal)
    )
    publish_report(report, store, "run-2")
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert len(files) == 3 * len(STAGES) + 3
    # pragma: allowlist nextline secret
    secrets = [API_SECRET, S3_SECRET, REDIS_PASSWORD, "AKIASEKRETKEYID00001"]
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret} leaked into {path}"
    assert (
        b"s3_secret_access_key" in (tmp_path / "artifacts/kpi-gate/run-2/report.html").read_bytes()
    )


def test_a_secret_that_reaches_the_output_stops_the_report() -> None:
    settings = secret_settings()
    leaky = stage_context("shadow", settings, facts=[("note", f"key={API_SECRET}")])
    with pytest.raises(SecretLeak):
        report_from_context(leaky, settings, CLOCK)
