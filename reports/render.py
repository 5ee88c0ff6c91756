"""Stage reports: verdicts, KPIs and charts rendered to Markdown and to one HTML file.

Reports decide nothing. Verdicts come from the gates (or from the flow that ran
them); this module only lays them out. Markdown is what Prefect shows as an
artifact; the HTML file is self-contained (inline CSS, plotly.js inlined once, the
charts' figures as inline JSON, nothing fetched) so it opens offline, from an S3 bucket
or a mail attachment alike.

Same inputs and a frozen clock (`MMBOT_FREEZE_UTC`) give identical bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from enum import Enum
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
from gates.kpi import (
    KpiError,
    compute_kpis,
    equity_curve,
    fill_edges,
    interval_ns,
    interval_series,
    load_journal,
    on_book_orders,
)
from gates.stage import policy_view
from gates.verdict import Check, Status, Verdict
from reports.charts import Chart, Frames, plotly_js, stage_charts

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
            )
            for c in data.get("checks", ())
        )
        summary = dict(data.get("summary") or {})
        parts = tuple(verdict_from_dict(p) for p in data.get("parts", ()))
        return Verdict(data["gate"], Status(data["status"]), checks, summary, parts)
    except (KeyError, ValueError) as exc:
        raise ReportError(f"verdict dict is malformed: {exc!r}") from exc


# --- formatting shared by both formats -----------------------------------------------


def fmt_value(value: Any) -> str:
    """Numbers with fixed rules so the same value always prints the same way."""
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return _fmt_float(value)
    return str(value)


def _fmt_float(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    text = f"{value:.4f}"
    # 0.8800 -> 0.88 but 0.1234 stays: two decimals at least, four at most
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


def fmt_bound(check: Check, which: str) -> str:
    """A bound with the side that is bad: '< 2.70' for a floor, '> 400' for a ceiling.

    The side is read from the order of the two bounds the gate used (a floor has
    WARN above FAIL); it labels the number, it judges nothing.
    """
    bound = check.warn if which == "warn" else check.fail
    if bound is None:
        return ""
    text = fmt_value(bound)
    if check.warn is None or check.fail is None or check.warn == check.fail:
        return text
    return f"< {text}" if check.warn > check.fail else f"> {text}"


def fmt_check_value(check: Check) -> str:
    """A check's value; 'N/A' for a check the run's mode could not measure (not 'missing',
    which is a KPI the gate needed and did not get)."""
    return Status.NA.value if check.status is Status.NA else fmt_value(check.value)


def fmt_summary(value: Any) -> str:
    """A verdict summary entry: nested mappings as 'name value, ...' in their own order."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {fmt_value(v)}" for k, v in value.items())
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
        checkvalue=fmt_check_value,
        summary=fmt_summary,
        bound=fmt_bound,
        mdcell=md_cell,
        mdstatus=md_status,
        status=_status_text,
        status_class=_status_class,
    )
    env.globals["plotly_js"] = plotly_js
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
    template = _ENV.get_template(f"{stage}.{fmt}.j2")
    text = template.render(
        ctx=ctx,
        title=STAGE_TITLES[stage],
        generated_at=iso_utc(clock.now_ns()),
        settings_rows=list(flatten(ctx.settings)),
    )
    # sections that render empty leave runs of blank lines; Markdown needs one at most
    return _BLANK_RUNS.sub("\n\n", text) if fmt == "md" else text


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


def stage_context(
    stage: str,
    settings: Settings,
    *,
    run_id: str = "",
    verdict: Verdict | None = None,
    evidence: Sequence[Verdict] = (),
    kpis: Mapping[str, Any] | None = None,
    by_symbol: Mapping[str, Mapping[str, Any]] | None = None,
    frames: Frames | None = None,
    tables: Sequence[Table] = (),
    facts: Sequence[tuple[str, str]] = (),
    links: Sequence[tuple[str, str]] = (),
) -> StageContext:
    """A context from values already computed (by the gates or by hand in a test)."""
    if stage not in STAGE_TITLES:
        raise UnknownStage(stage)
    return StageContext(
        stage=stage,
        run_id=run_id,
        verdict=verdict,
        evidence=tuple(evidence),
        kpis=dict(kpis or {}),
        by_symbol={s: dict(v) for s, v in (by_symbol or {}).items()},
        charts=stage_charts(stage, frames or Frames(), settings),
        tables=tuple(tables),
        facts=tuple(facts),
        settings=redacted_settings(settings),
        links=tuple(links),
    )


def journal_facts(journal_path: Path, role: str = "journal") -> list[tuple[str, str]]:
    """Run facts from the journal's manifest (scalars only; config is shown apart)."""
    facts = [(role, str(journal_path))]
    try:
        manifest = read_manifest(journal_path)
    except JournalError as exc:
        raise ReportError(str(exc)) from exc
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
) -> StageContext:
    """Load a journal, compute its KPIs and frames through gates, and lay them out.

    `verdict` is the stage's verdict made by its gate function
    (`gates.stage.stage_verdict`); the report shows it and never makes one, so a
    stage with a gate refuses to be built without it. KPIs and frames are the
    policy's view of the journal (`gates.stage.policy_view`: the policy's fees and
    limits), the view the verdict judged. `baseline_path` is the canary's baseline or
    the simulated run of an accuracy report. The release summary has no gate of its
    own: it shows `evidence` and an optional `verdict`.
    """
    if stage not in STAGE_TITLES:
        raise UnknownStage(stage)
    if verdict is None and stage != "release":
        raise ReportError(f"stage {stage!r}: pass the verdict its gate made (gates.stage)")
    journal_path = Path(journal_path)
    facts = journal_facts(journal_path)
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
        book=journal.table("book"),
        on_book=on_book_orders(journal),
        risk=journal.table("risk"),
        interval_ns=interval_ns(interval),
    )
    if baseline_path is not None:
        baseline_path = Path(baseline_path)
        facts += journal_facts(baseline_path, role="baseline")
        baseline = policy_view(load_journal(baseline_path), settings)
        frames = replace(frames, baseline_intervals=interval_series(baseline, interval, horizon))
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
