"""The decision box, desk numbers and the run's settings, on a real run judged by the gate.

One paper run of the demo bot on 120 s of the real BTCUSDT capture; the KPI stage
(`gates.stage.kpi_stage`) judges it under the demo policy (it FAILs on net edge, as the
demo does), and under the same policy with bounds moved around the measured values,
so that the same journal also gives a WARN and a PASS. No verdict is built by hand.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest

from bot.config import Settings
from bot.profiles import load_settings
from bot.runtime.clock import FrozenClock, parse_utc
from bot.runtime.run import RunSpec, execute
from gates.canary import canary_judge
from gates.kpi import compute_kpis, load_journal
from gates.stage import edge_decomposition, kpi_stage, policy_view
from gates.verdict import Check, Status, Verdict
from reports.decision import decision_box
from reports.numbers import fmt_kpi, fmt_quantity
from reports.render import build_context, render_report
from tests.unit import reports_helpers as h

CLOCK = FrozenClock(parse_utc("2024-08-10T12:00:00Z"))
# the demo quoter on an account at tier mm1 (the demo profile's is mm3): it loses there
MM1 = ("fees.tier=mm1",)


@pytest.fixture(scope="module")
def run(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("decision") / "demo-real"
    spec = RunSpec(mode="paper", out_dir=out, data=binance_dir, duration="120s",
                   profile="demo", overrides=MM1, progress=False)  # fmt: skip
    execute(spec)
    return out


def check(verdict: Verdict, name: str) -> Check:
    return next(c for c in verdict.checks if c.name == name)


def loosened(measured: Verdict, *names: str) -> tuple[str, ...]:
    """--set overrides that put each named KPI's bounds below (floor) or above (ceiling)
    its measured value, so that it passes."""
    out = []
    for name in names:
        c = check(measured, name)
        assert c.value is not None
        lo, hi = (
            (c.value - 10, c.value - 20) if c.direction == "min" else (c.value + 1, c.value + 2)
        )
        out += [f"gates.kpi.{name}.warn={lo}", f"gates.kpi.{name}.fail={hi}",
                f"gates.kpi.{name}.direction={c.direction}"]  # fmt: skip
    return tuple(out)


@functools.cache  # the quality suites under each verdict cost about a second of CPU
def judged(run: Path, overrides: tuple[str, ...] = ()) -> Verdict:
    policy = load_settings("demo", overrides=(*MM1, *overrides))
    return kpi_stage(load_journal(run), policy, profile="demo")


def test_a_losing_run_says_no_why_and_what_gross_edge_would_do(run: Path) -> None:
    verdict = judged(run)
    net = check(verdict, "net_bps")
    assert (verdict.status, net.status) == (Status.FAIL, Status.FAIL)
    assert net.value is not None and net.value < 0
    box = decision_box(verdict)
    assert box.answer == "no" and box.findings[0].check == "net_bps"
    finding = box.findings[0]
    assert finding.meaning == (
        f"net edge {net.value:.2f} bps per fill: the bot loses money after fees and "
        "adverse selection"
    )
    # net = gross + fee - adverse, solved for gross at the fail bound (0 on tier mm1),
    # from the KPIs as `compute_kpis` reports them (every fill has a mid 1 s later here)
    kpis = compute_kpis(policy_view(load_journal(run), load_settings("demo", overrides=MM1))).total
    assert net.detail["fills_without_mid_h"] == 0
    assert kpis["gross_bps"] + kpis["fee_bps"] - kpis["adverse_bps"] == pytest.approx(
        kpis["net_bps"], abs=1e-9
    )
    needed = 0.0 - kpis["fee_bps"] + kpis["adverse_bps"]
    assert finding.change.startswith(
        f"with a 0.50 bps rebate (tier mm1), net >= 0.00 bps needs >= {needed:.2f} bps of "
        f"captured spread (gross) at today's adverse {kpis['adverse_bps']:.2f} bps"
    )
    assert box.policy.startswith("profile demo, fee tier mm1 (maker -0.50 bps, taker 3.00 bps")
    policy = load_settings("demo", overrides=MM1)
    md = render_report("kpi-gate", run, policy, CLOCK, verdict=verdict).markdown
    assert md.index("## May this trade? **no** (❌ FAIL)") < md.index("## Gate `kpi`")
    assert finding.change in md and "Judged by profile demo, fee tier mm1" in md


def test_warnings_say_yes_with_warnings_and_name_the_bound_to_pass(run: Path) -> None:
    measured = judged(run)
    passing = loosened(measured, "net_bps", "adverse_p95_bps", "fills")
    uptime = check(measured, "quote_uptime").value
    assert uptime is not None and 0 < uptime < 0.9
    warn_uptime = (*passing, f"gates.kpi.quote_uptime.warn={uptime + 0.05}",
                   f"gates.kpi.quote_uptime.fail={uptime - 0.05}")  # fmt: skip
    verdict = judged(run, warn_uptime)
    assert verdict.status is Status.WARN, verdict.reasons
    box = decision_box(verdict)
    assert box.answer == "yes, with warnings" and box.counts == "1 check warned"
    (finding,) = box.findings
    assert finding.meaning == (
        f"quote uptime {uptime:.3f}: both quotes were on the book {uptime * 100:.0f} % of the time"
    )
    assert finding.change == f"needs quote uptime >= {uptime + 0.05:.3f}"


def test_a_floor_that_fails_names_both_bounds(run: Path) -> None:
    measured = judged(run)
    fills = check(measured, "fills").value
    assert fills is not None
    floors = (*loosened(measured, "net_bps"), f"gates.kpi.fills.warn={fills + 2000}",
              f"gates.kpi.fills.fail={fills + 1000}")  # fmt: skip
    finding = next(f for f in decision_box(judged(run, floors)).findings if f.check == "fills")
    assert finding.status is Status.FAIL
    assert finding.change == (
        f"needs >= {fills + 1000:,.0f} fills to lift the FAIL ({fills + 2000:,.0f} to pass)"
    )


def test_a_clean_run_says_yes(run: Path) -> None:
    measured = judged(run)
    flagged = [c.name for c in measured.checks if c.status is not Status.PASS]
    verdict = judged(run, loosened(measured, *flagged))
    assert verdict.status is Status.PASS, verdict.reasons
    box = decision_box(verdict)
    assert (box.answer, box.counts, box.findings) == ("yes", "every check passed", ())


def test_the_edge_table_is_the_signed_decomposition_of_net(run: Path) -> None:
    policy = load_settings("demo", overrides=MM1)
    edges = edge_decomposition(policy_view(load_journal(run), policy), policy.gates.horizon_ms)
    assert edges.gross_bps + edges.fee_bps + edges.adverse_selection_bps == pytest.approx(
        edges.net_bps, abs=1e-12
    )
    assert edges.adverse_selection_bps < 0  # adverse selection is a cost here
    md = render_report("kpi-gate", run, policy, CLOCK, verdict=judged(run)).markdown
    rows = [
        ("gross (spread captured)", edges.gross_bps),
        ("fee (a rebate is positive)", edges.fee_bps),
        ("adverse selection", edges.adverse_selection_bps),
        ("net", edges.net_bps),
    ]
    for label, value in rows:
        assert f"| {label} | {value:+.2f} |" in md


def test_the_settings_shown_are_the_runs_not_the_policys(run: Path) -> None:
    """Judged by profile base, the report still shows what the demo run used."""
    base = load_settings("base")
    assert base.run.duration != "120s"
    ctx = build_context("kpi-gate", run, base, verdict=kpi_stage(load_journal(run), base))
    assert ctx.settings["run"]["duration"] == "120s"  # the run's --duration
    assert ctx.settings_source == f"{run}/run.json, profile demo"
    md = render_report("kpi-gate", run, base, CLOCK, verdict=ctx.verdict).markdown
    assert f"Settings the run used ({run}/run.json, profile demo; secrets redacted)" in md
    assert "| run.duration | 120s |" in md and f"| run.duration | {base.run.duration} |" not in md
    assert list(ctx.settings)[:3] == ["mode", "run", "venue"]  # the schema's order


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("fills", 17_320.0, "17,320"),
        ("fills", 64.0, "64"),
        ("turnover_usd", 2_764_000.0, "2,764,000"),
        ("pnl_usd", -14.8512, "-14.85"),
        ("net_bps", -0.49798, "-0.50"),
        ("order_latency_p95_ms", 38.39, "38.4"),
        ("quote_uptime", 0.12, "0.120"),
        ("freezes", 2.0, "2"),
        ("net_bps", math.nan, "n/a"),
        ("net_bps", None, "missing"),
    ],
)
def test_numbers_print_in_their_units(name: str, value: float | None, text: str) -> None:
    assert fmt_kpi(name, value) == text


def test_counts_never_print_as_floats_in_a_report(run: Path) -> None:
    policy = load_settings("demo", overrides=MM1)
    md = render_report("kpi-gate", run, policy, CLOCK, verdict=judged(run)).markdown
    fills = int(compute_kpis(load_journal(run)).total["fills"])
    assert f"| fills | {fills:,} | count | cumulative over the run |" in md
    assert f"| fills | {fills:,} | count | < 50 | < 20 |" in md
    assert "e+0" not in md and f"fills {fills}.0" not in md
    assert fmt_quantity(1234.5, "count") == "1,234"  # half to even, as round() does


def test_a_canary_box_reads_its_own_gate_not_the_kpi_phrases() -> None:
    """The canary's net_bps is a change against the baseline: no 'loses money' here."""
    cfg = Settings().canary
    worse = canary_judge(h.interval_frame(shift=0.4), h.interval_frame(), cfg)
    box = decision_box(worse)
    assert box.answer == "no"
    score = next(f for f in box.findings if f.check == "score")
    assert score.change == (
        f"needs canary score >= {cfg.marginal_score:.2f} to lift the FAIL "
        f"({cfg.pass_score:.2f} to pass)"
    )
    net = next(f for f in box.findings if f.check == "net_bps")
    assert "loses money" not in net.meaning and net.meaning.startswith("the canary's net_bps")
    assert net.change.startswith("needs the canary's net_bps back near the baseline's median")
    same = canary_judge(h.interval_frame(), h.interval_frame(), cfg)
    assert (same.status, decision_box(same).answer) == (Status.PASS, "yes")
