"""Append-only audit logs in the artifact store: a record is never rewritten or removed.

Where the record goes depends on the store:
- `file://`: JSON lines in `audit/<log>.jsonl`, each appended with O_APPEND and fsync, so
  each write lands at the end whatever another writer did meanwhile.
- `s3://`: S3 has no append, and a log rewritten on each record could lose one. So each
  record is its own object, `audit/<log>/<number>.json` with an 8-digit sequence number,
  created with `If-None-Match: *`: an existing record is never replaced, and a writer that
  loses the race for a number takes the next one.
Either way `records()` gives them in the order they were written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from reports.publish import JSON, ArtifactStore, FileStore, PublishError, S3Store

RACE_ATTEMPTS: Final = 8  # writers that may take the same number at once


class AuditLogError(PublishError):
    """An audit record that could not be kept (the message says where)."""


class AuditLog(Protocol):
    @property
    def url(self) -> str: ...

    def append(self, record: Mapping[str, Any]) -> None: ...

    def records(self) -> list[dict[str, Any]]: ...


def _line(record: Mapping[str, Any]) -> str:
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
            os.write(fd, (_line(record) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


@dataclass(frozen=True, slots=True)
class S3AuditLog:
    store: S3Store
    name: str  # e.g. "audit/promotions"

    @property
    def url(self) -> str:
        return f"{self.store.url}/{self.name}/"

    def _numbers(self) -> list[int]:
        stems = (n.rsplit("/", 1)[-1].removesuffix(".json") for n in self.store.names(self.name))
        return [int(stem) for stem in stems if stem.isdigit()]

    def append(self, record: Mapping[str, Any]) -> None:
        body = _line(record).encode()
        for _ in range(RACE_ATTEMPTS):
            number = max(self._numbers(), default=0) + 1
            if self.store.create(f"{self.name}/{number:08d}.json", body, JSON):
                return
        raise AuditLogError(
            f"{self.url}: {RACE_ATTEMPTS} other writers took each next record number; "
            "the record was not written"
        )

    def records(self) -> list[dict[str, Any]]:
        return [
            json.loads(self.store.get(f"{self.name}/{number:08d}.json"))
            for number in sorted(self._numbers())
        ]


def audit_log(store: ArtifactStore, name: str) -> AuditLog:
    """The audit log `name` (e.g. "promotions") in `store`."""
    if isinstance(store, FileStore):
        return FileAuditLog(store.root.resolve() / "audit" / f"{name}.jsonl")
    if isinstance(store, S3Store):
        return S3AuditLog(store, f"audit/{name}")
    raise AuditLogError(f"no audit log for a {type(store).__name__} store")
