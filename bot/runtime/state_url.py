"""Which shared state store to use, and how to name it without its password.

Apart from bot/runtime/state.py so that a command line can say which store it
means without importing redis-py (a tenth of a second of every `mmbot run`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

URL_ENV: Final = "MMBOT_REDIS_URL"
EMBEDDED: Final = "embedded"
DEFAULT_STATE_DIR: Final = Path("state")
SENTINEL_SCHEME: Final = "redis+sentinel"


def redact_url(url: str) -> str:
    """`url` with its password (or a lone username, which may be a token) as ***."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    hosts = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}"))


def state_url(given: str | None, env: Mapping[str, str]) -> str:
    """The store to use: `--state URL`, else $MMBOT_REDIS_URL, else the embedded one."""
    return given or env.get(URL_ENV) or EMBEDDED
