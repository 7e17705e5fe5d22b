"""The event store, which is also the outbox.

Events are appended to the service's own `events` table with a unique (aggregate_id,
aggregate_version) — optimistic concurrency — and a unique event_id — idempotent appends.
Appends take a transaction-scoped advisory lock, so positions become visible in commit order and
the relay can read `position > last` without skipping a slower, earlier transaction. The lock is
held only for the insert and the commit; `GroupCommitter` lets concurrent callers share both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import envelope as env
from parlay_kit.db import Migration, check_identifier
from parlay_kit.errors import ConcurrencyError

log = logging.getLogger(__name__)

EVENT_STORE_MIGRATIONS = [
    Migration(
        "kit_0001_event_store",
        """
        CREATE TABLE {schema}.events (
            position          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id          uuid        NOT NULL UNIQUE,
            tenant_id         text        NOT NULL,
            aggregate_type    text        NOT NULL,
            aggregate_id      text        NOT NULL,
            aggregate_version bigint      NOT NULL,
            event_type        text        NOT NULL,
            topic             text        NOT NULL,
            occurred_at       timestamptz NOT NULL,
            recorded_at       timestamptz NOT NULL,
            envelope          bytea       NOT NULL,
            traceparent       text        NOT NULL DEFAULT '',
            UNIQUE (aggregate_id, aggregate_version)
        );
        CREATE INDEX events_tenant_aggregate ON {schema}.events (tenant_id, aggregate_type, aggregate_id);

        -- How far the outbox relay has published, per broker incarnation (cluster id).
        CREATE TABLE {schema}.relay_progress (
            relay      text PRIMARY KEY,
            cluster_id text   NOT NULL,
            position   bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- Consumer offsets, committed in the same transaction as the read models they produced.
        CREATE TABLE {schema}.consumer_offsets (
            consumer    text    NOT NULL,
            topic       text    NOT NULL,
            partition   integer NOT NULL,
            cluster_id  text    NOT NULL,
            next_offset bigint  NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, topic, partition)
        );

        -- Events a consumer has applied: makes every projection idempotent under redelivery.
        CREATE TABLE {schema}.processed_events (
            consumer text NOT NULL,
            event_id uuid NOT NULL,
            PRIMARY KEY (consumer, event_id)
        );
        """,
    )
]


def notify_channel(schema: str) -> str:
    return f"{schema}_events"


def lock_key(schema: str, purpose: str) -> int:
    """A stable 32-bit advisory-lock key (crc32 keeps it stable across processes and versions)."""
    return zlib.crc32(f"parlay:{schema}:{purpose}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    #: None when the event was a duplicate of one already stored (same event_id).
    position: int | None
    envelope: Envelope | None

    @property
    def duplicate(self) -> bool:
        return self.position is None


class EventStore:
    def __init__(self, schema: str, source: str) -> None:
        self.schema = check_identifier(schema)
        self.source = source
        self._append_lock = lock_key(schema, "append")
        self._insert_sql = f"""
            INSERT INTO {schema}.events (event_id, tenant_id, aggregate_type, aggregate_id,
                aggregate_version, event_type, topic, occurred_at, recorded_at, envelope, traceparent)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bytea[], $11::text[])
            RETURNING event_id, position"""
        # Latest version per aggregate via the (aggregate_id, aggregate_version) index: a
        # correlated max() is an index probe, a GROUP BY would read the whole stream.
        self._lookup_sql = f"""
            SELECT
              ARRAY(SELECT event_id::text FROM {schema}.events WHERE event_id = ANY($1::uuid[]))
                AS existing,
              ARRAY(SELECT coalesce((SELECT max(e.aggregate_version) FROM {schema}.events e
                                     WHERE e.aggregate_id = a.id), 0)
                    FROM unnest($2::text[]) WITH ORDINALITY AS a(id, n) ORDER BY a.n)
                AS versions"""

    def begin_and_lock_sql(self) -> str:
        """BEGIN plus `lock()` as one simple-protocol message (one round trip instead of two),
        for a caller that owns the transaction (GroupCommitter). The values are a number and a
        checked identifier, so inlining them is safe."""
        return (
            f"BEGIN; SELECT pg_advisory_xact_lock({self._append_lock}), "
            f"pg_notify('{notify_channel(self.schema)}', '')"
        )

    async def lock(self, conn: asyncpg.Connection) -> None:
        """Take the append lock (until the transaction ends) and queue the relay's wake-up
        notification (delivered only at commit), in one round trip."""
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1), pg_notify($2, '')",
            self._append_lock,
            notify_channel(self.schema),
        )

    async def append(
        self, conn: asyncpg.Connection, events: Sequence[env.NewEvent]
    ) -> list[StoredEvent]:
        """Append inside the caller's transaction. Events whose event_id is already stored are
        skipped (returned as duplicates). An explicit aggregate_version that is taken raises
        ConcurrencyError; aggregate_version=None takes the aggregate's next version."""
        if not events:
            return []
        if not conn.is_in_transaction():
            raise RuntimeError("EventStore.append must run inside a transaction")
        # The lock first, then one round trip for what is already stored: the lock is held for
        # as short a time as possible.
        await self.lock(conn)
        return await self.append_locked(conn, events)

    async def append_locked(
        self, conn: asyncpg.Connection, events: Sequence[env.NewEvent]
    ) -> list[StoredEvent]:
        """`append` for a transaction that already holds the append lock (`lock()` or
        `begin_and_lock_sql()`). The lookup must run after the lock is granted: under READ
        COMMITTED it then sees every append committed before ours."""
        if not events:
            return []
        auto = list({e.aggregate_id for e in events if e.aggregate_version is None})
        row = await conn.fetchrow(self._lookup_sql, [e.event_id for e in events], auto)
        existing = set(row["existing"] or ())
        current: dict[str, int] = dict(zip(auto, row["versions"] or (), strict=True))
        recorded_at = env.utcnow()
        columns: list[list] = [[] for _ in range(11)]
        envelopes: dict[str, Envelope] = {}
        for event in events:
            if event.event_id in existing or event.event_id in envelopes:
                continue
            if event.aggregate_version is None:
                version = current.get(event.aggregate_id, 0) + 1
            else:
                version = event.aggregate_version
            current[event.aggregate_id] = max(version, current.get(event.aggregate_id, 0))
            envelope = event.to_envelope(self.source, version, recorded_at)
            envelopes[event.event_id] = envelope
            for column, value in zip(
                columns,
                (
                    event.event_id,
                    event.tenant_id,
                    event.aggregate_type,
                    event.aggregate_id,
                    version,
                    event.event_type,
                    event.topic,
                    event.occurred_at,
                    recorded_at,
                    env.encode(envelope),
                    event.traceparent,
                ),
                strict=True,
            ):
                column.append(value)
        positions: dict[str, int] = {}
        if envelopes:
            # Only an explicit version can conflict; then a savepoint keeps the caller's
            # transaction usable after a ConcurrencyError (and costs two round trips).
            explicit = any(e.aggregate_version is not None for e in events)
            try:
                if explicit:
                    async with conn.transaction():
                        rows = await conn.fetch(self._insert_sql, *columns)
                else:
                    rows = await conn.fetch(self._insert_sql, *columns)
            except asyncpg.UniqueViolationError as exc:
                raise ConcurrencyError(
                    f"aggregate changed concurrently: {exc.detail or exc}"
                ) from exc
            positions = {str(r["event_id"]): r["position"] for r in rows}
        return [
            StoredEvent(e.event_id, positions.get(e.event_id), envelopes.get(e.event_id))
            for e in events
        ]

    async def load_stream(
        self, conn: asyncpg.Connection, aggregate_id: str, *, tenant_id: str | None = None
    ) -> list[Envelope]:
        """The aggregate's events, oldest first (for time travel and history)."""
        rows = await conn.fetch(
            f"""SELECT envelope FROM {self.schema}.events WHERE aggregate_id = $1
                AND ($2::text IS NULL OR tenant_id = $2) ORDER BY aggregate_version""",
            aggregate_id,
            tenant_id,
        )
        return [env.decode(r[0]) for r in rows]


@dataclass(slots=True)
class _PendingAppend:
    events: Sequence[env.NewEvent]
    done: asyncio.Future[list[StoredEvent]]


class GroupCommitter:
    """Shares one transaction and one commit among concurrent appenders.

    Appends queue; a group takes every append queued (up to `max_events`) when its transaction
    holds the append lock. Under load a webhook costs a fraction of a commit; when idle it costs
    exactly one.

    Pipelined: `pipeline` workers (each with a pool connection per group) take turns. While one group
    is in its transaction, the next worker — as soon as appends are waiting — already sends its
    BEGIN and asks for the append lock, which Postgres grants the moment the previous group
    commits; only then does that worker take its group from the queue (so the group holds
    everything that arrived meanwhile). Commit order, hence position order, stays the lock's
    order, exactly as with one worker; a group never waits for the previous one's commit reply
    to travel back and be processed, nor for a connection to be returned to the pool.

    A group's transaction is BEGIN+lock, lookup, insert, COMMIT: four round trips; waiters are
    answered right after the COMMIT, before the connection goes back to the pool.

    Only for appends with store-assigned versions (no expected version can conflict and fail
    the whole group).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        *,
        max_events: int = 1000,
        pipeline: int = 2,
    ) -> None:
        self._pool = pool
        self._store = store
        self._max_events = max_events
        self._pipeline = max(1, pipeline)
        self._begin_sql = store.begin_and_lock_sql()
        self._queue: collections.deque[_PendingAppend] = collections.deque()
        self._work = asyncio.Event()
        # Held by the one worker that is next to form a group: it waits for work, begins and
        # waits for the lock, takes the group, then hands over to the next worker.
        self._forming = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name=f"group-commit:{self._store.schema}:{n}")
                for n in range(self._pipeline)
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while self._queue:
            pending = self._queue.popleft()
            if not pending.done.done():
                pending.done.set_exception(RuntimeError("event store is shutting down"))

    async def append(self, events: Sequence[env.NewEvent]) -> list[StoredEvent]:
        """Returns once the events are durable (committed)."""
        if any(e.aggregate_version is not None for e in events):
            raise ValueError("GroupCommitter only takes store-versioned events")
        if not self._tasks:
            raise RuntimeError("GroupCommitter not started")
        done: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._queue.append(_PendingAppend(events, done))
        self._work.set()
        return await done

    def _take(self) -> list[_PendingAppend]:
        """The next group: queued appends (not given up by their callers) up to max_events."""
        group: list[_PendingAppend] = []
        count = 0
        queue = self._queue
        while queue and (not group or count < self._max_events):
            pending = queue.popleft()
            if pending.done.done():  # cancelled (the caller timed out): nothing to store
                continue
            group.append(pending)
            count += len(pending.events)
        if not queue:
            self._work.clear()
        return group

    async def _run(self) -> None:
        while True:
            group: list[_PendingAppend] = []
            conn: asyncpg.Connection | None = None
            try:
                async with self._forming:
                    while not self._queue:
                        self._work.clear()
                        await self._work.wait()
                    conn = await self._pool.acquire()
                    await conn.execute(self._begin_sql)
                    group = self._take()
                if not group:  # every waiter gave up meanwhile
                    await conn.execute("ROLLBACK")
                    continue
                stored = await self._store.append_locked(conn, [e for p in group for e in p.events])
                await conn.execute("COMMIT")
                # Durable: answer before the connection goes back to the pool (its reset is a
                # round trip of its own).
                offset = 0
                for p in group:
                    n = len(p.events)
                    if not p.done.done():
                        p.done.set_result(stored[offset : offset + n])
                    offset += n
            except BaseException as exc:
                # Whatever state the transaction is in, we did not see it commit: end it by
                # dropping the connection (the server rolls back; the pool replaces it).
                if conn is not None:
                    conn.terminate()
                if isinstance(exc, asyncio.CancelledError):
                    for p in group:
                        if not p.done.done():
                            p.done.set_exception(RuntimeError("event store is shutting down"))
                    raise
                if not group:
                    # Failed before taking a group: the store is failing for those waiting now.
                    group = self._take()
                log.warning("group commit of %d appends failed: %s", len(group), exc)
                for p in group:
                    if not p.done.done():
                        p.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await self._pool.release(conn)
