"""Fixtures for the conversation tests: a topic set of its own on the session's real broker, the
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
from google.protobuf import struct_pb2

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_conversation.readmodel import MIGRATIONS as CONVERSATION_MIGRATIONS
from parlay_conversation.settings import ConversationSettings
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, encode, utcnow
from parlay_kit.kafka import log_end_offsets
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.settings import KafkaSettings, ServiceSettings
from parlay_kit.testing import unique_name
from parlay_profile.readmodel import MIGRATIONS as PROFILE_MIGRATIONS
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


def identity_linked(
    *,
    tenant: str,
    customer_id: str,
    address: str,
    channel: str = "whatsapp",
    version: int = 2,
    at: datetime | None = None,
) -> NewEvent:
    """An IdentityLinked as the profile service emits it."""
    return NewEvent(
        event_id=deterministic_event_id("test-link", tenant, channel, address, customer_id),
        tenant_id=tenant,
        aggregate_type="customer",
        aggregate_id=customer_id,
        payload=pe.IdentityLinked(
            customer_id=customer_id,
            identity=pe.Identity(channel=channel, address=address),
            evidence=pe.Evidence(rule="first_contact", actor="system"),
        ),
        occurred_at=at or datetime.now(UTC),
        topic="",
        aggregate_version=version,
    )


def _contact(tenant: str, account: str, address: str) -> str:
    del tenant
    return f"{account}:{address}"


def status_updated(
    *,
    tenant: str,
    provider_message_id: str,
    status: int,
    address: str,
    channel: str = "whatsapp",
    account: str = "acc-1",
    at: datetime | None = None,
    error_code: str = "",
    error_title: str = "",
) -> NewEvent:
    """A MessageStatusUpdated as the gateway's normalizer emits it."""
    at = at or datetime.now(UTC)
    payload = ge.MessageStatusUpdated(
        channel=channel,
        channel_account_id=account,
        provider_message_id=provider_message_id,
        recipient=ge.ChannelAddress(channel=channel, address=address),
        status=status,
        error_code=error_code,
        error_title=error_title,
    )
    payload.status_at.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
    return NewEvent(
        event_id=deterministic_event_id(
            channel, account, provider_message_id, "status", str(status)
        ),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=_contact(tenant, account, address),
        payload=payload,
        occurred_at=at,
        topic="",
    )


def outbound_sent(
    *,
    tenant: str,
    message_id: str,
    conversation_id: str,
    provider_message_id: str,
    address: str,
    channel: str = "whatsapp",
    account: str = "acc-1",
    at: datetime | None = None,
) -> NewEvent:
    """The gateway's OutboundMessageSent (after the provider accepted the message)."""
    at = at or datetime.now(UTC)
    payload = ge.OutboundMessageSent(
        request_event_id=deterministic_event_id(message_id, "requested"),
        message_id=message_id,
        conversation_id=conversation_id,
        channel=channel,
        channel_account_id=account,
        recipient=ge.ChannelAddress(channel=channel, address=address),
        provider_message_id=provider_message_id,
        attempts=1,
    )
    payload.sent_at.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
    return NewEvent(
        event_id=deterministic_event_id("outbound", message_id, "sent"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=_contact(tenant, account, address),
        payload=payload,
        occurred_at=at,
        topic="",
    )


def outbound_failed(
    *,
    tenant: str,
    message_id: str,
    conversation_id: str,
    address: str,
    error_code: str,
    error_message: str,
    channel: str = "whatsapp",
    account: str = "acc-1",
    at: datetime | None = None,
) -> NewEvent:
    at = at or datetime.now(UTC)
    payload = ge.OutboundMessageFailed(
        request_event_id=deterministic_event_id(message_id, "requested"),
        message_id=message_id,
        conversation_id=conversation_id,
        channel=channel,
        channel_account_id=account,
        recipient=ge.ChannelAddress(channel=channel, address=address),
        error_code=error_code,
        error_message=error_message,
        attempts=3,
    )
    payload.failed_at.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
    return NewEvent(
        event_id=deterministic_event_id("outbound", message_id, "failed"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=_contact(tenant, account, address),
        payload=payload,
        occurred_at=at,
        topic="",
    )


def profiles_merged(
    *, tenant: str, survivor: str, merged: str, merge_id: str, undo: bool = False
) -> NewEvent:
    """Profile's ProfilesMerged (or, with undo, ProfilesUnmerged) on the survivor's stream."""
    cls = pe.ProfilesUnmerged if undo else pe.ProfilesMerged
    return NewEvent(
        event_id=deterministic_event_id("test-merge", merge_id, "undo" if undo else "do"),
        tenant_id=tenant,
        aggregate_type="customer",
        aggregate_id=survivor,
        payload=cls(
            merge_id=merge_id,
            survivor_customer_id=survivor,
            merged_customer_id=merged,
            evidence=pe.Evidence(rule="manual", actor="agent:ana"),
        ),
        occurred_at=datetime.now(UTC),
        topic="",
    )


def consent_changed(
    *,
    tenant: str,
    customer_id: str,
    channel: str,
    purpose: str,
    granted: bool,
    at: datetime | None = None,
) -> NewEvent:
    return NewEvent(
        event_id=deterministic_event_id(
            "test-consent", tenant, customer_id, channel, purpose, str(granted)
        ),
        tenant_id=tenant,
        aggregate_type="customer",
        aggregate_id=customer_id,
        payload=pe.ConsentChanged(
            customer_id=customer_id,
            channel=channel,
            purpose=purpose,
            granted=granted,
            source="keyword",
            evidence=pe.Evidence(rule="keyword", actor="system", note="STOP"),
        ),
        occurred_at=at or datetime.now(UTC),
        topic="",
    )


def foreign_event(
    *, tenant: str, event_type: str, aggregate_id: str, fields: dict, at: datetime | None = None
) -> tuple[NewEvent, str]:
    """An event of a service whose contract has no such message yet (orders, payments): a
    genuine envelope with the event type name, its fields in a google.protobuf.Struct payload.
    Returns the event and the event type to stamp on the envelope."""
    payload = struct_pb2.Struct()
    payload.update(fields)
    return (
        NewEvent(
            event_id=deterministic_event_id("test-foreign", tenant, event_type, aggregate_id),
            tenant_id=tenant,
            aggregate_type=event_type.split(".")[1].rstrip("s"),
            aggregate_id=aggregate_id,
            payload=payload,
            occurred_at=at or datetime.now(UTC),
            topic="",
        ),
        event_type,
    )


@dataclass
class Bus:
    """A private set of topics on the shared broker, with a producer and offset probes (test
    modules cannot import conftest, so helpers hang off this fixture object)."""

    bootstrap: str
    inbound: str
    profile: str
    conversation: str
    orders: str
    payments: str
    producer: AIOKafkaProducer
    sent: list[NewEvent] = field(default_factory=list)

    message_received = staticmethod(message_received)
    identity_linked = staticmethod(identity_linked)
    status_updated = staticmethod(status_updated)
    outbound_sent = staticmethod(outbound_sent)
    outbound_failed = staticmethod(outbound_failed)
    profiles_merged = staticmethod(profiles_merged)
    consent_changed = staticmethod(consent_changed)
    foreign_event = staticmethod(foreign_event)
    wait_until = staticmethod(wait_until)

    @property
    def timeline_topics(self) -> list[str]:
        return [self.inbound, self.profile, self.orders, self.payments]

    @staticmethod
    async def wait_published(runtime: ServiceRuntime, timeout: float = 30.0) -> None:
        """The outbox relay has published every event in the store."""
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
        """The real end of each partition (Tansu reports the last batch's base offset + 1 as
        the end; `log_end_offsets` probes past it)."""
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
    names = [
        f"{suffix}.{kind}" for kind in ("inbound", "profile", "conversation", "orders", "payments")
    ]
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


SERVICES = {
    "conversation": (ConversationSettings, CONVERSATION_MIGRATIONS),
    "profile": (ProfileSettings, PROFILE_MIGRATIONS),
}


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
    """Service runtimes (store, relay, migrations) on given schemas; stopped after the test."""

    def __init__(self, database_url: str, bootstrap: str) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self._opened: list[ServiceRuntime] = []
        self._started: list[ServiceRuntime] = []

    async def open(self, schema: str, service: str = "conversation") -> ServiceRuntime:
        settings_cls, migrations = SERVICES[service]
        settings: ServiceSettings = settings_cls(
            database_url=self.database_url,
            db_schema=schema,
            kafka=KafkaSettings(bootstrap=self.bootstrap),
            max_event_attempts=2,
        )
        runtime = ServiceRuntime(settings, migrations=migrations)
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
