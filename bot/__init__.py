"""mmbot: the market-making bot. Knows nothing of Prefect, gates or reports."""

import os
import sys

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """structlog, imported with rich hidden (unless either is already loaded).

    structlog imports rich when it is installed, for its own exception formatters:
    about 65 ms of every `mmbot` start. mmbot never uses them: `format_exc_info`
    turns a traceback into text before the renderer sees it (bot/runtime/telemetry.py),
    so log lines are the same either way. rich stays importable for what does show
    it: the progress bar on a terminal, the gates' tables, Typer's help.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
# Pydantic looks for plugins in the entry points of every installed distribution
# when it builds the first model (bot/config.py, at import): ~20 ms of every start
# spent finding none. A user who runs one sets the variable (empty: all plugins).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
