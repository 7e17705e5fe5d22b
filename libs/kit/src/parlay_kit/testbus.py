"""Helpers for service tests that talk to the real broker and Postgres (used by every service's
tests/conftest.py; the fixtures themselves come from the `parlay_kit.testing` plugin).

* `wait_until`: poll a condition with a deadline — a condition decides, never a sleep.
* `TopicBus`: a private set of topics on the shared broker, a producer that sends events as a
  service's relay would, and probes that know where a partition really ends (Tansu reports the
  last batch's base offset + 1 as the end, so `end_offsets()` cannot say "caught up").
* `Runtimes`: service runtimes (store, relay, migrations) on test schemas, closed afterwards.
* `create_schema` / `drop_schema`: a schema of one's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from parlay_kit.broker import ensure_topics
from parlay_kit.db import Migration
from parlay_kit.envelope import NewEvent, encode, utcnow
from parlay_kit.kafka import log_end_offsets
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.settings import ServiceSettings
from parlay_kit.testing import unique_name


async def wait_until(
    condition: Callable[[], Awaitable[object] | object], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll `condition` (sync or async) until it is truthy; AssertionError after `timeout`."""
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


@dataclass
class TopicBus:
    """Topics of a test module (`topics[kind]` = a unique topic name) and their producer."""

    bootstrap: str
    topics: dict[str, str]
    producer: AIOKafkaProducer
    sent: list[NewEvent] = field(default_factory=list)

    wait_until = staticmethod(wait_until)

    @staticmethod
    async def wait_published(runtime: ServiceRuntime, timeout: float = 30.0) -> None:
        """The outbox relay has published every event in the runtime's store."""
        assert runtime.pool is not None and runtime.relay is not None
        last = await runtime.pool.fetchval(
            f"SELECT coalesce(max(position), 0) FROM {runtime.schema}.events"
        )
        await runtime.relay.wait_published(last, timeout)

    async def produce(
        self,
        topic: str,
        event: NewEvent,
        *,
        source: str = "gateway",
        traceparent: str = "",
        event_type: str = "",
    ) -> None:
        """Send `event` as `source`'s relay would (envelope, key, ce_* headers). `event_type`
        overrides the envelope's type (to play a producer this repository has no class for)."""
        envelope = event.to_envelope(source, event.aggregate_version or 1, utcnow())
        if event_type:
            envelope.event_type = event_type
        headers = [("ce_id", event.event_id.encode()), ("ce_type", envelope.event_type.encode())]
        if traceparent:
            headers.append(("traceparent", traceparent.encode()))
        await self.producer.send_and_wait(
            topic, value=encode(envelope), key=event.aggregate_id.encode(), headers=headers
        )
        self.sent.append(event)

    async def end_offsets(self, *topics: str) -> dict[tuple[str, int], int]:
        """The real end of every partition of `topics`."""
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

    async def read_all(self, topic: str) -> list[ConsumerRecord]:
        """Every record on the topic right now (no consumer group), by partition and offset."""
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
            records: list[ConsumerRecord] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
                positions = [await consumer.position(TopicPartition(t, p)) for t, p in ends]
                if all(pos >= end for pos, end in zip(positions, ends.values(), strict=True)):
                    # A record read twice (a fetch racing the seek) counts once.
                    unique = {(r.partition, r.offset): r for r in records}
                    return [unique[k] for k in sorted(unique)]
            raise AssertionError(f"could not read {topic} to its end")
        finally:
            await consumer.stop()


@contextlib.asynccontextmanager
async def topic_bus(
    bootstrap: str, kinds: Sequence[str], *, partitions: int = 3
) -> AsyncIterator[TopicBus]:
    """Fresh topics named `<unique>.<kind>` for each kind, and a producer."""
    suffix = unique_name("t")
    names = {kind: f"{suffix}.{kind}" for kind in kinds}
    await ensure_topics(bootstrap, list(names.values()), partitions=partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    try:
        yield TopicBus(bootstrap, names, producer)
    finally:
        await producer.stop()


async def create_schema(database_url: str) -> str:
    name = unique_name("t")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    return name


async def drop_schema(database_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


#: How to open a runtime of a service on a schema: its settings for the schema, its migrations.
RuntimeRecipe = tuple[Callable[[str], ServiceSettings], Sequence[Migration]]


class Runtimes:
    """Service runtimes opened on test schemas; whatever is still open is closed by `close`."""

    def __init__(self, recipes: dict[str, RuntimeRecipe], default: str) -> None:
        self.recipes = recipes
        self.default = default
        self._opened: list[ServiceRuntime] = []
        self._started: list[ServiceRuntime] = []

    async def open(self, schema: str, service: str | None = None) -> ServiceRuntime:
        settings_for, migrations = self.recipes[service or self.default]
        runtime = ServiceRuntime(settings_for(schema), migrations=list(migrations))
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


@dataclass(frozen=True)
class TenantKeys:
    """Two tenants with an API key each (servicer tests: the caller and someone else)."""

    tenant: str
    key: str
    other: str
    other_key: str


async def two_tenants(conn: asyncpg.Connection, schema: str) -> TenantKeys:
    """Migrate a tenancy schema into `schema` and create two tenants with a key each."""
    from parlay_kit import tenancy

    await tenancy.migrate(conn, schema)
    tenant = (
        await tenancy.create_tenant(conn, "Shop", unique_name("shop"), schema=schema)
    ).tenant_id
    other = (
        await tenancy.create_tenant(conn, "Other", unique_name("other"), schema=schema)
    ).tenant_id
    key = (await tenancy.create_api_key(conn, tenant, schema=schema)).key
    other_key = (await tenancy.create_api_key(conn, other, schema=schema)).key
    return TenantKeys(tenant, key, other, other_key)
