"""A sim session: one paper run cut into segments of data time, for the soak.

The soak is one continuous run of the bot: positions, open orders at the venue, the
risk engine's guards and the strategy's volatility estimate carry from one segment
to the next. Between segments the session can take new strategy parameters (the
auto-tuner's) and be checkpointed to a file; a session resumed from that file goes
on exactly where it stopped, so a soak killed mid-way repeats and loses nothing.

Each segment writes its own complete journal (the rows of that segment only), so each
iteration is judged on its own. A segment ends on a chunk boundary of the market
source (the synthetic market's chunks are 2 min of data time): the loop replays
whole chunks, and what it holds back at a chunk's end is replayed before the
segment closes, as at the end of data.

A checkpoint is a pickle of the engine, venue, books and loop (cloudpickle, which
Prefect and Dask already bring: the loop holds closures), written atomically
(temp file + rename). It is read back only by this code, from the soak's own
artifact directory: a file someone else wrote is not a checkpoint (pickle runs code).
"""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cloudpickle
import structlog

from bot.config import Settings, instruments
from bot.engine import Engine
from bot.journal import JournalWriter, partial_path
from bot.market.book import L2Book
from bot.market.clocks import estimate_offset
from bot.market.schema import MarketChunk
from bot.runtime.clock import parse_duration
from bot.runtime.run import RunSpec, journal_figures, manifest, market_source, run_id_of
from bot.runtime.sim_loop import LoopConfig, SimLoop
from bot.strategy import QuotePolicy
from bot.venues.sim import FeedFaults, build_sim_venue

log = structlog.get_logger(__name__)

CHECKPOINT_VERSION: Final = 1


class SessionError(Exception):
    """A session that cannot go on as asked (bad parameter, unreadable checkpoint)."""


class _SegmentRecorder:
    """The recorder the engine and the loop write to: forwards to the current segment's
    journal. The engine keeps a bound `append`, so the target changes here, not there."""

    def __init__(self) -> None:
        self.target: JournalWriter | None = None

    def append(self, table: str, *values: Any) -> None:
        if self.target is None:
            raise SessionError(f"journal row for {table!r} outside a segment")
        self.target.append(table, *values)

    def __getstate__(self) -> dict[str, Any]:
        return {}  # a checkpoint is taken between segments: no journal is open

    def __setstate__(self, _state: dict[str, Any]) -> None:
        self.target = None


@dataclass(frozen=True, slots=True)
class Segment:
    """What one segment did: its index, journal, data span and the engine's summary."""

    index: int
    journal: Path
    first_ts_ns: int
    last_ts_ns: int
    summary: dict[str, Any]


class SimSession:
    """A paper run advanced segment by segment (see the module docstring)."""

    def __init__(self, spec: RunSpec, settings: Settings) -> None:
        if spec.mode != "paper":
            raise SessionError(f"a session runs in paper mode, not {spec.mode!r}")
        self.spec = spec
        self.settings = settings
        self.run_id = run_id_of(spec, settings)
        self.segments_done = 0
        self.chunks_used = 0
        self.params: dict[str, float] = {}
        self._recorder = _SegmentRecorder()
        self.books = {symbol: L2Book() for symbol in settings.venue.symbols}
        insts = instruments(settings)
        seed = settings.run.seed
        self.venue = build_sim_venue(settings, insts, self.books, seed)
        self.engine = Engine(settings, self._recorder, id_prefix=f"s{seed}")
        self._loop: SimLoop | None = None  # built on the first chunk (its clock offset)
        self._chunks: Iterator[MarketChunk] | None = None
        self._pending: MarketChunk | None = None  # read, belongs to the next segment
        self.origin_ns: int | None = None

    # --- market data -------------------------------------------------------------------

    def _source(self) -> Iterator[MarketChunk]:
        """The market's chunks after those already replayed (regenerated or re-read and
        skipped on a resumed session: the source is deterministic)."""
        if self._chunks is None:
            _, chunks = market_source(self.spec, self.settings)
            self._chunks = itertools.islice(chunks, self.chunks_used, None)
        return self._chunks

    def _loop_for(self, first: MarketChunk) -> SimLoop:
        if self._loop is None:
            settings = self.settings
            feed_ns = round(settings.sim.feed_latency_ms * 1e6)
            self._loop = SimLoop(
                self.engine, self.venue, self.books, instruments(settings), self._recorder,
                LoopConfig(
                    timer_ms=settings.run.timer_ms,
                    book_sample_ms=settings.telemetry.book_sample_ms,
                    record_book=False,
                    feed_faults=FeedFaults(settings.sim.faults, settings.run.seed),
                    clock=estimate_offset(first, feed_ns),
                ),
            )  # fmt: skip
        return self._loop

    def _next_chunk(self) -> MarketChunk | None:
        pending, self._pending = self._pending, None
        if pending is not None:
            return pending
        chunk = next(self._source(), None)
        if chunk is not None:
            self.chunks_used += 1
        return chunk

    def _segment_chunks(self, until_ns: int) -> list[MarketChunk]:
        """The next chunks that start before `until_ns` (data time, at least one); the
        first that starts at or after it waits for the next segment."""
        taken: list[MarketChunk] = []
        while (chunk := self._next_chunk()) is not None:
            if not len(chunk):
                continue
            if taken and int(chunk.ts_local[0]) >= until_ns:
                self._pending = chunk
                break
            taken.append(chunk)
        return taken

    def _origin(self) -> int | None:
        """The data time the session starts at: the first row's local time."""
        if self.origin_ns is None:
            first = self._next_chunk()
            if first is not None:
                self._pending = first
                self.origin_ns = int(first.ts_local[0]) if len(first) else None
        return self.origin_ns

    # --- segments ----------------------------------------------------------------------

    def run_segment(self, length: str, journal_dir: Path) -> Segment:
        """Replay up to `origin + (n + 1) * length` of data time, n the segments done (so
        segments do not drift: each ends on the first chunk boundary at or after its
        target), into a new journal at `journal_dir`; empty once the data has ended."""
        origin = self._origin()
        until = (origin or 0) + (self.segments_done + 1) * parse_duration(length)
        chunks = self._segment_chunks(until)
        # what an interrupted attempt at this segment left is replaced: the segment is
        # replayed from the session's state, which the attempt never checkpointed
        partial = partial_path(journal_dir)
        for stale in (partial, journal_dir):
            shutil.rmtree(stale, ignore_errors=True)
        partial.mkdir(parents=True)
        storage = self.settings.storage
        writer = JournalWriter(
            partial, self._manifest(), segment_rows=storage.journal_segment_rows,
            segment_ns=storage.journal_segment_ns,
        )  # fmt: skip
        self._recorder.target = writer
        try:
            stats = self._loop_for(chunks[0]).run(chunks) if chunks else None
        finally:
            writer.flush_all()
            self._recorder.target = None
        first = int(chunks[0].ts_local[0]) if chunks else 0
        last = stats.last_ts_ns if stats else first
        writer.close({"data_span": {"first_ts_ns": first, "last_ts_ns": last},
                      "segment": self.segments_done})  # fmt: skip
        summary = {**self.engine.summary(), **journal_figures(writer.figures)}
        os.replace(partial, journal_dir)
        segment = Segment(self.segments_done, journal_dir, first, last, summary)
        self.segments_done += 1
        log.info("segment_done", run_id=self.run_id, segment=segment.index, chunks=len(chunks))
        return segment

    def _manifest(self) -> dict[str, Any]:
        data = manifest(self.run_id, self.spec, self.settings, f"session:{self.run_id}")
        data["params"] = dict(sorted(self.params.items()))
        return data

    # --- parameters --------------------------------------------------------------------

    def retune(self, updates: Mapping[str, float]) -> None:
        """New strategy parameters (`strategy.<name>` keys) from the next segment on. The
        quote policies are rebuilt; their volatility estimate and throttle carry over."""
        strategy = self.settings.strategy
        fields: dict[str, float] = {}
        for key, value in updates.items():
            section, _, name = key.partition(".")
            if section != "strategy" or name not in type(strategy).model_fields:
                raise SessionError(f"cannot retune {key!r}: only strategy.<field> keys")
            fields[name] = value
        cfg = strategy.model_copy(update=fields)
        self.settings = self.settings.model_copy(update={"strategy": cfg})
        self.params.update(updates)
        tier = self.settings.fees.tiers[self.settings.fees.tier]
        limit = self.settings.risk.max_inventory_usd
        self.engine.retune(lambda inst: QuotePolicy(cfg, inst, tier.maker_bps, limit))

    # --- checkpoints -------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_chunks"] = None  # a generator cannot be pickled: `_source` rebuilds it
        return state

    def checkpoint(self, path: Path, extra: Any = None) -> None:
        """The whole session, and `extra` (the caller's own state, e.g. the auto-tuner's),
        to `path`, atomically (temp file, then rename)."""
        data = cloudpickle.dumps(
            (CHECKPOINT_VERSION, self, extra), protocol=pickle.HIGHEST_PROTOCOL
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    @staticmethod
    def resume(path: Path) -> tuple[SimSession, Any]:
        """The session checkpointed at `path` and its `extra` (its own file only: see the
        module docstring)."""
        try:
            # bandit's B301: a checkpoint this process wrote in its own work dir, never input
            version, session, extra = pickle.loads(path.read_bytes())  # nosec B301
        except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise SessionError(f"checkpoint {path}: unreadable ({exc})") from exc
        if version != CHECKPOINT_VERSION or not isinstance(session, SimSession):
            raise SessionError(f"checkpoint {path}: not a version {CHECKPOINT_VERSION} session")
        return session, extra
