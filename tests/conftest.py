"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.runtime.run import RunResult

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MMBOT_SHARED_DATA", REPO.parent / "shared" / "data"))
BINANCE_DIR = SHARED_DATA / "real" / "binance-futures_BTCUSDT_2024-08-08"
BYBIT_OB500 = SHARED_DATA / "real" / "bybit_XRPUSDT_2024-12-01" / "2024-12-01_XRPUSDT_ob500.data"


@contextmanager
def untraced(config: pytest.Config) -> Iterator[None]:
    """Coverage's line tracer paused, for the long simulations a fixture runs (it triples
    their time): what they run is covered by the unit tests; what they prove is
    behaviour, which the trace does not change. A test body does the same with
    `@pytest.mark.no_cover` (pytest-cov's own marker)."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    if controller is None or not controller.started:
        yield
        return
    controller.pause()
    try:
        yield
    finally:
        controller.resume()


@pytest.fixture(scope="session")
def binance_dir() -> Path:
    """5.7 min of real Binance USD-M BTCUSDT in Tardis CSV layout."""
    assert BINANCE_DIR.is_dir(), f"real data missing: {BINANCE_DIR}"
    return BINANCE_DIR


@pytest.fixture(scope="session")
def bybit_ob500() -> Path:
    """50 lines of Bybit's own ob500 history format (XRPUSDT)."""
    assert BYBIT_OB500.is_file(), f"real data missing: {BYBIT_OB500}"
    return BYBIT_OB500


@pytest.fixture(scope="session")
def real_paper_run(binance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """A `paper` run (base profile) over the whole real capture: one per test process for
    the tests that only read it (a few seconds each under coverage). Copy the journal
    before changing it."""
    from bot.runtime.run import RunSpec, execute  # the root conftest stays light to import

    out = tmp_path_factory.mktemp("real-paper") / "journal"
    return execute(RunSpec(mode="paper", out_dir=out, data=binance_dir, progress=False))
