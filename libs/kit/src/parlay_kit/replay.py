"""`parlay replay`: rebuild a projection from the log beside the live one; verify; swap.

    parlay replay --list
    parlay replay profile.customers                 rebuild into profile__rebuild_customers
    parlay replay profile.customers --resume        continue an interrupted rebuild
    parlay replay profile.customers --verify        ... then compare with the live read models
    parlay replay profile.customers --swap          ... then make the rebuilt tables live
    parlay replay --service conversation            every projection of a service
    parlay replay gateway.normalizer                re-normalize the raw webhooks (reprocess)

How a rebuild runs (kind "readmodel")
    A fresh schema `<live schema>__rebuild_<name>` gets the service's read-model migrations and
    the bookkeeping tables (replay_runs, replay_progress, replay_errors,
    replay_deferred_indexes). The projection's
    topics are read with `assign()` — no consumer group, nothing the live consumers notice —
    from the beginning (or the stored offsets with --resume) to the end offsets seen at start,
    then once more to whatever arrived meanwhile. Records are decoded (with upcasting) in one
    task while the previous batch is written in another; each batch is ONE transaction that
    applies the handler's set-based `handle_batch` and stores the next offsets, so an
    interrupted rebuild resumes exactly where its last commit left it. A batch that fails is
    re-applied event by event in savepoints; the events that keep failing are recorded in
    replay_errors (as the live projector would dead-letter them) and reported. With
    `Projection.defer_secondary_indexes`, the tables' secondary indexes are dropped after the
    migrations (definitions kept in replay_deferred_indexes) and built once the log is read.

Verify
    For every read-model table of the projection: row count and md5 over the md5s of its rows
    (sorted, so physical order does not matter), in the live and the rebuilt schema, on the
    columns they share minus the projection's `ignore_columns` (wall-clock bookkeeping). Any
    difference is reported with sample rows from each side (`EXCEPT ALL`). It also reports
    events the live service has stored but its relay has not published yet (the rebuild cannot
    have seen them).

Swap (the procedure: stop the service's projectors, swap, start them)
    In ONE transaction: lock the live tables, move them to `<live>__old_<timestamp>` (kept for a
    rollback: move them back the same way), move the rebuilt tables into the live schema, record
    the read-model migrations as applied there, drop the rebuild schema. Refused when the live
    relay has unpublished events or new records arrived since the rebuild caught up (--force
    overrides). The service's consumer offsets and its event store are untouched.

Reprocess (kind "reprocess", e.g. gateway.normalizer)
    The handler runs over the log against the live schema; what it emits is appended to the
    live event store in the same transaction as the replay's progress, and the store skips event
    ids it already holds — so a fixed parser adds exactly the events a buggy one missed. The
    relay then publishes them as usual.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import typer
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import upcasting
from parlay_kit.analytics.decode import PayloadDecoder
from parlay_kit.analytics.logreader import (
    PartitionRange,
    end_offsets,
    make_consumer,
    read_ranges,
    resolve_ranges,
    topic_partitions,
)
from parlay_kit.analytics.registry import Projection, Registry, discover
from parlay_kit.db import check_identifier, migrate
from parlay_kit.eventstore import EventStore
from parlay_kit.kafka import fetch_cluster_id
from parlay_kit.projector import ConsumedEvent, Handler, UnitOfWork
from parlay_kit.telemetry import traceparent_from_headers

__all__ = ["Projection", "Replayer", "ReplayStats", "VerifyReport", "replay_command"]

BOOKKEEPING_SQL = """
CREATE TABLE IF NOT EXISTS {s}.replay_runs (
    projection   text PRIMARY KEY,
    live_schema  text        NOT NULL,
    topics       text[]      NOT NULL,
    cluster_id   text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    events       bigint      NOT NULL DEFAULT 0,
    status       text        NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS {s}.replay_progress (
    projection  text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
CREATE TABLE IF NOT EXISTS {s}.replay_deferred_indexes (
    projection  text NOT NULL,
    index_name  text NOT NULL,
    definition  text NOT NULL,
    PRIMARY KEY (projection, index_name)
);
CREATE TABLE IF NOT EXISTS {s}.replay_errors (
    projection text    NOT NULL,
    topic      text    NOT NULL,
    partition  integer NOT NULL,
    "offset"   bigint  NOT NULL,
    event_id   text    NOT NULL,
    event_type text    NOT NULL,
    error      text    NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
"""

MAX_IDENTIFIER = 63


class ReplayError(RuntimeError):
    """A replay cannot start, resume, verify or swap; the message says why and what to do."""


def work_schema_for(projection: Projection, live_schema: str) -> str:
    suffix = "__rebuild_" if projection.kind == "readmodel" else "__replay_"
    name = f"{live_schema}{suffix}{projection.local_name}"
    if len(name) > MAX_IDENTIFIER:
        raise ReplayError(f"schema name {name!r} is longer than {MAX_IDENTIFIER} characters")
    return check_identifier(name)


@dataclass
class ReplayStats:
    projection: str
    work_schema: str
    events: int = 0
    records: int = 0
    skipped_unknown: int = 0
    duplicates: int = 0
    errors: int = 0
    emitted: int = 0
    appended: int = 0
    batches: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    complete: bool = False
    #: Secondary indexes built after the load (Projection.defer_secondary_indexes).
    indexes_built: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass
class TableDiff:
    table: str
    live_rows: int
    rebuilt_rows: int
    live_md5: str
    rebuilt_md5: str
    columns: list[str]
    ignored: list[str]
    only_live_columns: list[str] = field(default_factory=list)
    only_rebuilt_columns: list[str] = field(default_factory=list)
    missing_in_rebuild: list[dict[str, Any]] = field(default_factory=list)
    unexpected_in_rebuild: list[dict[str, Any]] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return (
            self.live_md5 == self.rebuilt_md5
            and self.live_rows == self.rebuilt_rows
            and not self.only_live_columns
            and not self.only_rebuilt_columns
        )


@dataclass
class VerifyReport:
    projection: str
    live_schema: str
    rebuild_schema: str
    tables: list[TableDiff]
    unpublished_events: int = 0

    @property
    def equal(self) -> bool:
        return all(t.equal for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "live_schema": self.live_schema,
            "rebuild_schema": self.rebuild_schema,
            "equal": self.equal,
            "unpublished_events": self.unpublished_events,
            "tables": [
                {
                    "table": t.table,
                    "equal": t.equal,
                    "live_rows": t.live_rows,
                    "rebuilt_rows": t.rebuilt_rows,
                    "live_md5": t.live_md5,
                    "rebuilt_md5": t.rebuilt_md5,
                    "ignored_columns": t.ignored,
                    "only_live_columns": t.only_live_columns,
                    "only_rebuilt_columns": t.only_rebuilt_columns,
                    "missing_in_rebuild": t.missing_in_rebuild,
                    "unexpected_in_rebuild": t.unexpected_in_rebuild,
                }
                for t in self.tables
            ],
        }


ProgressHook = Callable[[str, int, int], None]
"""(phase, done, total): called after each committed batch (phase "replay") and at start."""


@dataclass
class _Batch:
    events: list[ConsumedEvent]
    next_offsets: dict[tuple[str, int], int]
    records: int
    skipped_unknown: int
    duplicates: int


class Replayer:
    def __init__(
        self,
        projection: Projection,
        *,
        database_url: str,
        bootstrap: str,
        live_schema: str | None = None,
        work_schema: str | None = None,
        topics: Sequence[str] | None = None,
        handler: Handler | None = None,
        batch_size: int = 10_000,
        on_progress: ProgressHook | None = None,
    ) -> None:
        self.projection = projection
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.live_schema = check_identifier(live_schema or projection.service)
        self.work_schema = work_schema or work_schema_for(projection, self.live_schema)
        check_identifier(self.work_schema)
        self.topics = tuple(topics or projection.topics)
        self._handler_override = handler
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.decoder = PayloadDecoder()

    @property
    def target_schema(self) -> str:
        """Where the handler writes: the rebuild schema, or the live one when reprocessing."""
        return self.work_schema if self.projection.kind == "readmodel" else self.live_schema

    # ------------------------------------------------------------------ replay

    async def run(
        self, *, resume: bool = False, max_events: int | None = None, workers: int = 1
    ) -> ReplayStats:
        """Replay to the end of the log (fresh, or from the stored offsets with `resume`).
        `max_events` stops early after that many records (the rest is left for --resume).
        `workers` > 1 splits the partitions among that many processes (each its own consumer,
        connection and batches, into the same schema): per-aggregate projections are
        partitioned by aggregate like the log, so the partitions are independent."""
        started = time.perf_counter()
        cluster_id = await fetch_cluster_id(self.bootstrap)
        conn = await asyncpg.connect(self.database_url)
        try:
            starts = await self._prepare(conn, cluster_id, resume)
        finally:
            await conn.close()
        if workers > 1 and max_events is None:
            stats = await self._run_workers(workers, starts)
        else:
            stats = await self.run_partitions(None, max_events=max_events)
        stats.resumed_from = sum(starts.values())
        conn = await asyncpg.connect(self.database_url)
        try:
            if stats.complete:
                stats.indexes_built = await self._build_deferred_indexes(conn)
            await conn.execute(
                f"""UPDATE {self.work_schema}.replay_runs SET updated_at = now(),
                        finished_at = CASE WHEN $2 THEN now() END,
                        status = CASE WHEN $2 THEN 'complete' ELSE 'partial' END
                    WHERE projection = $1""",
                self.projection.name,
                stats.complete,
            )
        finally:
            await conn.close()
        stats.seconds = time.perf_counter() - started
        return stats

    async def run_partitions(
        self, partitions: Sequence[tuple[str, int]] | None, *, max_events: int | None = None
    ) -> ReplayStats:
        """Replay these partitions (None: all) from their stored offsets to the end, into a
        work schema `run` prepared."""
        started = time.perf_counter()
        stats = ReplayStats(self.projection.name, self.work_schema)
        conn = await asyncpg.connect(self.database_url)
        consumer = make_consumer(self.bootstrap, max_records=self.batch_size)
        try:
            handler = self._handler_override or self.projection.handler(self.target_schema)
            store = (
                EventStore(self.live_schema, source=self.projection.service)
                if self.projection.kind == "reprocess"
                else None
            )
            await consumer.start()
            tps = await topic_partitions(consumer, self.topics)
            if partitions is not None:
                wanted = set(partitions)
                tps = [tp for tp in tps if (tp.topic, tp.partition) in wanted]
            rounds = 0
            while tps:
                starts = await self._stored_offsets(conn)
                ranges = await resolve_ranges(consumer, tps, starts=starts)
                total = sum(r.size for r in ranges)
                if total == 0:
                    break
                rounds += 1
                done_before = stats.records
                await self._run_ranges(
                    conn, consumer, ranges, handler, store, stats, max_events, total
                )
                if max_events is not None and stats.records >= max_events:
                    break
                if rounds >= 5 or stats.records == done_before:
                    break
            stats.complete = max_events is None or stats.records < max_events
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            await conn.close()
        stats.seconds = time.perf_counter() - started
        return stats

    async def _run_workers(self, workers: int, starts: dict[tuple[str, int], int]) -> ReplayStats:
        if self._handler_override is not None:
            raise ReplayError("a handler instance cannot be shared with worker processes")
        consumer = make_consumer(self.bootstrap)
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, self.topics)
            total = sum(r.size for r in await resolve_ranges(consumer, tps, starts=starts))
        finally:
            await consumer.stop()
        groups = [[(tp.topic, tp.partition) for tp in tps[i::workers]] for i in range(workers)]
        groups = [g for g in groups if g]
        args: dict[str, Any] = dict(
            projection=self.projection,
            database_url=self.database_url,
            bootstrap=self.bootstrap,
            live_schema=self.live_schema,
            work_schema=self.work_schema,
            topics=self.topics,
            batch_size=self.batch_size,
        )
        if self.on_progress is not None:
            self.on_progress("start", 0, total)
        base = sum(starts.values())
        loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        # This process replays the first share itself while the others start: a spawned
        # worker first imports everything (a second or more), this one has done so already.
        own = Replayer(**args)  # no progress hook: the total is reported below
        progress_conn = (
            await asyncpg.connect(self.database_url) if self.on_progress is not None else None
        )
        try:
            with concurrent.futures.ProcessPoolExecutor(
                max(1, len(groups) - 1), mp_context=ctx
            ) as pool:
                futures = [loop.run_in_executor(pool, _worker_main, args, g) for g in groups[1:]]
                waiting = asyncio.gather(_stats_dict(own.run_partitions(groups[0])), *futures)
                while not waiting.done():
                    await asyncio.wait([waiting], timeout=0.5)
                    if progress_conn is not None and self.on_progress is not None:
                        done = sum((await self._stored_offsets(progress_conn)).values()) - base
                        self.on_progress("replay", done, total)
                results = await waiting
        finally:
            if progress_conn is not None:
                await progress_conn.close()
        stats = ReplayStats(self.projection.name, self.work_schema, complete=True)
        for r in results:
            for f in ("events", "records", "skipped_unknown", "duplicates", "errors"):
                setattr(stats, f, getattr(stats, f) + r[f])
            for f in ("emitted", "appended", "batches"):
                setattr(stats, f, getattr(stats, f) + r[f])
            stats.complete = stats.complete and r["complete"]
        return stats

    async def _prepare(
        self, conn: asyncpg.Connection, cluster_id: str, resume: bool
    ) -> dict[tuple[str, int], int]:
        s = self.work_schema
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s
        )
        if resume and exists:
            run = await conn.fetchrow(
                f"SELECT * FROM {s}.replay_runs WHERE projection = $1", self.projection.name
            )
            if run is None:
                raise ReplayError(
                    f"{s} holds no run of {self.projection.name}; start without --resume"
                )
            if run["cluster_id"] != cluster_id:
                raise ReplayError(
                    f"the rebuild in {s} read another broker's log (cluster {run['cluster_id']},"
                    f" now {cluster_id}); start again without --resume"
                )
            if list(run["topics"]) != list(self.topics):
                raise ReplayError(
                    f"the rebuild in {s} read {list(run['topics'])}, not {list(self.topics)}"
                )
            await conn.execute(BOOKKEEPING_SQL.format(s=s))  # tables added since it started
            await conn.execute(
                f"UPDATE {s}.replay_runs SET status = 'running', updated_at = now() WHERE projection = $1",
                self.projection.name,
            )
            return {k: v for k, v in (await self._stored_offsets(conn)).items()}
        if self.projection.kind == "readmodel":
            # A rebuild starts from an empty schema: the old attempt is thrown away.
            await conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
            await migrate(conn, s, list(self.projection.migrations))
        else:
            await conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
            await conn.execute(f"CREATE SCHEMA {s}")
        await conn.execute(BOOKKEEPING_SQL.format(s=s))
        if self.projection.kind == "readmodel" and self.projection.defer_secondary_indexes:
            await self._defer_secondary_indexes(conn)
        await conn.execute(
            f"""INSERT INTO {s}.replay_runs (projection, live_schema, topics, cluster_id)
                VALUES ($1, $2, $3, $4)""",
            self.projection.name,
            self.live_schema,
            list(self.topics),
            cluster_id,
        )
        return {}

    async def _defer_secondary_indexes(self, conn: asyncpg.Connection) -> None:
        """Drop the tables' secondary indexes, keeping their definitions to build them again
        (`_build_deferred_indexes`), also after an interruption (--resume)."""
        s = self.work_schema
        rows = await conn.fetch(
            """SELECT ic.relname AS index_name, pg_get_indexdef(i.indexrelid) AS definition
               FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_class tc ON tc.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = tc.relnamespace
               WHERE n.nspname = $1 AND tc.relname = ANY($2::text[])
                 AND NOT i.indisunique AND NOT i.indisprimary
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
               ORDER BY ic.relname""",
            s,
            list(self.projection.tables),
        )
        async with conn.transaction():
            await conn.executemany(
                f"""INSERT INTO {s}.replay_deferred_indexes (projection, index_name, definition)
                    VALUES ($1, $2, $3)""",
                [(self.projection.name, r["index_name"], r["definition"]) for r in rows],
            )
            for r in rows:
                await conn.execute(f"DROP INDEX {s}.{_quote(r['index_name'])}")

    async def _build_deferred_indexes(self, conn: asyncpg.Connection) -> int:
        """Build the indexes `_defer_secondary_indexes` dropped, each in its own transaction
        with the removal of its definition (an interrupted build resumes with the rest)."""
        s = self.work_schema
        rows = await conn.fetch(
            f"""SELECT index_name, definition FROM {s}.replay_deferred_indexes
                WHERE projection = $1 ORDER BY index_name""",
            self.projection.name,
        )
        for i, r in enumerate(rows):
            if self.on_progress is not None:
                self.on_progress("indexes", i, len(rows))
            async with conn.transaction():
                await conn.execute(r["definition"])
                await conn.execute(
                    f"""DELETE FROM {s}.replay_deferred_indexes
                        WHERE projection = $1 AND index_name = $2""",
                    self.projection.name,
                    r["index_name"],
                )
        return len(rows)

    async def _pending_indexes(self, conn: asyncpg.Connection) -> int:
        table = f"{self.work_schema}.replay_deferred_indexes"
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            return 0  # a rebuild begun before indexes were deferred
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE projection = $1", self.projection.name
            )
        )

    async def _stored_offsets(self, conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
        rows = await conn.fetch(
            f"""SELECT topic, partition, next_offset FROM {self.work_schema}.replay_progress
                WHERE projection = $1""",
            self.projection.name,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def _run_ranges(
        self,
        conn: asyncpg.Connection,
        consumer: Any,
        ranges: list[PartitionRange],
        handler: Handler,
        store: EventStore | None,
        stats: ReplayStats,
        max_events: int | None,
        total: int,
    ) -> None:
        """Decode (reader task) and apply (this task) concurrently, one batch in flight."""
        queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=2)
        budget = None if max_events is None else max_events - stats.records
        if self.on_progress is not None:
            self.on_progress("start", 0, total)

        async def reader() -> None:
            taken = 0
            pending: list[ConsumerRecord] = []
            async for records in read_ranges(consumer, ranges, max_records=self.batch_size):
                if budget is not None and taken + len(records) >= budget:
                    records = records[: budget - taken]
                    pending.extend(records)
                    taken += len(records)
                    break
                pending.extend(records)
                taken += len(records)
                if len(pending) >= self.batch_size:
                    await queue.put(self._decode(pending))
                    pending = []
            if pending:
                await queue.put(self._decode(pending))
            await queue.put(None)

        task = asyncio.create_task(reader(), name=f"replay-reader:{self.projection.name}")
        done = 0
        try:
            while True:
                batch = await queue.get()
                if batch is None:
                    break
                await self._apply(conn, handler, store, batch, stats)
                done += batch.records
                if self.on_progress is not None:
                    self.on_progress("replay", done, total)
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _decode(self, records: list[ConsumerRecord]) -> _Batch:
        events: list[ConsumedEvent] = []
        seen: set[str] = set()
        next_offsets: dict[tuple[str, int], int] = {}
        unknown = duplicates = 0
        decode = self.decoder.decode
        upcast = upcasting.upcast
        from_string = Envelope.FromString
        append = events.append
        for r in records:
            next_offsets[(r.topic, r.partition)] = r.offset + 1
            try:
                envelope = from_string(r.value or b"")
            except Exception:
                unknown += 1
                continue
            event_id = envelope.event_id
            if not event_id or not envelope.payload.type_url:
                unknown += 1
                continue
            if event_id in seen:
                duplicates += 1
                continue
            seen.add(event_id)
            envelope = upcast(envelope)
            payload = decode(envelope)
            if payload is None:
                unknown += 1
                continue
            traceparent = traceparent_from_headers(r.headers)
            append(ConsumedEvent(envelope, payload, r.topic, r.partition, r.offset, traceparent))
        return _Batch(events, next_offsets, len(records), unknown, duplicates)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        handler: Handler,
        store: EventStore | None,
        batch: _Batch,
        stats: ReplayStats,
    ) -> None:
        errors: list[tuple[ConsumedEvent, str]] = []
        try:
            async with conn.transaction():
                uow = UnitOfWork(conn)
                await _handle(handler, uow, batch.events)
                await self._finish_batch(conn, store, uow, batch, stats, [])
        except Exception:
            async with conn.transaction():
                uow = UnitOfWork(conn)
                for event in batch.events:
                    mark = len(uow.emitted)
                    try:
                        async with conn.transaction():
                            await _handle(handler, uow, [event])
                    except Exception as exc:
                        del uow.emitted[mark:]
                        errors.append((event, f"{type(exc).__name__}: {exc}"))
                await self._finish_batch(conn, store, uow, batch, stats, errors)
        stats.batches += 1
        stats.records += batch.records
        stats.events += len(batch.events) - len(errors)
        stats.skipped_unknown += batch.skipped_unknown
        stats.duplicates += batch.duplicates
        stats.errors += len(errors)

    async def _finish_batch(
        self,
        conn: asyncpg.Connection,
        store: EventStore | None,
        uow: UnitOfWork,
        batch: _Batch,
        stats: ReplayStats,
        errors: list[tuple[ConsumedEvent, str]],
    ) -> None:
        s = self.work_schema
        if uow.emitted:
            stats.emitted += len(uow.emitted)
            if store is not None:
                stored = await store.append(conn, uow.emitted)
                stats.appended += sum(1 for e in stored if not e.duplicate)
        if errors:
            await conn.executemany(
                f"""INSERT INTO {s}.replay_errors (projection, topic, partition, "offset",
                        event_id, event_type, error) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                [
                    (
                        self.projection.name,
                        e.topic,
                        e.partition,
                        e.offset,
                        e.event_id,
                        e.event_type,
                        err[:4000],
                    )
                    for e, err in errors
                ],
            )
        offsets = batch.next_offsets
        await conn.execute(
            f"""INSERT INTO {s}.replay_progress (projection, topic, partition, next_offset)
                SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o)
                ON CONFLICT (projection, topic, partition) DO UPDATE
                SET next_offset = EXCLUDED.next_offset, updated_at = now()""",
            self.projection.name,
            [k[0] for k in offsets],
            [k[1] for k in offsets],
            list(offsets.values()),
        )
        await conn.execute(
            f"""UPDATE {s}.replay_runs SET events = events + $2, updated_at = now()
                WHERE projection = $1""",
            self.projection.name,
            batch.records,
        )

    # ------------------------------------------------------------------ verify

    async def verify(self, *, sample: int = 5) -> VerifyReport:
        if self.projection.kind != "readmodel":
            raise ReplayError(f"{self.projection.name} is a reprocess: nothing to compare")
        conn = await asyncpg.connect(self.database_url)
        try:
            await self._require_rebuild(conn)
            tables = [await self._compare(conn, table, sample) for table in self.projection.tables]
            unpublished = await self._unpublished(conn)
        finally:
            await conn.close()
        return VerifyReport(
            self.projection.name, self.live_schema, self.work_schema, tables, unpublished
        )

    async def _require_rebuild(self, conn: asyncpg.Connection) -> None:
        ok = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", self.work_schema
        )
        if not ok:
            raise ReplayError(f"no rebuild in {self.work_schema}: run `parlay replay` first")

    async def _columns(self, conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
        rows = await conn.fetch(
            """SELECT column_name FROM information_schema.columns
               WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position""",
            schema,
            table,
        )
        return [r[0] for r in rows]

    async def _compare(self, conn: asyncpg.Connection, table: str, sample: int) -> TableDiff:
        live_cols = await self._columns(conn, self.live_schema, table)
        rb_cols = await self._columns(conn, self.work_schema, table)
        if not live_cols:
            raise ReplayError(f"live table {self.live_schema}.{table} does not exist")
        if not rb_cols:
            raise ReplayError(f"rebuilt table {self.work_schema}.{table} does not exist")
        ignored = list(self.projection.ignore_columns.get(table, ()))
        columns = [c for c in live_cols if c in rb_cols and c not in ignored]
        col_sql = ", ".join(_quote(c) for c in columns)

        async def checksum(schema: str) -> tuple[int, str]:
            row = await conn.fetchrow(
                f"""SELECT count(*)::bigint AS n,
                           md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS md5
                    FROM (SELECT md5(ROW({col_sql})::text) AS h FROM {schema}.{table}) AS x"""
            )
            return int(row["n"]), str(row["md5"])

        live_n, live_md5 = await checksum(self.live_schema)
        rb_n, rb_md5 = await checksum(self.work_schema)
        diff = TableDiff(
            table=table,
            live_rows=live_n,
            rebuilt_rows=rb_n,
            live_md5=live_md5,
            rebuilt_md5=rb_md5,
            columns=columns,
            ignored=ignored,
            only_live_columns=[c for c in live_cols if c not in rb_cols],
            only_rebuilt_columns=[c for c in rb_cols if c not in live_cols],
        )
        if live_md5 != rb_md5:

            async def rows_only_in(a: str, b: str) -> list[dict[str, Any]]:
                rows = await conn.fetch(
                    f"""SELECT to_jsonb(x)::text AS j FROM (
                            SELECT {col_sql} FROM {a}.{table}
                            EXCEPT ALL
                            SELECT {col_sql} FROM {b}.{table}) AS x
                        LIMIT {int(sample)}"""
                )
                return [json.loads(r["j"]) for r in rows]

            diff.missing_in_rebuild = await rows_only_in(self.live_schema, self.work_schema)
            diff.unexpected_in_rebuild = await rows_only_in(self.work_schema, self.live_schema)
        return diff

    async def _unpublished(self, conn: asyncpg.Connection) -> int:
        """Events of the projection's topics in the live store that the relay has not published
        on this broker yet (0 when the live schema has no event store)."""
        has_store = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{self.live_schema}.events"
        )
        if not has_store:
            return 0
        cluster_id = await fetch_cluster_id(self.bootstrap)
        published = await conn.fetchval(
            f"""SELECT coalesce(max(position), 0) FROM {self.live_schema}.relay_progress
                WHERE cluster_id = $1""",
            cluster_id,
        )
        return int(
            await conn.fetchval(
                f"""SELECT count(*) FROM {self.live_schema}.events
                    WHERE position > $1 AND topic = ANY($2::text[])""",
                published,
                list(self.topics),
            )
        )

    # ------------------------------------------------------------------ swap

    async def swap(self, *, force: bool = False, lock_timeout_s: float = 10.0) -> str:
        """Make the rebuilt tables live (one transaction); returns the backup schema name."""
        if self.projection.kind != "readmodel":
            raise ReplayError(f"{self.projection.name} is a reprocess: there is nothing to swap")
        consumer = make_consumer(self.bootstrap)
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, self.topics)
            ends = {
                (tp.topic, tp.partition): o for tp, o in (await end_offsets(consumer, tps)).items()
            }
        finally:
            await consumer.stop()
        conn = await asyncpg.connect(self.database_url)
        try:
            await self._require_rebuild(conn)
            if await self._pending_indexes(conn):
                raise ReplayError(
                    f"the rebuild in {self.work_schema} has indexes still to build: run with"
                    " --resume first"
                )
            stored = await self._stored_offsets(conn)
            behind = {k: e for k, e in ends.items() if e > stored.get(k, 0)}
            if behind and not force:
                raise ReplayError(
                    f"the rebuild is behind the log on {len(behind)} partition(s); run with"
                    " --resume first (or --force)"
                )
            unpublished = await self._unpublished(conn)
            if unpublished and not force:
                raise ReplayError(
                    f"{unpublished} event(s) in {self.live_schema}.events are not published yet:"
                    " let the relay catch up (start the service without its projectors, or wait)"
                    " and rerun with --resume (or --force)"
                )
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            backup = f"{self.live_schema}__old_{stamp}"[:MAX_IDENTIFIER]
            check_identifier(backup)
            live, rb = self.live_schema, self.work_schema
            tables = list(self.projection.tables)
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                existing = [
                    t
                    for t in tables
                    if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{live}.{t}")
                ]
                if existing:
                    await conn.execute(
                        f"LOCK TABLE {', '.join(f'{live}.{t}' for t in existing)}"
                        " IN ACCESS EXCLUSIVE MODE"
                    )
                await conn.execute(f"CREATE SCHEMA {backup}")
                for t in existing:
                    await conn.execute(f"ALTER TABLE {live}.{t} SET SCHEMA {backup}")
                for t in tables:
                    await conn.execute(f"ALTER TABLE {rb}.{t} SET SCHEMA {live}")
                has_migrations = await conn.fetchval(
                    "SELECT to_regclass($1) IS NOT NULL", f"{live}.schema_migrations"
                )
                if has_migrations:
                    await conn.execute(
                        f"""INSERT INTO {live}.schema_migrations (id)
                            SELECT unnest($1::text[]) ON CONFLICT DO NOTHING""",
                        [m.id for m in self.projection.migrations],
                    )
                await conn.execute(f"DROP SCHEMA {rb} CASCADE")
        finally:
            await conn.close()
        return backup


_STAT_FIELDS = (
    "events",
    "records",
    "skipped_unknown",
    "duplicates",
    "errors",
    "emitted",
    "appended",
    "batches",
    "complete",
)


async def _stats_dict(run: Awaitable[ReplayStats]) -> dict[str, Any]:
    """The counters of a finished run, as a worker process returns them."""
    stats = await run
    return {f: getattr(stats, f) for f in _STAT_FIELDS}


def _worker_main(args: dict[str, Any], partitions: list[tuple[str, int]]) -> dict[str, Any]:
    """A worker process of `Replayer.run(workers=N)`: its partitions, to the end."""
    replayer = Replayer(**args)
    return asyncio.run(_stats_dict(replayer.run_partitions(partitions)))


async def _handle(handler: Handler, uow: UnitOfWork, events: list[ConsumedEvent]) -> None:
    batch = getattr(handler, "handle_batch", None)
    if batch is not None:
        uow.current = None
        await batch(uow, events)
        return
    for event in events:
        uow.current = event
        try:
            await handler.handle(uow, event)
        finally:
            uow.current = None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

_err = Console(stderr=True)
#: Piped output (not a terminal) is not cut at 80 columns.
_out = Console(width=None if sys.stdout.isatty() else 200)


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        disable=not enabled,
        transient=False,
    )


def select_projections(
    registry: Registry, name: str | None, service: str | None
) -> list[Projection]:
    if name and service:
        raise ReplayError("give a projection name or --service, not both")
    if name:
        if name in registry.projections:
            return [registry.projections[name]]
        matches = [p for p in registry.projections.values() if p.local_name == name]
        if len(matches) == 1:
            return matches
        known = ", ".join(sorted(registry.projections)) or "none"
        raise ReplayError(f"unknown projection {name!r} (known: {known})")
    if service:
        found = registry.of_service(service)
        if not found:
            raise ReplayError(f"service {service!r} registers no projection")
        return found
    raise ReplayError("name a projection (see --list) or give --service")


def _print_verify(report: VerifyReport) -> None:
    table = Table(
        title=f"verify {report.projection}: {report.live_schema} vs {report.rebuild_schema}"
    )
    for col in ("table", "live rows", "rebuilt rows", "live md5", "rebuilt md5", ""):
        table.add_column(col)
    for t in report.tables:
        table.add_row(
            t.table,
            str(t.live_rows),
            str(t.rebuilt_rows),
            t.live_md5[:12],
            t.rebuilt_md5[:12],
            "[green]equal[/]" if t.equal else "[red]DIFFERENT[/]",
        )
    _out.print(table)
    for t in report.tables:
        if t.ignored:
            _out.print(f"  {t.table}: not compared (wall-clock columns): {', '.join(t.ignored)}")
        if t.only_live_columns or t.only_rebuilt_columns:
            _out.print(
                f"  [red]{t.table}: columns differ[/] live only {t.only_live_columns},"
                f" rebuild only {t.only_rebuilt_columns}"
            )
        for row in t.missing_in_rebuild:
            _out.print(f"  [red]- live only[/]    {t.table} {json.dumps(row, default=str)}")
        for row in t.unexpected_in_rebuild:
            _out.print(f"  [red]+ rebuild only[/] {t.table} {json.dumps(row, default=str)}")
    if report.unpublished_events:
        _out.print(
            f"  [yellow]{report.unpublished_events} event(s) in {report.live_schema}.events are not"
            " on the broker yet: the live read models may be ahead of the rebuild[/]"
        )


def replay_command(
    projection: Annotated[
        str | None, typer.Argument(help="Projection name, e.g. profile.customers (see --list).")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Every projection of this service.")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Compare the rebuilt read models with the live ones.")
    ] = False,
    swap: Annotated[
        bool, typer.Option("--swap", help="Make the rebuilt read models live (see docs).")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last rebuild from its stored offsets.")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the projections and exit.")] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar=["PARLAY_DATABASE_URL", "DATABASE_URL"],
            help="Postgres [default: the running `parlay dev` stack's]",
            show_default=False,
        ),
    ] = None,
    bootstrap: Annotated[
        str, typer.Option("--bootstrap", envvar="PARLAY_KAFKA_BOOTSTRAP", help="Kafka bootstrap.")
    ] = "127.0.0.1:9092",
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="The live schema [default: the service name]."),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="Read these topics instead of the projection's (repeat)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events per transaction.")] = 10_000,
    workers: Annotated[
        int, typer.Option(help="Processes, each replaying a share of the partitions.")
    ] = 1,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Swap even when --verify found differences.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Swap even if the rebuild is behind the log or the relay."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    stop_after: Annotated[
        int | None, typer.Option(hidden=True, help="Stop after N records (testing resume).")
    ] = None,
) -> None:
    """Rebuild projections from the log beside the live ones; --verify, --swap, --resume."""
    registry = discover()
    for problem in registry.problems:
        _err.print(f"[yellow]{problem}[/]")
    if list_:
        for p in sorted(registry.projections.values(), key=lambda p: p.name):
            print(
                f"{p.name}\t{p.kind}\tservice={p.service}\ttopics={','.join(p.topics)}"
                f"\ttables={','.join(p.tables) or '-'}\t{p.description}"
            )
        return
    from parlay_kit.cli import resolve_database_url

    url = resolve_database_url(database_url)
    try:
        selected = select_projections(registry, projection, service)
    except ReplayError as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    results: list[dict[str, Any]] = []
    exit_code = 0
    for p in selected:
        try:
            code, result = asyncio.run(
                _replay_one(
                    p,
                    url=url,
                    bootstrap=bootstrap,
                    schema=schema,
                    topics=topic or None,
                    batch_size=batch_size,
                    workers=workers,
                    resume=resume,
                    verify=verify,
                    swap=swap,
                    yes=yes,
                    force=force,
                    progress=progress and not as_json,
                    stop_after=stop_after,
                )
            )
        except (ReplayError, LookupError, asyncpg.PostgresError, OSError) as exc:
            _err.print(f"[red]{p.name}: {type(exc).__name__}: {exc}[/]")
            raise typer.Exit(1) from None
        exit_code = max(exit_code, code)
        results.append(result)
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    raise typer.Exit(exit_code)


async def _replay_one(
    p: Projection,
    *,
    url: str,
    bootstrap: str,
    schema: str | None,
    topics: Sequence[str] | None,
    batch_size: int,
    workers: int,
    resume: bool,
    verify: bool,
    swap: bool,
    yes: bool,
    force: bool,
    progress: bool,
    stop_after: int | None,
) -> tuple[int, dict[str, Any]]:
    bar = _progress_bar(progress)
    task_id = bar.add_task(p.name, total=None, rate="")
    started = time.perf_counter()

    def on_progress(phase: str, done: int, total: int) -> None:
        elapsed = max(time.perf_counter() - started, 1e-6)
        if phase == "start":
            bar.update(task_id, total=total, completed=0)
        elif phase == "indexes":
            bar.update(task_id, rate=f"building indexes {done + 1}/{total}")
        else:
            bar.update(task_id, completed=done, rate=f"{done / elapsed:,.0f} ev/s")

    replayer = Replayer(
        p,
        database_url=url,
        bootstrap=bootstrap,
        live_schema=schema,
        topics=topics,
        batch_size=batch_size,
        on_progress=on_progress,
    )
    result: dict[str, Any] = {"projection": p.name, "work_schema": replayer.work_schema}
    with bar:
        stats = await replayer.run(resume=resume, max_events=stop_after, workers=workers)
    result["replay"] = {
        "records": stats.records,
        "events_applied": stats.events,
        "skipped_unknown": stats.skipped_unknown,
        "errors": stats.errors,
        "emitted": stats.emitted,
        "appended": stats.appended,
        "seconds": round(stats.seconds, 3),
        "events_per_second": round(stats.rate),
        "complete": stats.complete,
        "indexes_built": stats.indexes_built,
    }
    if progress:
        verb = "re-ran" if p.kind == "reprocess" else "rebuilt"
        _out.print(
            f"{p.name}: {verb} {stats.records:,} records in {stats.seconds:.1f}s"
            f" ({stats.rate:,.0f}/s) into {replayer.target_schema}"
            + (f"; {stats.appended:,} new events appended" if p.kind == "reprocess" else "")
            + (
                f"; [red]{stats.errors} event(s) failed (see {replayer.work_schema}.replay_errors)[/]"
                if stats.errors
                else ""
            )
            + ("" if stats.complete else " [yellow](stopped early: --resume to continue)[/]")
        )
    code = 1 if stats.errors else 0
    if p.kind == "reprocess":
        return code, result
    report: VerifyReport | None = None
    if verify:
        report = await replayer.verify()
        result["verify"] = report.to_json()
        if progress:
            _print_verify(report)
        if not report.equal:
            code = 1
    if swap:
        if (
            report is not None
            and not report.equal
            and not yes
            and not typer.confirm("The rebuilt read models differ from the live ones. Swap anyway?")
        ):
            result["swap"] = None
            return code, result
        backup = await replayer.swap(force=force)
        result["swap"] = {"backup_schema": backup}
        if progress:
            _out.print(
                f"{p.name}: swapped: {', '.join(p.tables)} are now the rebuilt ones in"
                f" {replayer.live_schema}; the previous tables are in {backup}"
                f" (DROP SCHEMA {backup} CASCADE once you are sure)"
            )
        if report is not None and not report.equal and yes:
            code = 0
    return code, result
