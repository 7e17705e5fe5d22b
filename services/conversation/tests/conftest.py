"""Fixtures for the conversation tests: a topic set of its own on the session's real broker, the
service's runtime (event store, outbox relay, migrations) on a fresh schema, and helpers that
produce gateway events and wait on stored offsets — never on sleeps.

`kafka_bootstrap`, `database_url` and `fresh_schema` come from the `parlay_kit.testing` plugin.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from google.protobuf import struct_pb2

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_conversation.readmodel import MIGRATIONS as CONVERSATION_MIGRATIONS
from parlay_conversation.settings import ConversationSettings
from parlay_kit.envelope import NewEvent, deterministic_event_id
from parlay_kit.settings import KafkaSettings, ServiceSettings
from parlay_kit.testbus import Runtimes, TopicBus, create_schema, drop_schema, topic_bus
from parlay_kit.testing import unique_name
from parlay_profile.readmodel import MIGRATIONS as PROFILE_MIGRATIONS
from parlay_profile.settings import ProfileSettings


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


KINDS = ("inbound", "profile", "conversation", "orders", "payments")


class Bus(TopicBus):
    """The conversation tests' topics on the shared broker, with the kit's producer and offset
    probes (test modules cannot import conftest, so helpers hang off this fixture object)."""

    message_received = staticmethod(message_received)
    identity_linked = staticmethod(identity_linked)
    status_updated = staticmethod(status_updated)
    outbound_sent = staticmethod(outbound_sent)
    outbound_failed = staticmethod(outbound_failed)
    profiles_merged = staticmethod(profiles_merged)
    consent_changed = staticmethod(consent_changed)
    foreign_event = staticmethod(foreign_event)

    @property
    def inbound(self) -> str:
        return self.topics["inbound"]

    @property
    def profile(self) -> str:
        return self.topics["profile"]

    @property
    def conversation(self) -> str:
        return self.topics["conversation"]

    @property
    def orders(self) -> str:
        return self.topics["orders"]

    @property
    def payments(self) -> str:
        return self.topics["payments"]

    @property
    def timeline_topics(self) -> list[str]:
        return [self.inbound, self.profile, self.orders, self.payments]


@contextlib.asynccontextmanager
async def _bus(bootstrap: str) -> AsyncIterator[Bus]:
    async with topic_bus(bootstrap, KINDS) as b:
        yield Bus(b.bootstrap, b.topics, b.producer)


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


@pytest.fixture(scope="module")
async def module_schema(database_url: str) -> AsyncIterator[str]:
    name = await create_schema(database_url)
    try:
        yield name
    finally:
        await drop_schema(database_url, name)


@pytest.fixture
async def second_schema(database_url: str) -> AsyncIterator[str]:
    """Another empty schema (for rebuilding read models from the log)."""
    name = await create_schema(database_url)
    try:
        yield name
    finally:
        await drop_schema(database_url, name)


def _settings(cls: type[ServiceSettings], database_url: str, bootstrap: str):
    return lambda schema: cls(
        database_url=database_url,
        db_schema=schema,
        kafka=KafkaSettings(bootstrap=bootstrap),
        max_event_attempts=2,
    )


def _runtimes(database_url: str, bootstrap: str) -> Runtimes:
    return Runtimes(
        {
            "conversation": (
                _settings(ConversationSettings, database_url, bootstrap),
                CONVERSATION_MIGRATIONS,
            ),
            "profile": (_settings(ProfileSettings, database_url, bootstrap), PROFILE_MIGRATIONS),
        },
        default="conversation",
    )


@pytest.fixture
async def runtimes(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Runtimes]:
    r = _runtimes(database_url, kafka_bootstrap)
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture(scope="module")
async def module_runtimes(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Runtimes]:
    r = _runtimes(database_url, kafka_bootstrap)
    try:
        yield r
    finally:
        await r.close()
