"""Event store: idempotent appends, optimistic concurrency, store-assigned versions, group commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from parlay.gateway.v1.gateway_events_pb2 import ChannelAccountCreated
from parlay_kit.db import create_pool, migrate
from parlay_kit.envelope import NewEvent, decode, deterministic_event_id, new_event_id, unpack
from parlay_kit.errors import ConcurrencyError
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore, GroupCommitter


def account_event(
    account: str, *, version: int | None = None, event_id: str | None = None
) -> NewEvent:
    return NewEvent(
        event_id=event_id or new_event_id(),
        tenant_id="t1",
        aggregate_type="channel_account",
        aggregate_id=account,
        payload=ChannelAccountCreated(channel_account_id=account, channel="whatsapp"),
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        topic="parlay.gateway.webhooks.v1",
        aggregate_version=version,
    )


@pytest.fixture
async def store_pool(database_url: str, fresh_schema: str):
    pool = await create_pool(database_url, fresh_schema)
    async with pool.acquire() as conn:
        await migrate(conn, fresh_schema, EVENT_STORE_MIGRATIONS)
    yield pool
    await pool.close()


async def test_append_assigns_versions_and_round_trips_the_envelope(store_pool, fresh_schema):
    store = EventStore(fresh_schema, source="gateway")
    async with store_pool.acquire() as conn, conn.transaction():
        stored = await store.append(
            conn, [account_event("a1"), account_event("a1"), account_event("b")]
        )
    assert [s.envelope.aggregate_version for s in stored] == [1, 2, 1]
    assert stored[0].position < stored[1].position < stored[2].position
    async with store_pool.acquire() as conn:
        stream = await store.load_stream(conn, "a1")
    assert [e.aggregate_version for e in stream] == [1, 2]
    assert stream[0].source == "gateway"
    assert stream[0].event_type == "parlay.gateway.v1.ChannelAccountCreated"
    assert unpack(stream[0]).channel_account_id == "a1"
    raw = await store_pool.fetchval(f"SELECT envelope FROM {fresh_schema}.events LIMIT 1")
    assert decode(raw).event_id == stored[0].event_id


async def test_same_event_id_is_stored_once(store_pool, fresh_schema):
    store = EventStore(fresh_schema, source="gateway")
    event_id = deterministic_event_id("whatsapp", "wamid.1", "received")
    for _ in range(2):
        async with store_pool.acquire() as conn, conn.transaction():
            result = await store.append(conn, [account_event("a1", event_id=event_id)])
    assert result[0].duplicate
    assert await store_pool.fetchval(f"SELECT count(*) FROM {fresh_schema}.events") == 1


async def test_taken_version_raises_concurrency_error_and_keeps_the_transaction_usable(
    store_pool, fresh_schema
):
    store = EventStore(fresh_schema, source="profile")
    async with store_pool.acquire() as conn, conn.transaction():
        await store.append(conn, [account_event("c1", version=1)])
    async with store_pool.acquire() as conn, conn.transaction():
        with pytest.raises(ConcurrencyError):
            await store.append(conn, [account_event("c1", version=1)])
        await store.append(conn, [account_event("c1", version=2)])
    assert (
        await store_pool.fetchval(
            f"SELECT max(aggregate_version) FROM {fresh_schema}.events WHERE aggregate_id = 'c1'"
        )
        == 2
    )


async def test_append_outside_a_transaction_is_refused(store_pool, fresh_schema):
    store = EventStore(fresh_schema, source="gateway")
    async with store_pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            await store.append(conn, [account_event("x")])


async def test_group_commit_shares_commits_between_concurrent_appenders(store_pool, fresh_schema):
    store = EventStore(fresh_schema, source="gateway")
    committer = GroupCommitter(store_pool, store)
    await committer.start()
    commits_before = await store_pool.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    results = await asyncio.gather(*(committer.append([account_event("acc")]) for _ in range(200)))
    await committer.close()
    assert all(len(r) == 1 and not r[0].duplicate for r in results)
    versions = sorted(r[0].envelope.aggregate_version for r in results)
    assert versions == list(range(1, 201))
    # 200 appends became durable in far fewer than 200 transactions.
    commits_after = await store_pool.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    assert commits_after - commits_before < 100


async def test_group_commit_fails_every_waiter_when_the_store_is_down(database_url, fresh_schema):
    pool = await create_pool(database_url, fresh_schema)
    async with pool.acquire() as conn:
        await migrate(conn, fresh_schema, EVENT_STORE_MIGRATIONS)
    committer = GroupCommitter(pool, EventStore(fresh_schema, source="gateway"))
    await committer.start()
    await pool.close()
    with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresError, OSError)):
        await committer.append([account_event("a")])
    await committer.close()
