"""Stage reports: verdicts, KPIs and charts rendered to Markdown and to one HTML file.

Reports decide nothing. Verdicts come from the gates (or from the flow that ran
them); this module only lays them out: a decision box on top (reports.decision, from
the verdict alone), numbers in their units (reports.numbers), the settings the run
actually used (the journal's run.json), and the policy that judged it.

Stages refuse inputs they cannot judge (`MissingInput`): `tuning` needs a sweep
table, `soak-final` the soak's iteration summaries, `release` its stage verdicts
(the file formats are in reports.inputs). Markdown is what Prefect shows as an
artifact; the HTML file is self-contained (inline CSS, inline SVG charts, no
script, no URL) so it opens from an S3 bucket or a mail attachment alike.

Same inputs and a frozen clock (`MMBOT_FREEZE_UTC`) give identical bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal

import jinja2
import pandas as pd
import structlog

from bot.config import Settings
from bot.journal import JournalError, read_manifest
from bot.profiles import redacted_dict
from bot.runtime.clock import Clock, iso_utc
from bot.runtime.secrets import secret_values as bot_secret_values
from gates.accuracy import COMPARED as ACCURACY_COMPARED
from gates.kpi import (
    KpiError,
    compute_kpis,
    equity_curve,
    fill_edges,
    interval_series,
    load_journal,
)
from gates.stage import edge_decomposition, policy_view
from gates.verdict import Check, Status, Verdict
from reports import charts
from reports.charts import Chart
from reports.decision import decision_box
from reports.numbers import KPI_MEASURES, fmt_kpi, fmt_quantity, fmt_value, unit_of

log = structlog.get_logger(__name__)

Format = Literal["md", "html"]
FORMATS: Final = ("md", "html")

STAGE_TITLES: Final[Mapping[str, str]] = {
    "shadow": "Shadow run",
    "accuracy": "Accuracy: shadow vs simulation",
    "soak-iteration": "Soak iteration",
    "soak-final": "Soak: final",
    "kpi-gate": "KPI gate",
    "tuning": "Tuning",
    "canary": "Canary vs baseline",
    "release": "Release summary",
}
STAGES: Final = tuple(STAGE_TITLES)

# Per-interval columns of gates.kpi.interval_series and the gate bound drawn on them.
INTERVAL_BOUNDS: Final[Mapping[str, str]] = {
    "net_bps": "net_bps",
    "maker_share": "maker_share",
    "order_latency_ms": "order_latency_p95_ms",
    "inventory_ratio": "inventory_ratio_p95",
}
# Manifest keys that are nested config, not run facts (the settings section shows config).
_MANIFEST_SKIP: Final = frozenset({"config", "settings"})
_MIN_SECRET_LEN: Final = 4
_TEMPLATES: Final = Path(__file__).parent / "templates"
_BLANK_RUNS: Final = re.compile(r"\n{3,}")


class ReportError(Exception):
    """A report that cannot be built or rendered; the message says which input is wrong."""


class UnknownStage(ReportError):
    def __init__(self, stage: str) -> None:
        super().__init__(f"unknown report stage {stage!r}; stages are {', '.join(STAGES)}")
        self.stage = stage


class SecretLeak(ReportError):
    """A configured secret value appeared in rendered output: nothing is written."""


# What each stage needs beyond a journal, and the input that carries it (reports.inputs).
NEEDS: Final[Mapping[str, str]] = {
    "tuning": (
        "a sweep table: a CSV with one row per candidate, a column per swept setting "
        "(dotted key, e.g. strategy.min_half_spread_bps) and a column per KPI of its run "
        "(e.g. net_bps); give it as --input sweep.csv (reports.inputs.read_sweep)"
    ),
    "soak-final": (
        "the soak's iteration summaries: JSON Lines, one object per iteration in order, "
        '{"iteration": 1, "status": "PASS", "kpis": {"net_bps": 0.4, ...}} with optional '
        '"rss_mb" and "tuning"; give it as --input iterations.jsonl '
        "(reports.inputs.read_iterations)"
    ),
    "release": (
        "the stage verdicts: a JSON object "
        '{"stages": [{"stage": "shadow", "verdict": {...} or "verdict.json", '
        '"report": "URL"}, ...]}; give it as --input stages.json (reports.inputs.read_stages)'
    ),
}
# the table key that carries a stage's own input
INPUT_TABLES: Final[Mapping[str, str]] = {"tuning": "sweep", "soak-final": "iterations"}


class MissingInput(ReportError):
    """A stage asked to report without the input it is about; says what it needs."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"report {stage!r} cannot judge a journal alone: it needs {NEEDS[stage]}")
        self.stage = stage


@dataclass(frozen=True, slots=True)
class StageEvidence:
    """One stage of a release: its verdict and where its report is."""

    stage: str
    verdict: Verdict
    report: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """A plain table a stage shows as is (tuning sweep, release stages, ...)."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @classmethod
    def from_frame(cls, key: str, title: str, frame: pd.DataFrame) -> Table:
        rows = tuple(tuple(row) for row in frame.itertuples(index=False, name=None))
        return cls(key, title, tuple(str(c) for c in frame.columns), rows)


@dataclass(frozen=True, slots=True)
class StageContext:
    """Everything one stage report shows; built by `build_context` or by hand.

    `verdict` is the stage's own gate verdict (the headline); `evidence` holds
    further verdicts shown below it (readiness, data quality, earlier stages).
    """

    stage: str
    run_id: str = ""
    verdict: Verdict | None = None
    evidence: tuple[Verdict, ...] = ()
    kpis: Mapping[str, Any] = field(default_factory=dict)
    by_symbol: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    charts: tuple[Chart, ...] = ()
    tables: tuple[Table, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()
    edge: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[StageEvidence, ...] = ()
    settings_source: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StageContext:
        """A context from plain data (e.g. JSON a flow kept); verdicts may be dicts."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ReportError(f"report context has unknown keys {unknown}; known: {sorted(known)}")
        if "stage" not in data:
            raise ReportError("report context lacks 'stage'")
        values = dict(data)
        if isinstance(values.get("verdict"), Mapping):
            values["verdict"] = verdict_from_dict(values["verdict"])
        values["evidence"] = tuple(
            verdict_from_dict(v) if isinstance(v, Mapping) else v
            for v in values.get("evidence", ())
        )
        for name in ("charts", "tables", "facts", "links"):
            values[name] = tuple(
                tuple(item) if isinstance(item, list) else item for item in values.get(name, ())
            )
        values["stages"] = tuple(
            StageEvidence(s["stage"], verdict_from_dict(s["verdict"]), s.get("report", ""))
            if isinstance(s, Mapping)
            else s
            for s in values.get("stages", ())
        )
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Report:
    stage: str
    run_id: str
    markdown: str
    html: str
    verdict: Verdict | None


def verdict_from_dict(data: Mapping[str, Any]) -> Verdict:
    """Inverse of `Verdict.to_dict()` (the status is read back, never recomputed)."""
    try:
        checks = tuple(
            Check(
                name=c["name"],
                status=Status(c["status"]),
                value=c.get("value"),
                warn=c.get("warn"),
                fail=c.get("fail"),
                reason=c.get("reason", ""),
                detail=dict(c.get("detail") or {}),
                direction=c.get("direction", ""),
            )
            for c in data.get("checks", ())
        )
        summary = dict(data.get("summary") or {})
        parts = tuple(verdict_from_dict(p) for p in data.get("parts", ()))
        return Verdict(data["gate"], Status(data["status"]), checks, summary, parts)
    except (KeyError, ValueError) as exc:
        raise ReportError(f"verdict dict is malformed: {exc!r}") from exc


# --- formatting shared by both formats -----------------------------------------------


def _check_unit(check: Check, gate: str) -> str:
    """A check's unit: the KPI's, for the KPI gate's checks (another gate's check of the
    same name, e.g. the canary's net_bps change, is not in the KPI's unit)."""
    return unit_of(check.name) if gate == "kpi" else ""


def fmt_bound(check: Check, which: str, gate: str = "") -> str:
    """A bound with the side that is bad: '< 2.70' for a floor, '> 400' for a ceiling.

    The side is the check's `direction` when the gate stated one, else it is read from
    the order of the two bounds (a floor has WARN above FAIL); it labels the number, it
    judges nothing.
    """
    bound = check.warn if which == "warn" else check.fail
    if bound is None:
        return ""
    text = fmt_quantity(bound, _check_unit(check, gate))
    if check.direction in ("min", "max"):
        return f"< {text}" if check.direction == "min" else f"> {text}"
    if check.warn is None or check.fail is None or check.warn == check.fail:
        return text
    return f"< {text}" if check.warn > check.fail else f"> {text}"


def fmt_check_value(check: Check, gate: str = "") -> str:
    """A check's value; 'N/A' for a check the run's mode could not measure (not 'missing',
    which is a KPI the gate needed and did not get)."""
    if check.status is Status.NA:
        return Status.NA.value
    if check.value is None and check.warn is None and check.fail is None:
        return "-"  # nothing to measure (a release's stage), unlike a missing KPI
    return fmt_quantity(check.value, _check_unit(check, gate))


def check_unit(check: Check, gate: str) -> str:
    return _check_unit(check, gate)


def kpi_unit(name: str) -> str:
    return unit_of(name)


def kpi_what(name: str) -> str:
    found = KPI_MEASURES.get(name)
    return found.what if found else ""


def fmt_cell(value: Any, column: str) -> str:
    """A table cell: in the column's KPI unit when the column is a KPI."""
    return fmt_kpi(column, value) if column in KPI_MEASURES else fmt_value(value)


def fmt_signed_bps(value: Any) -> str:
    """A signed contribution: '+0.68', '-1.68' (a missing one prints as such)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return fmt_value(value)
    return f"{value:+.2f}"


def column_header(column: str, whole_run: bool = False) -> str:
    """A column with its unit: 'net_bps [bps]'; in a table of whole-run values, a
    total over the run says so: 'pnl_usd [USD, cumulative]' (a table of iterations
    or sweep candidates holds each one's own figure)."""
    found = KPI_MEASURES.get(column)
    if found is None:
        return column
    cumulative = ", cumulative" if whole_run and "cumulative" in found.what else ""
    return f"{column} [{found.unit}{cumulative}]"


def fmt_summary(value: Any) -> str:
    """A verdict summary entry: nested mappings as 'name value, ...' in their own order."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {fmt_cell(v, str(k))}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value)
    return fmt_value(value)


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


_MD_STATUS: Final = {"PASS": "✅ PASS", "WARN": "⚠️ WARN", "FAIL": "❌ FAIL", "N/A": "➖ N/A"}


def md_status(status: Status | str) -> str:
    key = status.value if isinstance(status, Status) else str(status)
    return _MD_STATUS.get(key, key)


def _status_text(status: Status | str) -> str:
    return status.value if isinstance(status, Status) else str(status)


def _status_class(status: Status | str) -> str:
    """A CSS class name for a status ('N/A' -> 'na')."""
    return _status_text(status).replace("/", "").lower()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=fmt_value,
        kpi_of=fmt_kpi,
        signed_bps=fmt_signed_bps,
        kpiunit=kpi_unit,
        kpiwhat=kpi_what,
        cell=fmt_cell,
        header=column_header,
        checkunit=check_unit,
        checkvalue=fmt_check_value,
        summary=fmt_summary,
        bound=fmt_bound,
        mdcell=md_cell,
        mdstatus=md_status,
        status=_status_text,
        status_class=_status_class,
    )
    return env


_ENV: Final = _environment()


def render(stage: str, context: StageContext | Mapping[str, Any], fmt: Format, clock: Clock) -> str:
    """One stage report in one format; the only time it shows is the clock's."""
    if stage not in STAGE_TITLES:
        raise UnknownStage(stage)
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}; formats are {', '.join(FORMATS)}")
    ctx = context if isinstance(context, StageContext) else StageContext.from_mapping(context)
    if ctx.stage != stage:
        raise ReportError(f"context is for stage {ctx.stage!r}, asked to render {stage!r}")
    require_inputs(ctx.stage, ctx.tables, ctx.stages, ctx.verdict)
    template = _ENV.get_template(f"{stage}.{fmt}.j2")
    text = template.render(
        ctx=ctx,
        title=STAGE_TITLES[stage],
        generated_at=iso_utc(clock.now_ns()),
        settings_rows=list(flatten(ctx.settings)),
        box=decision_box(ctx.verdict) if ctx.verdict is not None else None,
    )
    # sections that render empty leave runs of blank lines; Markdown needs one at most
    return _BLANK_RUNS.sub("\n\n", text) if fmt == "md" else text


def require_inputs(
    stage: str, tables: Sequence[Table], stages: Sequence[StageEvidence], verdict: Verdict | None
) -> None:
    """Refuse a stage whose own input is absent (see NEEDS): a tuning report with no
    sweep, a soak-final with no iterations, a release with no stage verdicts or without
    the release verdict made of them (gates.stage.release_verdict)."""
    table = INPUT_TABLES.get(stage)
    if table is not None and not any(t.key == table and t.rows for t in tables):
        raise MissingInput(stage)
    if stage == "release" and (not stages or verdict is None):
        raise MissingInput(stage)


# --- settings without secrets ------------------------------------------------------------


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """The settings tree as plain data, secrets and URL passwords masked (bot.config)."""
    return redacted_dict(settings)


def secret_values(settings: Settings) -> list[str]:
    """The clear text of every secret configured; reports must contain none of them."""
    return sorted(v for v in bot_secret_values(settings) if len(v) >= _MIN_SECRET_LEN)


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Dotted keys and printable values, in the tree's own order."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            yield name, ", ".join(_plain(v) for v in value)
        else:
            yield name, _plain(value)


def _plain(value: Any) -> str:
    """Settings print as configured (no rounding): a reader compares them with the YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def assert_no_secret(texts: Sequence[str], secrets: Sequence[str]) -> None:
    for text in texts:
        for secret in secrets:
            if secret in text:
                raise SecretLeak("a configured secret value appears in the rendered report")


# --- context from frames (pure) and from a journal (through the gates) ------------------


@dataclass(frozen=True, slots=True)
class Frames:
    """The frames gates/kpi.py computes from a journal; any may be absent."""

    equity: pd.DataFrame | None = None
    edges: pd.DataFrame | None = None
    intervals: pd.DataFrame | None = None
    baseline_intervals: pd.DataFrame | None = None


def _interval_charts(intervals: pd.DataFrame, settings: Settings) -> list[Chart]:
    out = []
    for column, kpi in INTERVAL_BOUNDS.items():
        if column in intervals.columns:
            bound = settings.gates.kpi.get(kpi)
            warn, fail = (bound.warn, bound.fail) if bound else (None, None)
            out.append(charts.interval_chart(intervals, column, warn, fail))
    return out


def _comparison_charts(
    stage: str, intervals: pd.DataFrame, baseline: pd.DataFrame, settings: Settings
) -> list[Chart]:
    """Accuracy: shadow and sim over time; canary: distributions of its judged metrics."""
    if stage == "accuracy":
        metrics = [m for m in ACCURACY_COMPARED if m in intervals and m in baseline]
        return [charts.comparison_chart(m, intervals, baseline, ("shadow", "sim")) for m in metrics]
    metrics = [m for m in settings.canary.metrics if m in intervals and m in baseline]
    return [charts.distribution_chart(m, intervals, baseline) for m in metrics]


def stage_charts(stage: str, frames: Frames, settings: Settings) -> tuple[Chart, ...]:
    """The charts a stage shows, from whichever frames are present."""
    out: list[Chart] = []
    if frames.equity is not None:
        out.append(charts.equity_chart(frames.equity))
        if "inventory_usd" in frames.equity.columns:
            out.append(charts.inventory_chart(frames.equity, settings.risk.max_inventory_usd))
    if frames.edges is not None:
        out.append(charts.edge_chart(frames.edges))
    if frames.intervals is not None:
        out += _interval_charts(frames.intervals, settings)
        if frames.baseline_intervals is not None:
            out += _comparison_charts(stage, frames.intervals, frames.baseline_intervals, settings)
    return tuple(out)


def stage_context(
    stage: str,
    settings: Settings,
    *,
    run_id: str = "",
    verdict: Verdict | None = None,
    evidence: Sequence[Verdict] = (),
    kpis: Mapping[str, Any] | None = None,
    by_symbol: Mapping[str, Mapping[str, Any]] | None = None,
    frames: Frames = Frames(),
    tables: Sequence[Table] = (),
    facts: Sequence[tuple[str, str]] = (),
    links: Sequence[tuple[str, str]] = (),
    edge: Mapping[str, Any] | None = None,
    stages: Sequence[StageEvidence] = (),
    run_settings: Mapping[str, Any] | None = None,
    settings_source: str = "",
) -> StageContext:
    """A context from values already computed (by the gates or by hand in a test).

    `settings` is the policy (its bounds draw on the charts; its secrets are kept out
    of the output); the settings section shows `run_settings`, the settings the run
    used (run.json's, already redacted), else the policy's, redacted here.
    `edge` is `gates.stage.EdgeDecomposition.to_dict()` of the judged view; `stages`
    the release's stage verdicts and report links."""
    if stage not in STAGE_TITLES:
        raise UnknownStage(stage)
    shown = dict(run_settings) if run_settings is not None else redacted_settings(settings)
    return StageContext(
        stage=stage,
        run_id=run_id,
        verdict=verdict,
        evidence=tuple(evidence),
        kpis=dict(kpis or {}),
        by_symbol={s: dict(v) for s, v in (by_symbol or {}).items()},
        charts=stage_charts(stage, frames, settings),
        tables=tuple(tables),
        facts=tuple(facts),
        settings=shown,
        links=tuple(links),
        edge=dict(edge or {}),
        stages=tuple(stages),
        settings_source=settings_source
        or ("the run's run.json" if run_settings is not None else "the policy profile"),
    )


def _manifest(journal_path: Path) -> dict[str, Any]:
    try:
        return read_manifest(journal_path)
    except JournalError as exc:
        raise ReportError(str(exc)) from exc


def run_settings(journal_path: Path) -> tuple[Mapping[str, Any] | None, str]:
    """The settings the run used, as its run.json recorded them (redacted when written),
    and a line saying where they come from; None for a journal that recorded none."""
    manifest = _manifest(journal_path)
    settings = manifest.get("settings")
    if not isinstance(settings, Mapping):
        return None, f"the policy profile: {journal_path}/run.json records no settings"
    profile = manifest.get("profile") or "not named"
    # run.json keeps its keys sorted; a reader compares them with the schema's order
    ordered = in_order_of(settings, redacted_settings(Settings()))
    return ordered, f"{journal_path}/run.json, profile {profile}"


def in_order_of(data: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with its keys in `template`'s order (nested too), unknown keys last."""
    keys = [k for k in template if k in data] + [k for k in data if k not in template]
    out: dict[str, Any] = {}
    for key in keys:
        value, shape = data[key], template.get(key)
        if isinstance(value, Mapping) and isinstance(shape, Mapping):
            value = in_order_of(value, shape)
        out[key] = value
    return out


def journal_facts(journal_path: Path, role: str = "journal") -> list[tuple[str, str]]:
    """Run facts from the journal's manifest (scalars only; config is shown apart)."""
    facts = [(role, str(journal_path))]
    manifest = _manifest(journal_path)
    for key in sorted(manifest):
        value = manifest[key]
        if key in _MANIFEST_SKIP or isinstance(value, Mapping):
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else fmt_value(value)
        facts.append((f"{role}.{key}" if role != "journal" else key, shown))
    return facts


# The interval each stage's per-interval charts use (canary and accuracy judge on theirs).
def _interval(stage: str, settings: Settings) -> str:
    if stage == "canary":
        return settings.canary.interval
    if stage == "accuracy":
        return settings.gates.accuracy.interval
    return "1m"


def build_context(
    stage: str,
    journal_path: Path | str,
    settings: Settings,
    *,
    baseline_path: Path | str | None = None,
    run_id: str = "",
    verdict: Verdict | None = None,
    evidence: Sequence[Verdict] = (),
    tables: Sequence[Table] = (),
    links: Sequence[tuple[str, str]] = (),
    stages: Sequence[StageEvidence] = (),
) -> StageContext:
    """Load a journal, compute its KPIs and frames through gates, and lay them out.

    `verdict` is the stage's verdict made by its gate function
    (`gates.stage.stage_verdict`); the report shows it and never makes one, so a
    stage with a gate refuses to be built without it. KPIs and frames are the
    policy's view of the journal (`gates.stage.policy_view`: the policy's fees and
    limits), the view the verdict judged. `baseline_path` is the canary's baseline or
    the simulated run of an accuracy report. The release's verdict is
    `gates.stage.release_verdict` over `stages`. The settings shown are the run's
    (run.json); `settings` is the policy.
    """
    if stage not in STAGE_TITLES:
        raise UnknownStage(stage)
    require_inputs(stage, tables, stages, verdict)
    if verdict is None:
        raise ReportError(f"stage {stage!r}: pass the verdict its gate made (gates.stage)")
    journal_path = Path(journal_path)
    facts = journal_facts(journal_path)
    used, source = run_settings(journal_path)
    try:
        journal = policy_view(load_journal(journal_path), settings)
    except (JournalError, KpiError) as exc:
        raise ReportError(f"{journal_path}: {exc}") from exc
    horizon = settings.gates.horizon_ms
    kpis = compute_kpis(journal, horizon_ms=horizon)
    interval = _interval(stage, settings)
    frames = Frames(
        equity=equity_curve(journal),
        edges=fill_edges(journal, horizon),
        intervals=interval_series(journal, interval, horizon),
    )
    if baseline_path is not None:
        baseline_path = Path(baseline_path)
        facts += journal_facts(baseline_path, role="baseline")
        baseline = policy_view(load_journal(baseline_path), settings)
        frames = Frames(
            frames.equity,
            frames.edges,
            frames.intervals,
            interval_series(baseline, interval, horizon),
        )
    return stage_context(
        stage,
        settings,
        run_id=run_id,
        verdict=verdict,
        evidence=evidence,
        kpis=kpis.total,
        by_symbol=kpis.by_symbol if len(kpis.by_symbol) > 1 else {},
        frames=frames,
        tables=tables,
        facts=facts,
        links=links,
        edge=edge_decomposition(journal, horizon).to_dict(),
        stages=stages,
        run_settings=used,
        settings_source=source,
    )


def report_from_context(context: StageContext, settings: Settings, clock: Clock) -> Report:
    """Both formats of one context, refused if any configured secret shows up in them."""
    markdown = render(context.stage, context, "md", clock)
    html = render(context.stage, context, "html", clock)
    assert_no_secret((markdown, html), secret_values(settings))
    return Report(context.stage, context.run_id, markdown, html, context.verdict)


def render_report(
    stage: str,
    journal_path: Path | str,
    settings: Settings,
    clock: Clock,
    **options: Any,
) -> Report:
    """`build_context` then both formats; options are build_context's keywords."""
    context = build_context(stage, journal_path, settings, **options)
    return report_from_context(context, settings, clock)
