"""The pipelined group commit, the relay's progress record and request traceparents (hot paths
of webhook ingest)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from parlay.gateway.v1.gateway_events_pb2 import ChannelAccountCreated
from parlay_kit import telemetry
from parlay_kit.db import create_pool, migrate
from parlay_kit.envelope import NewEvent, new_event_id
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore, GroupCommitter
from parlay_kit.relay import OutboxRelay
from parlay_kit.settings import KafkaSettings


def account_event(account: str, *, topic: str = "parlay.gateway.webhooks.v1") -> NewEvent:
    return NewEvent(
        event_id=new_event_id(),
        tenant_id="t1",
        aggregate_type="channel_account",
        aggregate_id=account,
        payload=ChannelAccountCreated(channel_account_id=account, channel="whatsapp"),
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        topic=topic,
    )


@pytest.fixture
async def store_pool(database_url: str, fresh_schema: str):
    pool = await create_pool(database_url, fresh_schema)
    async with pool.acquire() as conn:
        await migrate(conn, fresh_schema, EVENT_STORE_MIGRATIONS)
    yield pool
    await pool.close()


async def test_pipelined_groups_and_a_concurrent_writer_keep_versions_and_positions_in_order(
    store_pool, fresh_schema
):
    """Several workers' transactions overlap, and another writer (a projector's transaction)
    appends to the same aggregate meanwhile: versions stay gap-free and unique, and positions
    follow versions (commit order = lock order)."""
    store = EventStore(fresh_schema, source="gateway")
    committer = GroupCommitter(store_pool, store, pipeline=3, max_events=7)
    await committer.start()

    async def waves() -> list[int]:
        versions = []
        for _ in range(10):
            results = await asyncio.gather(
                *(committer.append([account_event("acc")]) for _ in range(20))
            )
            versions += [r[0].envelope.aggregate_version for r in results]
        return versions

    async def other_writer() -> int:
        for _ in range(20):
            async with store_pool.acquire() as conn, conn.transaction():
                await store.append(conn, [account_event("acc")])
            await asyncio.sleep(0)
        return 20

    versions, others = await asyncio.gather(waves(), other_writer())
    await committer.close()
    assert len(set(versions)) == 200
    rows = await store_pool.fetch(
        f"SELECT aggregate_version FROM {fresh_schema}.events WHERE aggregate_id = 'acc' "
        "ORDER BY position"
    )
    assert [r[0] for r in rows] == list(range(1, 200 + others + 1))


async def test_an_append_given_up_by_its_caller_is_not_stored_and_others_are(
    store_pool, fresh_schema
):
    store = EventStore(fresh_schema, source="gateway")
    committer = GroupCommitter(store_pool, store)
    await committer.start()
    # Hold the append lock so the committer's next group waits; then give up on one append.
    async with store_pool.acquire() as conn, conn.transaction():
        await store.append(conn, [account_event("held")])
        given_up = asyncio.create_task(committer.append([account_event("acc")]))
        kept = asyncio.create_task(committer.append([account_event("acc")]))
        await asyncio.sleep(0.05)
        given_up.cancel()
    [stored] = await asyncio.wait_for(kept, 10)
    await committer.close()
    assert not stored.duplicate
    # Every append of that group made it (the cancelled one was taken before it was cancelled,
    # or skipped): never a failure for the others, never a version gap.
    rows = await store_pool.fetch(
        f"SELECT aggregate_version FROM {fresh_schema}.events WHERE aggregate_id = 'acc' "
        "ORDER BY position"
    )
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))


async def test_committer_recovers_after_a_connection_is_lost(store_pool, fresh_schema):
    store = EventStore(fresh_schema, source="gateway")
    committer = GroupCommitter(store_pool, store)
    await committer.start()
    await committer.append([account_event("acc")])
    # Kill every backend of this pool: the next group fails (its callers get the error) or
    # gets a fresh connection; either way the committer keeps serving.
    async with store_pool.acquire() as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
            fresh_schema,
        )
    for _ in range(3):
        try:
            await committer.append([account_event("acc")])
        except Exception:  # noqa: BLE001 - a lost connection may fail one group
            continue
        break
    [stored] = await committer.append([account_event("acc")])
    await committer.close()
    assert stored.position is not None


async def test_relay_records_its_progress_after_publishing(
    database_url, fresh_schema, kafka_bootstrap
):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    pool = await create_pool(database_url, fresh_schema)
    async with pool.acquire() as conn:
        await migrate(conn, fresh_schema, EVENT_STORE_MIGRATIONS)
    store = EventStore(fresh_schema, source="test")
    committer = GroupCommitter(pool, store)
    await committer.start()
    stop = asyncio.Event()
    relay = OutboxRelay(
        database_url, fresh_schema, KafkaSettings(bootstrap=kafka_bootstrap), name="outbox"
    )
    task = asyncio.create_task(relay.run(stop))
    try:
        stored = [await committer.append([account_event("a", topic=topic)]) for _ in range(5)]
        last = max(s[0].position for s in stored if s[0].position is not None)
        await relay.wait_published(last)

        async def recorded() -> int:
            return int(
                await pool.fetchval(
                    f"SELECT coalesce(max(position), 0) FROM {fresh_schema}.relay_progress"
                )
            )

        for _ in range(200):  # recorded with the read that follows the published batch
            if await recorded() >= last:
                break
            await asyncio.sleep(0.02)
        assert await recorded() == last
    finally:
        stop.set()
        await task
        await committer.close()
        await pool.close()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        records = []
        while len(records) < 5:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    assert len(records) == 5


def test_request_traceparent_continues_a_valid_caller_context() -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert (
        telemetry.request_traceparent(f"00-{trace_id}-{span_id}-01")
        == f"00-{trace_id}-{span_id}-01"
    )
    # Only the sampled bit carries over; a later version's extra fields are dropped.
    assert (
        telemetry.request_traceparent(f"01-{trace_id}-{span_id}-03-extra")
        == f"00-{trace_id}-{span_id}-01"
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # invalid trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # invalid span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # v00 has four fields
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    ],
)
def test_request_traceparent_starts_a_new_trace_otherwise(header: str | None) -> None:
    fresh = telemetry.request_traceparent(header)
    other = telemetry.request_traceparent(header)
    assert fresh != other
    # What the W3C propagator accepts, and a new trace id each time.
    ctx = telemetry.context_from_traceparent(fresh)
    assert telemetry.trace_id_of(ctx) == fresh.split("-")[1]
    assert header is None or fresh.split("-")[1] not in header
    assert fresh.endswith("-01")
