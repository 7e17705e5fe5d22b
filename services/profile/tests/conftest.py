"""Fixtures for the profile tests: a topic set of its own on the session's real broker, the
service's runtime (event store, outbox relay, migrations) on a fresh schema, and helpers that
produce gateway events and wait on stored offsets — never on sleeps.

`kafka_bootstrap`, `database_url` and `fresh_schema` come from the `parlay_kit.testing` plugin.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.envelope import NewEvent, deterministic_event_id
from parlay_kit.settings import KafkaSettings
from parlay_kit.testbus import Runtimes, TopicBus, create_schema, drop_schema, topic_bus
from parlay_kit.testing import unique_name
from parlay_profile.readmodel import MIGRATIONS
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


class Bus(TopicBus):
    """The profile tests' topics (inbound, profile, conversation) on the shared broker, with the
    kit's producer and offset probes (test modules cannot import conftest, so helpers hang off
    this fixture object)."""

    message_received = staticmethod(message_received)

    @property
    def inbound(self) -> str:
        return self.topics["inbound"]

    @property
    def profile(self) -> str:
        return self.topics["profile"]

    @property
    def conversation(self) -> str:
        return self.topics["conversation"]


@contextlib.asynccontextmanager
async def _bus(bootstrap: str) -> AsyncIterator[Bus]:
    async with topic_bus(bootstrap, ("inbound", "profile", "conversation")) as b:
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


def profile_settings(database_url: str, schema: str, bootstrap: str) -> ProfileSettings:
    return ProfileSettings(
        database_url=database_url,
        db_schema=schema,
        kafka=KafkaSettings(bootstrap=bootstrap),
        max_event_attempts=2,
    )


def _runtimes(database_url: str, bootstrap: str) -> Runtimes:
    return Runtimes(
        {"profile": (lambda schema: profile_settings(database_url, schema, bootstrap), MIGRATIONS)},
        default="profile",
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
