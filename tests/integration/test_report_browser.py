"""A real run's HTML report opened in headless Chromium: the charts draw, nothing errs,
nothing is fetched.

The user's path: `mmbot run` on the real Binance capture, then `mmbot report
kpi-gate` into a file store; the report file is opened by Debian's chromium through
Playwright. `MMBOT_UPDATE_SCREENSHOT=1` also writes the README's picture,
docs/report.png, from the same page.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from gates.kpi import load_journal
from reports.charts import freeze_spans

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# the network here is closed: without these Chromium stalls on its own background calls
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
README_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "report.png"


@pytest.fixture(scope="module")
def report(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("browser")
    journal, artifacts = root / "journal", root / "artifacts"
    runner = CliRunner(env={"MMBOT_FREEZE_UTC": "2026-01-01T00:00:00Z"})
    run = runner.invoke(
        app, ["run", "--mode", "paper", "--data", str(binance_dir), "--out", str(journal)]
    )
    assert run.exit_code == 0, run.output
    made = runner.invoke(
        app, ["report", "kpi-gate", "--journal", str(journal), "--out", artifacts.as_uri()]
    )
    pages = sorted(artifacts.rglob("report.html"))
    assert len(pages) == 1, (made.exit_code, made.output)
    return {"journal": load_journal(journal), "html": pages[0]}


def _figures(html: str) -> dict[str, Any]:
    found = re.findall(r'<script type="application/json" id="figure-([^"]+)">(.*?)</script>', html)
    return {key: json.loads(text) for key, text in found}


def _length(values: Any) -> int:
    """Points in a trace's x: a list, or plotly's base64 typed array of float64."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // 8
    return len(values)


def test_the_report_carries_every_fill_and_freeze_of_the_real_run(
    report: dict[str, Any],
) -> None:
    journal = report["journal"]
    figures = _figures(report["html"].read_text())
    price = figures["price-BTCUSDT"]
    markers = [t for t in price["data"] if t["name"] in ("buy fills", "sell fills")]
    assert sum(_length(t["x"]) for t in markers) == len(journal.table("fills")) > 0
    freezes = freeze_spans(journal.table("risk"), int(journal.table("book")["ts_ns"].max()))
    assert len(price["layout"]["shapes"]) == len(freezes) > 0
    assert price["layout"]["xaxis"]["type"] == "date"


def test_chromium_draws_every_chart_offline_with_no_error(
    report: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)"
    url = report["html"].as_uri()
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            page.goto(url)
            page.wait_for_function(
                "Array.from(document.querySelectorAll('div.plot'))"
                ".every(div => div.querySelector('svg.main-svg'))",
                timeout=15_000,
            )
            drawn = page.evaluate(
                "Object.fromEntries(Array.from(document.querySelectorAll('div.plot'))"
                ".map(div => [div.id, div.querySelectorAll('svg').length]))"
            )
            # one marker path per fill in the price chart: every fill is on the page
            markers = page.locator("#chart-price-BTCUSDT .scatterlayer path.point").count()
            page.screenshot(path=str(tmp_path / "report.png"))
            if os.environ.get("MMBOT_UPDATE_SCREENSHOT") == "1":
                charts = page.locator("section:has(> h2:text-is('Charts'))").bounding_box()
                assert charts is not None
                clip = {"x": 0, "y": charts["y"], "width": 1100, "height": 1150}
                page.screenshot(path=str(README_PICTURE), clip=clip, full_page=True)
        finally:
            browser.close()
    assert requests == [url]
    assert errors == []
    assert len(drawn) >= 9 and all(count > 0 for count in drawn.values()), drawn
    assert markers == len(report["journal"].table("fills"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
