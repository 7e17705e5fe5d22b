"""Relay + projector against a real broker and Postgres: order, exactly-once application,
resume after a kill, dead letters, unknown types, and re-seeding an empty broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from google.protobuf import any_pb2

from parlay.gateway.v1.gateway_events_pb2 import ChannelAccountCreated
from parlay_kit.db import Migration, create_pool, migrate
from parlay_kit.envelope import NewEvent, encode, new_event_id
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore
from parlay_kit.projector import ConsumedEvent, Projector, UnitOfWork
from parlay_kit.relay import OutboxRelay
from parlay_kit.settings import KafkaSettings

SEEN_TABLE = Migration(
    "test_seen",
    """CREATE TABLE {schema}.seen (
           event_id uuid PRIMARY KEY, aggregate_id text NOT NULL, seq bigserial,
           applied_at timestamptz DEFAULT now())""",
)


async def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def event(aggregate: str, topic: str, channel: str = "whatsapp", tenant: str = "t1") -> NewEvent:
    return NewEvent(
        event_id=new_event_id(),
        tenant_id=tenant,
        aggregate_type="channel_account",
        aggregate_id=aggregate,
        payload=ChannelAccountCreated(channel_account_id=aggregate, channel=channel),
        occurred_at=datetime.now(UTC),
        topic=topic,
    )


class RecordingHandler:
    """Inserts one row per event; raises for channel 'poison'; can be made to block."""

    def __init__(self, schema: str, echo_topic: str | None = None) -> None:
        self.schema = schema
        self.echo_topic = echo_topic
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def handle(self, uow: UnitOfWork, consumed: ConsumedEvent) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if consumed.payload.channel == "poison":
            raise ValueError("this event can never be applied")
        await uow.conn.execute(
            f"INSERT INTO {self.schema}.seen (event_id, aggregate_id) VALUES ($1, $2)",
            consumed.event_id,
            consumed.envelope.aggregate_id,
        )
        if self.echo_topic:
            uow.emit(event(f"echo-{consumed.envelope.aggregate_id}", self.echo_topic))


@pytest.fixture
async def topic(kafka_bootstrap) -> str:
    name = f"test.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 3, 1)])
    await admin.close()
    return name


@pytest.fixture
async def service(database_url, fresh_schema, kafka_bootstrap):
    pool = await create_pool(database_url, fresh_schema)
    async with pool.acquire() as conn:
        await migrate(conn, fresh_schema, [*EVENT_STORE_MIGRATIONS, SEEN_TABLE])
    stop = asyncio.Event()
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    relay = OutboxRelay(database_url, fresh_schema, kafka, safety_poll_seconds=0.5)
    relay_task = asyncio.create_task(relay.run(stop))
    store = EventStore(fresh_schema, source="test")
    yield pool, store, kafka, relay
    stop.set()
    await asyncio.wait_for(relay_task, 10)
    await pool.close()


async def append(pool, store, events):
    async with pool.acquire() as conn, conn.transaction():
        return await store.append(conn, events)


async def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 20.0):
    # No consumer group: a probe assigns itself every partition (no rebalance wait).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    partitions = None
    while not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    from aiokafka import TopicPartition

    consumer.assign([TopicPartition(topic, p) for p in partitions])
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def start_projector(pool, schema, kafka, store, topic, handler, name="recorder"):
    projector = Projector(
        name=name,
        service="test",
        topics=[topic],
        handler=handler,
        pool=pool,
        schema=schema,
        kafka=kafka,
        store=store,
        max_attempts=2,
        retry_backoff_seconds=0.01,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    return projector, stop, task


async def seen_count(pool, schema) -> int:
    return await pool.fetchval(f"SELECT count(*) FROM {schema}.seen")


async def test_relay_publishes_in_store_order_with_envelope_headers(
    service, topic, kafka_bootstrap
):
    pool, store, _kafka, _relay = service
    stored = await append(pool, store, [event("same-key", topic) for _ in range(50)])
    records = await consume_all(kafka_bootstrap, topic, 50)
    assert [r.headers[0][1].decode() for r in records] == [s.event_id for s in stored]
    assert {r.key for r in records} == {b"same-key"}
    headers = dict(records[0].headers)
    assert headers["ce_type"] == b"parlay.gateway.v1.ChannelAccountCreated"


async def test_projector_applies_each_event_once_and_stores_offsets(
    service, topic, fresh_schema, kafka_bootstrap
):
    pool, store, kafka, _relay = service
    echo_topic = f"{topic}.echo"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(echo_topic, 1, 1)])
    await admin.close()
    await append(pool, store, [event(f"agg-{i % 7}", topic) for i in range(300)])
    projector, stop, task = start_projector(
        pool, fresh_schema, kafka, store, topic, RecordingHandler(fresh_schema, echo_topic)
    )
    await wait_for(lambda: _eq(pool, fresh_schema, 300))
    offsets = await projector.stored_offsets()
    assert sum(offsets.values()) == 300
    # Emitted events went to the store in the same transaction and on to Kafka.
    assert len(await consume_all(kafka_bootstrap, echo_topic, 300)) == 300
    # The stored offsets are mirrored into Kafka's group offsets (for lag-based autoscaling).
    await wait_for(
        lambda: _kafka_group_offsets(kafka_bootstrap, f"{fresh_schema}.recorder", offsets)
    )
    stop.set()
    await task


async def _kafka_group_offsets(bootstrap: str, group: str, expected: dict) -> bool:
    from aiokafka import TopicPartition

    # A member of no generation (it never subscribes) can still read the group's offsets.
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await reader.start()
    try:
        committed = {tp: await reader.committed(TopicPartition(*tp)) for tp in expected}
    finally:
        await reader.stop()
    return committed == expected


async def _eq(pool, schema, n):
    return await seen_count(pool, schema) == n


async def test_killed_consumer_resumes_without_loss_or_duplicates(service, topic, fresh_schema):
    pool, store, kafka, _relay = service
    await append(pool, store, [event(f"k{i}", topic) for i in range(100)])
    handler = RecordingHandler(fresh_schema)
    projector, stop, task = start_projector(pool, fresh_schema, kafka, store, topic, handler)
    await wait_for(lambda: _eq(pool, fresh_schema, 100))
    # Kill the next consumer mid-batch: the handler is blocked inside the transaction.
    handler.gate = asyncio.Event()
    handler.entered.clear()
    await append(pool, store, [event(f"m{i}", topic) for i in range(100)])
    await wait_for(handler.entered.is_set)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await seen_count(pool, fresh_schema) == 100
    await append(pool, store, [event(f"n{i}", topic) for i in range(100)])
    _projector, stop2, task2 = start_projector(
        pool, fresh_schema, kafka, store, topic, RecordingHandler(fresh_schema)
    )
    await wait_for(lambda: _eq(pool, fresh_schema, 300))
    stop2.set()
    await task2
    assert await pool.fetchval(f"SELECT count(DISTINCT event_id) FROM {fresh_schema}.seen") == 300


async def test_redelivered_events_are_skipped_by_event_id(
    service, topic, fresh_schema, kafka_bootstrap
):
    pool, store, kafka, relay = service
    stored = await append(pool, store, [event(f"r{i}", topic) for i in range(20)])
    projector, stop, task = start_projector(
        pool, fresh_schema, kafka, store, topic, RecordingHandler(fresh_schema)
    )
    await wait_for(lambda: _eq(pool, fresh_schema, 20))
    # Republish the same envelopes (as a relay does after a crash before recording progress).
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    rows = await pool.fetch(
        f"SELECT aggregate_id, envelope FROM {fresh_schema}.events ORDER BY position"
    )
    for row in rows:
        await producer.send_and_wait(topic, value=bytes(row[1]), key=row[0].encode())
    await producer.stop()
    end = {tp: o for tp, o in (await _end_offsets(kafka_bootstrap, topic)).items()}
    await wait_for(lambda: _offsets_reached(projector, end))
    assert await seen_count(pool, fresh_schema) == len(stored)
    assert projector.stats.duplicates >= 20
    stop.set()
    await task


async def _end_offsets(bootstrap, topic):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    if not tps:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    ends = await consumer.end_offsets(tps)
    await consumer.stop()
    return {(tp.topic, tp.partition): o for tp, o in ends.items() if o > 0}


async def _offsets_reached(projector, end) -> bool:
    stored = await projector.stored_offsets()
    return all(stored.get(tp, 0) >= o for tp, o in end.items())


async def test_poison_event_goes_to_dead_letter_topic_and_partition_keeps_flowing(
    service, topic, fresh_schema, kafka_bootstrap
):
    pool, store, kafka, _relay = service
    events = [event("p", topic) for _ in range(5)]
    poison = event("p", topic, channel="poison")
    events.insert(2, poison)
    await append(pool, store, events)
    garbage = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await garbage.start()
    await garbage.send_and_wait(topic, value=b"\xff\x00not an envelope", key=b"p")
    unknown = any_pb2.Any(type_url="type.googleapis.com/parlay.future.v9.Unheard", value=b"")
    from parlay.envelope.v1.envelope_pb2 import Envelope

    await garbage.send_and_wait(
        topic, value=encode(Envelope(event_id=new_event_id(), payload=unknown)), key=b"p"
    )
    await garbage.stop()
    await append(pool, store, [event("p", topic) for _ in range(3)])
    projector, stop, task = start_projector(
        pool, fresh_schema, kafka, store, topic, RecordingHandler(fresh_schema)
    )
    await wait_for(lambda: _eq(pool, fresh_schema, 8))
    dead = await consume_all(kafka_bootstrap, "parlay.test.dlq.v1", 2)
    reasons = {dict(r.headers)["dlq_reason"].decode() for r in dead}
    assert any("can never be applied" in r for r in reasons)
    assert any(r.startswith("undecodable") for r in reasons)
    assert {dict(r.headers)["ce_id"].decode() for r in dead} >= {poison.event_id}
    assert projector.stats.skipped_unknown == 1
    stop.set()
    await task


async def test_relay_republishes_everything_to_a_new_broker(
    database_url, fresh_schema, kafka_bootstrap, topic
):
    """The memory broker starts empty after a restart: a different cluster id means the relay's
    recorded position belongs to a log that is gone, so it republishes from the start."""
    pool = await create_pool(database_url, fresh_schema)
    async with pool.acquire() as conn:
        await migrate(conn, fresh_schema, EVENT_STORE_MIGRATIONS)
        await conn.execute(
            f"INSERT INTO {fresh_schema}.relay_progress (relay, cluster_id, position) VALUES ('outbox', 'gone', 999)"
        )
    store = EventStore(fresh_schema, source="test")
    await append(pool, store, [event("z", topic) for _ in range(10)])
    stop = asyncio.Event()
    relay = OutboxRelay(database_url, fresh_schema, KafkaSettings(bootstrap=kafka_bootstrap))
    task = asyncio.create_task(relay.run(stop))
    assert len(await consume_all(kafka_bootstrap, topic, 10)) == 10
    stop.set()
    await task
    await pool.close()


async def test_log_end_offsets_counts_every_record_of_the_last_batch(kafka_bootstrap, topic):
    """Tansu reports the last batch's base offset + 1 as the end; we must not stop early."""
    from aiokafka import TopicPartition

    from parlay_kit.kafka import log_end_offsets

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)
    await producer.start()
    acks = [await producer.send(topic, b"v", key=b"same", partition=0) for _ in range(5)]
    await asyncio.gather(*acks)
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    ends = await log_end_offsets(consumer, tps)
    await consumer.stop()
    assert ends == {tps[0]: 5, tps[1]: 0, tps[2]: 0}
