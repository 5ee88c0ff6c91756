"""The inputs a stage report needs beyond a journal, as small files (until the flows
hand them over in memory, which they may do with the same types).

- tuning: a sweep table, CSV. A header row, then one row per candidate configuration.
  A column per swept setting, named by its dotted key (`strategy.min_half_spread_bps`),
  and a column per KPI of that candidate's run, named as the KPI (`net_bps`,
  `maker_share`, ...; see reports.numbers.KPI_MEASURES). At least one of each, at least
  one row, every cell a number. -> `Table("sweep", ...)`.
- soak-final: the soak's iteration summaries, JSON Lines. One object per iteration, in
  order from 1: `{"iteration": 1, "status": "PASS", "kpis": {"net_bps": 0.41, "fills":
  812}}`, with `status` the in-run gate's (PASS, WARN or FAIL), `kpis` numbers by KPI
  name, and optionally `rss_mb` (a number) and `tuning` (setting -> new value, what the
  auto-tuner applied after that iteration). -> `Table("iterations", ...)`.
- release: the stage verdicts, JSON: `{"stages": [{"stage": "shadow", "verdict": {...},
  "report": "file://.../report.html"}, ...]}`. `stage` is one of
  gates.stage.RELEASE_STAGES, each at most once; `verdict` is the stage's verdict.json
  content, or the path of that file (relative to this one); `report` (optional) is the
  URL of its report. -> `StageEvidence` per stage; the release's verdict is
  gates.stage.release_verdict over them.

Every refusal is an `InputError` naming the file, the line or row, and what is wrong.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gates.stage import RELEASE_STAGES
from gates.verdict import Status, Verdict
from reports.numbers import KPI_MEASURES
from reports.render import ReportError, StageEvidence, Table, verdict_from_dict

INPUT_STAGES: Final = ("tuning", "soak-final", "release")


class InputError(ReportError):
    """A stage input file that is not in its format; the message says where and why."""


@dataclass(frozen=True, slots=True)
class StageInput:
    """What a stage's input file gave: tables to show, and a release's stage verdicts."""

    tables: tuple[Table, ...] = ()
    stages: tuple[StageEvidence, ...] = ()

    def verdicts(self) -> dict[str, Verdict]:
        return {s.stage: s.verdict for s in self.stages}


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return value


def read_sweep(path: Path) -> Table:
    """The tuning sweep table from its CSV file (format in the module docstring)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise InputError(f"sweep {path}: cannot read: {exc}") from exc
    if not rows:
        raise InputError(f"sweep {path}: empty, expected a header row and one row per candidate")
    return sweep_table([c.strip() for c in rows[0]], rows[1:], f"sweep {path}")


def sweep_table(header: Sequence[str], rows: Sequence[Sequence[Any]], where: str) -> Table:
    """The sweep table from a header and rows of cells (CSV text or numbers): what a
    flow hands over in memory, checked as the file is. Lines count from the header's 1."""
    params = [c for c in header if "." in c]
    kpis = [c for c in header if c in KPI_MEASURES]
    other = [c for c in header if c not in params and c not in kpis]
    if not params or not kpis or other:
        raise InputError(
            f"{where}: header {list(header)}: needs a column per swept setting (dotted key) "
            f"and a column per KPI ({', '.join(KPI_MEASURES)}); "
            f"{'unknown columns ' + str(other) if other else 'one kind is missing'}"
        )
    if not rows:
        raise InputError(f"{where}: no candidate rows after the header")
    values = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InputError(f"{where} line {line}: {len(row)} cells, header has {len(header)}")
        values.append(
            tuple(_number(str(cell), f"{where} line {line} column {name}")
                  for name, cell in zip(header, row, strict=True))
        )  # fmt: skip
    return Table("sweep", "Sweep", tuple(header), tuple(values))


def _iteration(data: Any, where: str, expected: int) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: an iteration summary is a JSON object")
    missing = [k for k in ("iteration", "status", "kpis") if k not in data]
    if missing:
        raise InputError(f"{where}: missing {missing}; needs iteration, status, kpis")
    if data["iteration"] != expected:
        raise InputError(f"{where}: iteration {data['iteration']!r}, expected {expected}")
    if data["status"] not in (Status.PASS.value, Status.WARN.value, Status.FAIL.value):
        raise InputError(f"{where}: status {data['status']!r} is not PASS, WARN or FAIL")
    kpis = data["kpis"]
    if not isinstance(kpis, Mapping) or not kpis:
        raise InputError(f"{where}: kpis must be an object of KPI name -> number")
    for name, value in kpis.items():
        if name not in KPI_MEASURES:
            raise InputError(f"{where}: unknown KPI {name!r}; KPIs are {', '.join(KPI_MEASURES)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}: kpis.{name} = {value!r} is not a number")
    return dict(data)


def _iteration_row(item: Mapping[str, Any], kpis: list[str], extra: list[str]) -> tuple[Any, ...]:
    tuning = item.get("tuning") or {}
    cells: list[Any] = [item["iteration"], item["status"]]
    cells += [item["kpis"].get(k) for k in kpis]
    if "rss_mb" in extra:
        cells.append(item.get("rss_mb"))
    if "tuning" in extra:
        cells.append("; ".join(f"{k}={v}" for k, v in sorted(tuning.items())) or "-")
    return tuple(cells)


def read_iterations(path: Path) -> Table:
    """The soak's iteration summaries from their JSON Lines file (format in the module
    docstring)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"iterations {path}: cannot read: {exc}") from exc
    items: list[tuple[str, Any]] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"iterations {path} line {number}"
        try:
            items.append((where, json.loads(text)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON: {exc}") from exc
    if not items:
        raise InputError(f"iterations {path}: no iteration summary (one JSON object a line)")
    return iterations_table(items)


def iterations_table(items: Sequence[tuple[str, Any]]) -> Table:
    """The iterations table from (where, summary) pairs: a flow hands its summaries over
    in memory this way (where = e.g. "soak run-3 iteration 2"), checked as the file is."""
    if not items:
        raise InputError("iterations: no iteration summary")
    checked = [_iteration(data, where, n) for n, (where, data) in enumerate(items, start=1)]
    seen = {k for item in checked for k in item["kpis"]}
    kpis = [k for k in KPI_MEASURES if k in seen]
    extra = [k for k in ("rss_mb", "tuning") if any(k in item for item in checked)]
    rows = tuple(_iteration_row(item, kpis, extra) for item in checked)
    title = "Iterations (KPIs of each iteration alone, not cumulative)"
    return Table("iterations", title, ("iteration", "status", *kpis, *extra), rows)


def _stage_verdict(value: Any, base: Path, where: str) -> Verdict:
    if isinstance(value, str):
        file = base / value
        try:
            value = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{where}: verdict file {file}: {exc}") from exc
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: verdict is a verdict.json object or the path of one")
    try:
        return verdict_from_dict(value)
    except ReportError as exc:
        raise InputError(f"{where}: {exc}") from exc


def read_stages(path: Path) -> tuple[StageEvidence, ...]:
    """A release's stage verdicts (format in the module docstring)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"stages {path}: {exc}") from exc
    stages = data.get("stages") if isinstance(data, Mapping) else None
    if not isinstance(stages, list) or not stages:
        raise InputError(
            f'stages {path}: expected {{"stages": [{{"stage": ..., "verdict": ...}}]}}'
        )
    out: list[StageEvidence] = []
    for i, item in enumerate(stages):
        where = f"stages {path} entry {i}"
        if not isinstance(item, Mapping) or "stage" not in item or "verdict" not in item:
            raise InputError(f"{where}: needs stage and verdict")
        stage = item["stage"]
        if stage not in RELEASE_STAGES:
            raise InputError(f"{where}: unknown stage {stage!r}; stages are {list(RELEASE_STAGES)}")
        if any(s.stage == stage for s in out):
            raise InputError(f"{where}: stage {stage!r} appears twice")
        verdict = _stage_verdict(item["verdict"], path.parent, where)
        out.append(StageEvidence(stage, verdict, str(item.get("report", ""))))
    return tuple(out)


def read_stage_input(stage: str, path: Path | None) -> StageInput:
    """The input a stage needs, read from `path`; nothing for a stage that needs none.
    A stage that needs one and gets none is left to the renderer to refuse, with what
    it needs (reports.render.MissingInput)."""
    if path is None:
        return StageInput()
    if stage not in INPUT_STAGES:
        raise InputError(f"report {stage!r} takes no --input; stages that do: {INPUT_STAGES}")
    if stage == "tuning":
        return StageInput(tables=(read_sweep(path),))
    if stage == "soak-final":
        return StageInput(tables=(read_iterations(path),))
    return StageInput(stages=read_stages(path))
