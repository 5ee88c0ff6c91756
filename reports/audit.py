"""Append-only audit logs in the artifact store: a record is never rewritten or removed.

Where the record goes depends on the store:
- `file://`: JSON lines in `audit/<log>.jsonl`, each appended with O_APPEND and fsync, so
  each write lands at the end whatever another writer did meanwhile.
- `s3://`: S3 has no append, and a log rewritten on each record could lose one. So each
  record is its own object, `audit/<log>/<number>-<writer>.json`: an 8-digit sequence
  number (one more than the highest listed) and a random writer token, so two writers
  that race for a number still write two objects; and each is created with
  `If-None-Match: *`, so an existing record is never replaced (a server whose
  conditional writes are not atomic, such as moto's, cannot lose one either).
Either way `records()` gives them in the order they were written: by number, and for
records of one number (written at once by different writers) by token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bot.runtime.audit_file import FileAuditLog, record_line
from reports.publish import JSON, ArtifactStore, FileStore, PublishError, S3Store

RACE_ATTEMPTS: Final = 8  # writers that may take the same number at once


class AuditLogError(PublishError):
    """An audit record that could not be kept (the message says where)."""


class AuditLog(Protocol):
    @property
    def url(self) -> str: ...

    def append(self, record: Mapping[str, Any]) -> None: ...

    def records(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class S3AuditLog:
    store: S3Store
    name: str  # e.g. "audit/promotions"

    @property
    def url(self) -> str:
        return f"{self.store.url}/{self.name}/"

    def _keys(self) -> list[tuple[int, str]]:
        """(number, object name) of every record, in the log's order."""
        keys = []
        for name in self.store.names(self.name):
            number, _, _ = name.rsplit("/", 1)[-1].partition("-")
            if number.isdigit() and name.endswith(".json"):
                keys.append((int(number), name))
        return sorted(keys)

    def append(self, record: Mapping[str, Any]) -> None:
        body = record_line(record).encode()
        writer = uuid.uuid4().hex[:12]
        for _ in range(RACE_ATTEMPTS):
            number = max((n for n, _ in self._keys()), default=0) + 1
            if self.store.create(f"{self.name}/{number:08d}-{writer}.json", body, JSON):
                return
        raise AuditLogError(
            f"{self.url}: {RACE_ATTEMPTS} attempts found the record's name taken; "
            "the record was not written"
        )

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(self.store.get(name)) for _, name in self._keys()]


def audit_log(store: ArtifactStore, name: str) -> AuditLog:
    """The audit log `name` (e.g. "promotions") in `store`."""
    if isinstance(store, FileStore):
        return FileAuditLog(store.root.resolve() / "audit" / f"{name}.jsonl")
    if isinstance(store, S3Store):
        return S3AuditLog(store, f"audit/{name}")
    raise AuditLogError(f"no audit log for a {type(store).__name__} store")
