"""The journal, also appended to a Redis stream (DESIGN §5: a crash loses nothing
acknowledged), and the archiver that turns the stream back into Parquet.

Each flushed row batch (one Parquet part of one table) is one stream entry, in
Arrow IPC (base64: the state client speaks text). Entry ids are chosen by the bot:
``<lease token>-<batch number>``, so they only grow (a new leader has a larger token)
and a batch written twice is refused by Redis ("equal or smaller than the top
item"): that refusal means the entry is already there. That makes the replay
idempotent, in particular after a write whose reply was lost with the connection.

When Redis cannot be reached a batch goes to the spool: one file per entry under
the spool directory, written whole (temporary name, then rename), at most
`max_spool_bytes` in all. Spooled entries are replayed in id order before any new
one (at the next batch, at the loop's polls, at the start of the next run with the
same spool), then deleted. A batch that finds the spool full is dropped from the
stream (counted and logged); the local Parquet journal still has it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
import redis
import structlog

from bot.journal import SCHEMAS
from bot.runtime.state import StateError, StateStore, StateUnavailable

log = structlog.get_logger(__name__)

MAX_SPOOL_BYTES: Final = 256 * 1024 * 1024
ARCHIVER_GROUP: Final = "archiver"
_DUPLICATE: Final = "equal or smaller"


def encode_rows(rows: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")


def decode_rows(text: str) -> pa.Table:
    return pa.ipc.open_stream(base64.b64decode(text)).read_all()


def sortable(entry_id: str) -> str:
    """'3-17' -> '000000000003-000000000017': file names in entry id order."""
    token, seq = entry_id.split("-")
    return f"{int(token):012d}-{int(seq):012d}"


def entry_id_of(name: str) -> str:
    token, seq = name.split("-")
    return f"{int(token)}-{int(seq)}"


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    fields: dict[str, str]


class JournalStream:
    """Publishes a run's row batches to the account's journal stream."""

    def __init__(
        self,
        store: StateStore,
        run_id: str,
        token: int,
        spool_dir: Path,
        max_spool_bytes: int = MAX_SPOOL_BYTES,
    ) -> None:
        self.store = store
        self.key = store.keys.key("journal")
        self.run_id = run_id
        self.token = token
        self.spool_dir = spool_dir
        self.max_spool_bytes = max_spool_bytes
        self.published = 0  # entries Redis holds (written now or found there)
        self.spooled = 0  # entries that went through the spool
        self.dropped = 0  # entries refused by a full spool
        self.redis_errors = 0
        self._seq = 0
        self.behind = False  # entries wait in the spool
        spool_dir.mkdir(parents=True, exist_ok=True)
        self.drain()  # what an earlier run left comes first

    def publish(self, table: str, part: int, rows: pa.Table) -> None:
        """One flushed batch: to the stream, or to the spool when Redis is down."""
        self._seq += 1
        entry = Entry(f"{self.token}-{self._seq}", {
            "run_id": self.run_id, "table": table, "part": str(part),
            "rows": str(rows.num_rows), "ipc": encode_rows(rows),
        })  # fmt: skip
        if self.drain() and self._send(entry):
            return
        self._spool(entry)

    def pending(self) -> list[Path]:
        return sorted(self.spool_dir.glob("*.json"))

    def drain(self) -> bool:
        """Replay the spool in id order; True when it is empty."""
        for path in self.pending():
            entry = Entry(entry_id_of(path.stem), json.loads(path.read_text()))
            if not self._send(entry):
                return False
            path.unlink()
        self.behind = False
        return True

    def _send(self, entry: Entry) -> bool:
        try:
            self.store.client.xadd(self.key, entry.fields, id=entry.entry_id)  # type: ignore[arg-type]
        except redis.ResponseError as exc:
            if _DUPLICATE not in str(exc):
                raise
            log.info("journal_entry_present", stream=self.key, entry=entry.entry_id)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.redis_errors += 1
            log.warning("journal_stream_unavailable", stream=self.key, error=str(exc))
            return False
        self.published += 1
        return True

    def _spool(self, entry: Entry) -> None:
        text = json.dumps(entry.fields, sort_keys=True)
        used = sum(p.stat().st_size for p in self.pending())
        if used + len(text) > self.max_spool_bytes:
            self.dropped += 1
            log.error("journal_spool_full", spool=str(self.spool_dir), entry=entry.entry_id,
                      table=entry.fields["table"], max_bytes=self.max_spool_bytes)  # fmt: skip
            return
        path = self.spool_dir / f"{sortable(entry.entry_id)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        self.spooled += 1
        self.behind = True

    def figures(self) -> dict[str, Any]:
        return {"published": self.published, "spooled": self.spooled,
                "dropped": self.dropped, "pending": len(self.pending())}  # fmt: skip


def archive(store: StateStore, out_dir: Path, consumer: str = "archiver-1",
            count: int = 100) -> int:  # fmt: skip
    """Everything new in the account's journal stream as Parquet parts under
    `out_dir/<run_id>/<table>/part-<entry id>.parquet`, each acknowledged once on
    disk; first the entries this consumer read but never acknowledged (it crashed).
    Returns the entries written. A part is named by its entry, so an entry delivered
    twice rewrites the same file. Archived entries are then trimmed from the stream."""
    try:
        return _archive(store, out_dir, consumer, count)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StateUnavailable(store.url, exc) from exc


def _archive(store: StateStore, out_dir: Path, consumer: str, count: int) -> int:
    client = store.client
    key = store.keys.key("journal")
    try:
        client.xgroup_create(key, ARCHIVER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    written = 0
    last = ""
    for start in ("0", ">"):  # own pending entries, then new ones
        while True:
            # RESP2's reply: [[stream, [(id, fields), ...]]] (decoded text)
            batch: Any = client.xreadgroup(ARCHIVER_GROUP, consumer, {key: start}, count=count)
            entries = batch[0][1] if batch else []
            if not entries:
                break
            for entry_id, fields in entries:
                _write_part(out_dir, entry_id, fields)
                client.xack(key, ARCHIVER_GROUP, entry_id)
                written += 1
                last = entry_id
    if written:
        _trim(store, last)
    return written


def _trim(store: StateStore, last: str) -> None:
    """Drop the archived entries up to `last` from Redis (the stream would otherwise
    hold a days-long run's journal in memory), unless some consumer of the group
    still has an entry to acknowledge: those and what follows them stay."""
    client, key = store.client, store.keys.key("journal")
    pending: Any = client.xpending(key, ARCHIVER_GROUP)
    if pending["pending"]:
        return
    token, seq = last.split("-")
    client.xtrim(key, minid=f"{token}-{int(seq) + 1}", approximate=False)


class StreamEntryError(StateError):
    """A journal stream entry the archiver cannot read: left unacknowledged."""


def _write_part(out_dir: Path, entry_id: str, fields: dict[str, str]) -> None:
    table = fields.get("table")
    if table not in SCHEMAS or not fields.get("run_id") or "ipc" not in fields:
        raise StreamEntryError(
            f"journal stream entry {entry_id} is not a journal part (table {table!r}, "
            f"fields {sorted(fields)}); it stays unacknowledged"
        )
    try:
        rows = decode_rows(fields["ipc"])
    except (ValueError, pa.ArrowException) as exc:
        raise StreamEntryError(f"journal stream entry {entry_id}: unreadable rows: {exc}") from exc
    directory = out_dir / fields["run_id"] / str(table)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{sortable(entry_id)}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(rows, tmp, compression="zstd", store_schema=False)
    os.replace(tmp, path)
