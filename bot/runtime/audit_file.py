"""An append-only audit file: JSON lines, each appended with O_APPEND and fsync, so each
write lands at the end whatever another writer did meanwhile; a line is never rewritten.
The operator's commands (bot/state_cli.py) and the promotion log in a file store
(reports/audit.py) both keep theirs this way."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def record_line(record: Mapping[str, Any]) -> str:
    return json.dumps(dict(record), sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class FileAuditLog:
    path: Path

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (record_line(record) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
