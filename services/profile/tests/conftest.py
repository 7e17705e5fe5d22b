"""Fixtures for the profile tests: a topic set of its own on the session's real broker, the
service's runtime (event store, outbox relay, migrations) on a fresh schema, and helpers that
produce gateway events and wait on stored offsets — never on sleeps.

`kafka_bootstrap`, `database_url` and `fresh_schema` come from the `parlay_kit.testing` plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, encode, utcnow
from parlay_kit.kafka import log_end_offsets
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.settings import KafkaSettings
from parlay_kit.testing import unique_name
from parlay_profile.readmodel import MIGRATIONS
from parlay_profile.settings import ProfileSettings


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll a condition with a deadline (a condition, not a sleep, decides)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


def message_received(
    *,
    tenant: str,
    address: str,
    text: str = "hello",
    wamid: str | None = None,
    name: str = "",
    channel: str = "whatsapp",
    account: str = "acc-1",
    at: datetime | None = None,
    event_id: str | None = None,
) -> NewEvent:
    """A MessageReceived as the gateway's normalizer emits it (deterministic event id)."""
    wamid = wamid or unique_name("wamid")
    at = at or datetime.now(UTC)
    msg = ge.MessageReceived(
        channel=channel,
        channel_account_id=account,
        provider_message_id=wamid,
        sender=ge.ChannelAddress(channel=channel, address=address),
        business_address="15550001111",
        sender_display_name=name,
        content=ge.MessageContent(text=ge.TextContent(body=text)),
        sender_phone=address if channel == "whatsapp" else "",
    )
    msg.sent_at.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
    return NewEvent(
        event_id=event_id or deterministic_event_id(channel, account, wamid, "received"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=f"{account}:{address}",
        payload=msg,
        occurred_at=at,
        topic="",
    )


@dataclass
class Bus:
    """A private set of topics on the shared broker, with a producer and offset probes (test
    modules cannot import conftest, so helpers hang off this fixture object)."""

    bootstrap: str
    inbound: str
    profile: str
    conversation: str
    producer: AIOKafkaProducer
    sent: list[NewEvent] = field(default_factory=list)

    message_received = staticmethod(message_received)
    wait_until = staticmethod(wait_until)

    @staticmethod
    async def wait_published(runtime: ServiceRuntime, timeout: float = 30.0) -> None:
        """The outbox relay has published every event in the store."""
        assert runtime.pool is not None and runtime.relay is not None
        last = await runtime.pool.fetchval(
            f"SELECT coalesce(max(position), 0) FROM {runtime.schema}.events"
        )
        await runtime.relay.wait_published(last, timeout)

    async def produce(
        self, topic: str, event: NewEvent, *, source: str = "gateway", traceparent: str = ""
    ) -> None:
        envelope = event.to_envelope(source, event.aggregate_version or 1, utcnow())
        headers = [("ce_id", event.event_id.encode()), ("ce_type", event.event_type.encode())]
        if traceparent:
            headers.append(("traceparent", traceparent.encode()))
        await self.producer.send_and_wait(
            topic, value=encode(envelope), key=event.aggregate_id.encode(), headers=headers
        )
        self.sent.append(event)

    async def end_offsets(self, *topics: str) -> dict[tuple[str, int], int]:
        # The real end of each partition: Tansu reports the last batch's base offset + 1, so a
        # "caught up" check on end_offsets() could pass before the projector applied a batch.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await consumer.start()
        try:
            partitions = []
            for topic in topics:
                ids = consumer.partitions_for_topic(topic)
                while not ids:
                    await consumer._client.force_metadata_update()
                    ids = consumer.partitions_for_topic(topic)
                partitions += [TopicPartition(topic, p) for p in ids]
            consumer.assign(partitions)
            ends = await log_end_offsets(consumer, partitions, probe_timeout_ms=50)
            return {(tp.topic, tp.partition): off for tp, off in ends.items()}
        finally:
            await consumer.stop()

    async def caught_up(self, projector: Projector) -> bool:
        """The projector has durably applied everything on its topics right now."""
        ends = await self.end_offsets(*projector.topics)
        stored = await projector.stored_offsets()
        return all(stored.get(tp, 0) >= end for tp, end in ends.items() if end > 0)

    async def wait_caught_up(self, projector: Projector, timeout: float = 30.0) -> None:
        await wait_until(lambda: self.caught_up(projector), timeout, f"{projector.name} offsets")

    async def read_all(self, topic: str) -> list:
        """Every record on the topic right now (no consumer group)."""
        ends = await self.end_offsets(topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(t, p) for t, p in ends])
            await consumer.seek_to_beginning()
            records = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                    records.extend(batch)
                    del tp
                done = True
                for (t, p), end in ends.items():
                    if await consumer.position(TopicPartition(t, p)) < end:
                        done = False
                if done:
                    return sorted(records, key=lambda r: (r.partition, r.offset))
            raise AssertionError(f"could not read {topic} to its end")
        finally:
            await consumer.stop()


@contextlib.asynccontextmanager
async def _bus(bootstrap: str) -> AsyncIterator[Bus]:
    suffix = unique_name("t")
    names = [f"{suffix}.{kind}" for kind in ("inbound", "profile", "conversation")]
    await ensure_topics(bootstrap, names, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    try:
        yield Bus(bootstrap, *names, producer=producer)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def bus(kafka_bootstrap: str) -> AsyncIterator[Bus]:
    """Topics shared by a module's tests (each test uses its own tenant)."""
    async with _bus(kafka_bootstrap) as b:
        yield b


@pytest.fixture
async def private_bus(kafka_bootstrap: str) -> AsyncIterator[Bus]:
    """Topics of one test alone (for tests that replay whole topics)."""
    async with _bus(kafka_bootstrap) as b:
        yield b


async def _create_schema(database_url: str) -> str:
    name = unique_name("t")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    return name


async def _drop_schema(database_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def module_schema(database_url: str) -> AsyncIterator[str]:
    name = await _create_schema(database_url)
    try:
        yield name
    finally:
        await _drop_schema(database_url, name)


@pytest.fixture
async def second_schema(database_url: str) -> AsyncIterator[str]:
    """Another empty schema (for rebuilding read models from the log)."""
    name = await _create_schema(database_url)
    try:
        yield name
    finally:
        await _drop_schema(database_url, name)


def profile_settings(database_url: str, schema: str, bootstrap: str) -> ProfileSettings:
    return ProfileSettings(
        database_url=database_url,
        db_schema=schema,
        kafka=KafkaSettings(bootstrap=bootstrap),
        max_event_attempts=2,
    )


@pytest.fixture
async def runtimes(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Runtimes]:
    r = Runtimes(database_url, kafka_bootstrap)
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture(scope="module")
async def module_runtimes(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Runtimes]:
    r = Runtimes(database_url, kafka_bootstrap)
    try:
        yield r
    finally:
        await r.close()


class Runtimes:
    """Profile runtimes (store, relay, migrations) on given schemas; stopped after the test."""

    def __init__(self, database_url: str, bootstrap: str) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self._opened: list[ServiceRuntime] = []
        self._started: list[ServiceRuntime] = []

    async def open(self, schema: str) -> ServiceRuntime:
        runtime = ServiceRuntime(
            profile_settings(self.database_url, schema, self.bootstrap), migrations=MIGRATIONS
        )
        await runtime.open()
        self._opened.append(runtime)
        return runtime

    async def start(self, runtime: ServiceRuntime) -> ServiceRuntime:
        await runtime.start()
        self._started.append(runtime)
        return runtime

    async def stop(self, runtime: ServiceRuntime) -> None:
        self._started.remove(runtime)
        self._opened.remove(runtime)
        await runtime.stop()

    async def close(self) -> None:
        for runtime in reversed(self._opened):
            if runtime in self._started:
                await runtime.stop()
            elif runtime.pool is not None:
                if runtime.group_commit is not None:
                    await runtime.group_commit.close()
                await runtime.pool.close()
        self._opened.clear()
        self._started.clear()
