"""The projector: consumes topics in batches and applies them to Postgres exactly once.

For each batch, in ONE Postgres transaction: skip events already applied (by event_id), let the
handler update read models and emit new events, append those to the service's event store
(its outbox), record the applied event ids, and store the next offsets. On assignment the
consumer seeks to the stored offsets; Kafka's own offset commit is never used.

A failing batch is retried; if it keeps failing, events are applied one at a time (each in a
savepoint) so the one poison event can be isolated, sent to the service's dead-letter topic with
the error, and skipped — the partition keeps flowing. Undecodable events and unknown event types
are counted and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import envelope as env
from parlay_kit import upcasting
from parlay_kit.eventstore import EventStore
from parlay_kit.kafka import fetch_cluster_id, make_consumer, make_producer
from parlay_kit.settings import KafkaSettings
from parlay_kit.telemetry import (
    CONSUMER_BATCH_SECONDS,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_SKIPPED,
    current_traceparent,
    traceparent_from_headers,
)
from parlay_kit.topics import dead_letter_topic

log = logging.getLogger(__name__)
tracer = trace.get_tracer("parlay.projector")


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """Records as fetched, decoded ahead of their turn."""

    generation: int
    records: list[ConsumerRecord]
    events: list[ConsumedEvent]
    undecodable: list[tuple[ConsumerRecord, str]]
    #: (topic, partition) -> the offset after the batch's last record there: stored with the
    #: batch in Postgres, then mirrored into Kafka.
    next_offsets: dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    envelope: Envelope
    payload: Message
    topic: str
    partition: int
    offset: int
    traceparent: str

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def event_type(self) -> str:
        return self.envelope.event_type

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenant_id


@dataclass
class UnitOfWork:
    """What a handler gets: the batch's connection (inside its transaction) and an outbox."""

    conn: asyncpg.Connection
    emitted: list[env.NewEvent] = field(default_factory=list)
    current: ConsumedEvent | None = None

    def emit(self, event: env.NewEvent) -> None:
        """Queue an event for the service's own store; it commits with the batch. Its
        causation and correlation follow the event being handled unless set."""
        if self.current is not None:
            from dataclasses import replace

            cause = self.current.envelope
            event = replace(
                event,
                causation_id=event.causation_id or cause.event_id,
                correlation_id=event.correlation_id or cause.correlation_id or cause.event_id,
                traceparent=event.traceparent or current_traceparent(),
            )
        self.emitted.append(event)


class Handler(Protocol):
    """A projection or process: applies consumed events. Must be deterministic over the log."""

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None: ...


class BatchHandler(Handler, Protocol):
    """Optional fast path: apply many events with a few set-based statements."""

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None: ...


@dataclass
class ProjectorStats:
    applied: int = 0
    duplicates: int = 0
    skipped_unknown: int = 0
    dead_lettered: int = 0
    batches: int = 0


class Projector:
    def __init__(
        self,
        *,
        name: str,
        service: str,
        topics: Sequence[str],
        handler: Handler,
        pool: asyncpg.Pool,
        schema: str,
        kafka: KafkaSettings,
        store: EventStore | None = None,
        max_attempts: int = 3,
        retry_backoff_seconds: float = 0.2,
    ) -> None:
        self.name = name
        self.service = service
        self.topics = list(topics)
        self.handler = handler
        self.pool = pool
        self.schema = schema
        self.kafka = kafka
        self.store = store
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff_seconds
        self.stats = ProjectorStats()
        self._batch_lock = asyncio.Lock()
        #: Bumped on every partition assignment; a batch fetched under an older one is dropped.
        self._generation = 0
        self._cluster_id = ""
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: AIOKafkaProducer | None = None

    # ---------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished and committed first."""
        self._cluster_id = await fetch_cluster_id(self.kafka.bootstrap)
        # The group is named after the store schema: two deployments sharing a broker (tests,
        # a replay beside the live projection) never split each other's partitions.
        consumer = make_consumer(
            self.kafka, group_id=f"{self.schema}.{self.name}", client_id=self.name
        )
        consumer.subscribe(self.topics, listener=_SeekToStoredOffsets(self))
        self._consumer = consumer
        self._dlq = make_producer(self.kafka, client_id=f"{self.name}-dlq")
        await consumer.start()
        await self._dlq.start()
        reporter = _OffsetReporter(consumer, self.name)
        # Pipelined: the next batch is fetched and decoded while this one's transaction runs in
        # Postgres, so the Python work of decoding overlaps the database's work of applying.
        pending = asyncio.create_task(self._fetch(consumer))
        try:
            while not stop.is_set():
                batch = await pending
                pending = asyncio.create_task(self._fetch(consumer))
                if batch is None:
                    continue
                if batch.generation != self._generation:
                    # Fetched across a rebalance: the positions it advanced may no longer be
                    # ours to trust. Drop it and go back to what Postgres says is applied.
                    await self._seek_to_stored(list(consumer.assignment()), rewind_unknown=True)
                    continue
                async with self._batch_lock:
                    with CONSUMER_BATCH_SECONDS.labels(self.name).time():
                        await self._process(batch)
                reporter.report(batch.next_offsets)
        finally:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
            await reporter.close()
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await self._dlq.stop()

    async def _fetch(self, consumer: AIOKafkaConsumer) -> FetchedBatch | None:
        generation = self._generation
        fetched = await consumer.getmany(timeout_ms=200, max_records=self.kafka.max_poll_records)
        if not fetched:
            return None
        records = [r for _tp, rs in sorted(fetched.items()) for r in rs]
        events, undecodable = self._decode(records)
        return FetchedBatch(generation, records, events, undecodable, _next_offsets(records))

    # ---------------------------------------------------------------- batches

    async def _process(self, batch: FetchedBatch) -> None:
        records, events, undecodable = batch.records, batch.events, batch.undecodable
        next_offsets = batch.next_offsets
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._apply(events, undecodable, next_offsets, isolate=False)
                return
            except Exception as exc:
                log.warning(
                    "%s: batch of %d failed (attempt %d): %s", self.name, len(records), attempt, exc
                )
                await asyncio.sleep(self.retry_backoff * attempt)
        await self._apply(events, undecodable, next_offsets, isolate=True)

    def _decode(
        self, records: list[ConsumerRecord]
    ) -> tuple[list[ConsumedEvent], list[tuple[ConsumerRecord, str]]]:
        events: list[ConsumedEvent] = []
        undecodable: list[tuple[ConsumerRecord, str]] = []
        for record in records:
            try:
                envelope = env.decode(record.value or b"")
                if not envelope.event_id or not envelope.payload.type_url:
                    raise DecodeError("not a Parlay envelope (no event_id or payload)")
                # Upcasting hook (analysts, issue 8): events of an older schema are read as the
                # current message, through the one registry in parlay_kit.upcasting. Returns
                # the same envelope (one dict lookup) when no upcaster applies.
                envelope = upcasting.upcast(envelope)
                payload = env.unpack(envelope)
            except env.UnknownEventType as exc:
                self.stats.skipped_unknown += 1
                EVENTS_SKIPPED.labels(self.name, record.topic).inc()
                log.info("%s: skipping unknown event type %s", self.name, exc)
                continue
            except Exception as exc:
                undecodable.append((record, f"undecodable: {exc}"))
                continue
            events.append(
                ConsumedEvent(
                    envelope,
                    payload,
                    record.topic,
                    record.partition,
                    record.offset,
                    traceparent_from_headers(record.headers),
                )
            )
        return events, undecodable

    async def _apply(
        self,
        events: list[ConsumedEvent],
        undecodable: list[tuple[ConsumerRecord, str]],
        next_offsets: dict[tuple[str, int], int],
        *,
        isolate: bool,
    ) -> None:
        # A handler that is itself idempotent (e.g. it skips events at or below the aggregate
        # version it already holds) can say so and save the per-event dedupe bookkeeping.
        self_deduplicating = getattr(self.handler, "deduplicates_itself", False)
        async with self.pool.acquire() as conn, conn.transaction():
            done = set() if self_deduplicating else await self._already_applied(conn, events)
            fresh = [e for e in events if e.event_id not in done] if done else events
            uow = UnitOfWork(conn)
            poisoned: list[tuple[ConsumedEvent, str]] = []
            if not isolate:
                await self._handle_all(uow, fresh)
            else:
                for event in fresh:
                    error = await self._handle_isolated(uow, event)
                    if error is not None:
                        poisoned.append((event, error))
            if not self_deduplicating:
                await self._mark_applied(
                    conn, [e.event_id for e in events if e.event_id not in done]
                )
            await self._store_offsets(conn, next_offsets)
            # Dead letters are published before the commit: a crash in between re-sends them
            # (the DLQ record carries the event id), it never loses one.
            for record, reason in undecodable:
                await self._dead_letter(
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    record.value or b"",
                    reason,
                    "",
                )
            for event, reason in poisoned:
                await self._dead_letter(
                    event.topic,
                    event.partition,
                    event.offset,
                    event.envelope.aggregate_id.encode(),
                    env.encode(event.envelope),
                    reason,
                    event.event_id,
                )
            # Last before the commit: the store's append lock is held from here to the commit,
            # so concurrent appenders (webhook group commits) wait as little as possible.
            if self.store is not None and uow.emitted:
                await self.store.append(conn, uow.emitted)
        self.stats.batches += 1
        self.stats.duplicates += len(done)
        self.stats.applied += len(fresh) - len(poisoned)
        self.stats.dead_lettered += len(poisoned) + len(undecodable)
        for topic, count in Counter(event.topic for event in fresh).items():
            EVENTS_CONSUMED.labels(self.name, topic).inc(count)
        for record, _ in undecodable:
            EVENTS_DEAD_LETTERED.labels(self.name, record.topic).inc()
        for event, _ in poisoned:
            EVENTS_DEAD_LETTERED.labels(self.name, event.topic).inc()

    async def _handle_all(self, uow: UnitOfWork, events: list[ConsumedEvent]) -> None:
        batch = getattr(self.handler, "handle_batch", None)
        if batch is not None:
            uow.current = None
            await batch(uow, events)
            return
        for event in events:
            await self._handle_one(uow, event)

    async def _handle_one(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        parent = extract({"traceparent": event.traceparent}) if event.traceparent else None
        with tracer.start_as_current_span(
            f"{event.topic} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": event.topic,
                "messaging.kafka.offset": event.offset,
                "parlay.event_type": event.event_type,
                "parlay.consumer": self.name,
            },
        ):
            uow.current = event
            try:
                await self.handler.handle(uow, event)
            finally:
                uow.current = None

    async def _handle_isolated(self, uow: UnitOfWork, event: ConsumedEvent) -> str | None:
        """Apply one event in a savepoint, retrying; return the error if it stays poisonous."""
        error = ""
        for _attempt in range(self.max_attempts):
            mark = len(uow.emitted)
            try:
                async with uow.conn.transaction():
                    await self._handle_one(uow, event)
                return None
            except Exception as exc:
                del uow.emitted[mark:]
                error = "".join(traceback.format_exception_only(exc)).strip()
        log.error(
            "%s: event %s (%s) is poison, dead-lettering: %s",
            self.name,
            event.event_id,
            event.event_type,
            error,
        )
        return error

    async def _already_applied(
        self, conn: asyncpg.Connection, events: list[ConsumedEvent]
    ) -> set[str]:
        if not events:
            return set()
        rows = await conn.fetch(
            f"""SELECT event_id FROM {self.schema}.processed_events
                WHERE consumer = $1 AND event_id = ANY($2::uuid[])""",
            self.name,
            [e.event_id for e in events],
        )
        return {str(r[0]) for r in rows}

    async def _mark_applied(self, conn: asyncpg.Connection, event_ids: list[str]) -> None:
        if event_ids:
            await conn.execute(
                f"""INSERT INTO {self.schema}.processed_events (consumer, event_id)
                    SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING""",
                self.name,
                list(dict.fromkeys(event_ids)),
            )

    async def _store_offsets(
        self, conn: asyncpg.Connection, offsets: dict[tuple[str, int], int]
    ) -> None:
        await conn.executemany(
            f"""INSERT INTO {self.schema}.consumer_offsets (consumer, topic, partition, cluster_id, next_offset)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (consumer, topic, partition) DO UPDATE
                SET cluster_id = $4, next_offset = $5, updated_at = now()""",
            [(self.name, t, p, self._cluster_id, o) for (t, p), o in offsets.items()],
        )

    async def _dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        reason: str,
        event_id: str,
    ) -> None:
        assert self._dlq is not None
        headers = [
            ("dlq_reason", reason[:4000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_source_topic", topic.encode()),
            ("dlq_source_partition", str(partition).encode()),
            ("dlq_source_offset", str(offset).encode()),
            ("ce_id", event_id.encode()),
        ]
        carrier: dict[str, str] = {}
        inject(carrier)
        headers += [(k, v.encode()) for k, v in carrier.items()]
        await self._dlq.send_and_wait(
            dead_letter_topic(self.service), value=value, key=key, headers=headers
        )

    # ---------------------------------------------------------------- offsets

    async def _seek_to_stored(
        self, partitions: list[TopicPartition], *, rewind_unknown: bool = False
    ) -> None:
        """Position `partitions` at the offsets applied in Postgres. `rewind_unknown`: one with
        nothing applied on this broker goes back to its first record (after a dropped batch);
        otherwise it is left where the consumer starts it."""
        consumer = self._consumer
        assert consumer is not None
        rows = await self.pool.fetch(
            f"""SELECT topic, partition, cluster_id, next_offset FROM {self.schema}.consumer_offsets
                WHERE consumer = $1""",
            self.name,
        )
        stored = {(r["topic"], r["partition"]): r for r in rows}
        for tp in partitions:
            row = stored.get((tp.topic, tp.partition))
            if row is not None and row["cluster_id"] == self._cluster_id:
                consumer.seek(tp, row["next_offset"])
            elif rewind_unknown:
                await consumer.seek_to_beginning(tp)
            # Otherwise never applied on this broker: the consumer starts at the offset mirrored
            # to Kafka, or the earliest record (auto_offset_reset). Events applied from an
            # earlier, now-empty broker are skipped by event id.

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        """Offsets this projector has durably applied up to, for the current broker."""
        rows = await self.pool.fetch(
            f"""SELECT topic, partition, next_offset FROM {self.schema}.consumer_offsets
                WHERE consumer = $1 AND cluster_id = $2""",
            self.name,
            self._cluster_id,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def _next_offsets(records: list[ConsumerRecord]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    # A partition's records arrive in offset order: the last one seen of each is its highest.
    for r in records:
        offsets[(r.topic, r.partition)] = r.offset + 1
    return offsets


class _OffsetReporter:
    """Mirrors the offsets stored in Postgres into Kafka, best effort, never read back:
    lag-based autoscalers (KEDA) and `kafka-consumer-groups` only see Kafka's offsets.

    In the background, so the next batch does not wait for the broker's answer (a commit
    round trip is 15–20 ms on the local broker, a tenth of a 5,000-event batch); reports that
    pile up meanwhile are merged, the latest offset of each partition winning."""

    #: How long `close` waits for the last report.
    CLOSE_TIMEOUT_SECONDS = 5.0

    def __init__(self, consumer: AIOKafkaConsumer, name: str) -> None:
        self.consumer = consumer
        self.name = name
        self._unsent: dict[tuple[str, int], int] = {}
        self._sending: asyncio.Task[None] | None = None

    def report(self, offsets: dict[tuple[str, int], int]) -> None:
        self._unsent.update(offsets)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send(), name=f"offset-report:{self.name}")

    async def _send(self) -> None:
        while self._unsent:
            offsets, self._unsent = self._unsent, {}
            try:
                await self.consumer.commit(
                    {TopicPartition(t, p): o for (t, p), o in offsets.items()}
                )
            except Exception as exc:  # a rebalance in between: the next batch reports again
                log.debug("%s: offset report to Kafka skipped: %s", self.name, exc)

    async def close(self) -> None:
        """Send what is left (the consumer is still open), waiting a bounded time."""
        if self._sending is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._sending), self.CLOSE_TIMEOUT_SECONDS)
        if not self._sending.done():
            self._sending.cancel()
            with contextlib.suppress(BaseException):
                await self._sending


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Let the batch in hand commit before another member takes the partitions.
        async with self.projector._batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.projector._generation += 1
        await self.projector._seek_to_stored(assigned)
