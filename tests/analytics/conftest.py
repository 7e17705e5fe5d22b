"""Fixtures for the analyst tools: a "live" Parlay on private topics — the real profile and
conversation runtimes (event store, outbox relay, projectors) fed with inbound messages — so
exports, rebuilds and `parlay at` run against a log the services really produced.

`kafka_bootstrap`, `database_url` come from the `parlay_kit.testing` plugin. Waiting is on
stored offsets and relay positions, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_conversation.projections import Timeline
from parlay_conversation.readmodel import MIGRATIONS as CONVERSATION_MIGRATIONS
from parlay_conversation.readmodel import ConversationReadModel
from parlay_conversation.settings import ConversationSettings
from parlay_kit.analytics.logreader import end_offsets as true_end_offsets
from parlay_kit.analytics.logreader import make_consumer, topic_partitions
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, encode, utcnow
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.settings import KafkaSettings
from parlay_kit.testbus import wait_until
from parlay_kit.testing import unique_name

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


@dataclass
class Topics:
    webhooks: str
    inbound: str
    profile: str
    conversation: str
    orders: str
    payments: str

    @property
    def all(self) -> list[str]:
        return [
            self.webhooks,
            self.inbound,
            self.profile,
            self.conversation,
            self.orders,
            self.payments,
        ]


TOPIC_KINDS = ("webhooks", "inbound", "profile", "conversation", "orders", "payments")


async def make_topics(bootstrap: str, partitions: int = 3) -> Topics:
    suffix = unique_name("an")
    t = Topics(*(f"{suffix}.{kind}" for kind in TOPIC_KINDS))
    await ensure_topics(bootstrap, t.all, partitions=partitions)
    return t


async def end_offsets(bootstrap: str, *topics: str) -> dict[tuple[str, int], int]:
    """True end offsets (high watermarks): Tansu's ListOffsets answers short (see
    parlay_kit.analytics.logreader.end_offsets)."""
    consumer = make_consumer(bootstrap)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        ends = await true_end_offsets(consumer, tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


def message_received(
    *,
    tenant: str,
    address: str,
    text: str,
    at: datetime,
    name: str = "",
    channel: str = "whatsapp",
    account: str = "acc-1",
    cart: list[tuple[str, int, int]] | None = None,
) -> NewEvent:
    """A MessageReceived exactly as the gateway's normalizer emits it; `cart` (sku, quantity,
    unit price in minor units, MXN) makes it a WhatsApp order message."""
    wamid = unique_name("wamid")
    content = ge.MessageContent(text=ge.TextContent(body=text))
    if cart:
        items = [
            ge.OrderItem(sku=sku, quantity=q, unit_price_minor=price, currency="MXN")
            for sku, q, price in cart
        ]
        content = ge.MessageContent(order=ge.OrderContent(catalog_id="c1", text=text, items=items))
    msg = ge.MessageReceived(
        channel=channel,
        channel_account_id=account,
        provider_message_id=wamid,
        sender=ge.ChannelAddress(channel=channel, address=address),
        business_address="15550001111",
        sender_display_name=name,
        content=content,
        sender_phone=address if channel == "whatsapp" else "",
    )
    msg.sent_at.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
    return NewEvent(
        event_id=deterministic_event_id(channel, account, wamid, "received"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=f"{account}:{address}",
        payload=msg,
        occurred_at=at,
        topic="",
    )


def identity_linked(*, tenant: str, customer_id: str, address: str, channel: str) -> NewEvent:
    return NewEvent(
        event_id=deterministic_event_id("an-link", tenant, channel, address, customer_id),
        tenant_id=tenant,
        aggregate_type="customer",
        aggregate_id=customer_id,
        payload=pe.IdentityLinked(
            customer_id=customer_id,
            identity=pe.Identity(channel=channel, address=address),
            evidence=pe.Evidence(rule="first_contact", actor="system"),
        ),
        occurred_at=T0,
        topic="",
        aggregate_version=2,
    )


@dataclass
class Live:
    """Live services on private topics and fresh schemas."""

    bootstrap: str
    database_url: str
    topics: Topics
    producer: AIOKafkaProducer
    tenant: str = field(default_factory=lambda: unique_name("tenant"))
    runtimes: dict[str, ServiceRuntime] = field(default_factory=dict)
    projectors: dict[str, Projector] = field(default_factory=dict)
    sent: list[NewEvent] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)

    def schema(self, service: str) -> str:
        return self.runtimes[service].schema

    async def produce(self, topic: str, event: NewEvent, *, source: str = "gateway") -> None:
        envelope = event.to_envelope(source, event.aggregate_version or 1, utcnow())
        await self.producer.send_and_wait(
            topic,
            value=encode(envelope),
            key=event.aggregate_id.encode(),
            headers=[("ce_id", event.event_id.encode()), ("ce_type", event.event_type.encode())],
        )
        self.sent.append(event)

    async def produce_many(
        self, topic: str, events: list[NewEvent], source: str = "gateway"
    ) -> None:
        futures = []
        for event in events:
            envelope = event.to_envelope(source, event.aggregate_version or 1, utcnow())
            futures.append(
                await self.producer.send(
                    topic,
                    value=encode(envelope),
                    key=event.aggregate_id.encode(),
                    headers=[("ce_id", event.event_id.encode())],
                )
            )
            self.sent.append(event)
        await asyncio.gather(*futures)

    async def caught_up(self, projector: Projector) -> bool:
        ends = await end_offsets(self.bootstrap, *projector.topics)
        stored = await projector.stored_offsets()
        return all(stored.get(tp, 0) >= end for tp, end in ends.items() if end > 0)

    async def published(self, runtime: ServiceRuntime) -> bool:
        assert runtime.pool is not None and runtime.relay is not None
        last = await runtime.pool.fetchval(
            f"SELECT coalesce(max(position), 0) FROM {runtime.schema}.events"
        )
        return runtime.relay.published_position >= last

    async def settle(self, timeout: float = 90.0) -> None:
        """Every projector has applied everything on its topics and every relay has published
        everything its store holds — repeated until nothing moves (profile's output feeds
        conversation)."""

        async def quiet() -> bool:
            for rt in self.runtimes.values():
                if not await self.published(rt):
                    return False
            for p in self.projectors.values():
                if not await self.caught_up(p):
                    return False
            return all([await self.published(rt) for rt in self.runtimes.values()])

        await wait_until(quiet, timeout, "live services to settle")

    async def open_runtime(self, service: str, schema: str | None = None) -> ServiceRuntime:
        settings_cls, migrations = {
            "conversation": (ConversationSettings, CONVERSATION_MIGRATIONS),
            "profile": _profile_settings_and_migrations(),
            "orders": _orders_settings_and_migrations(),
            "payments": _payments_settings_and_migrations(),
        }[service]
        schema = schema or unique_name("an")
        self.schemas.append(schema)
        settings = settings_cls(
            database_url=self.database_url,
            db_schema=schema,
            kafka=KafkaSettings(bootstrap=self.bootstrap),
            max_event_attempts=2,
        )
        runtime = ServiceRuntime(settings, migrations=migrations)
        await runtime.open()
        self.runtimes[service] = runtime
        return runtime

    async def start_conversation(self, *, with_profile_topic: bool = True) -> Projector:
        rt = self.runtimes.get("conversation") or await self.open_runtime("conversation")
        topics = [self.topics.inbound] + ([self.topics.profile] if with_profile_topic else [])
        projector = rt.add_projector(
            "timeline",
            topics,
            Timeline(ConversationReadModel(rt.schema), topic=self.topics.conversation),
        )
        self.projectors["timeline"] = projector
        await rt.start()
        return projector

    async def start_profile(self) -> Projector:
        from parlay_profile.projections import IdentityResolution
        from parlay_profile.readmodel import CustomerReadModel

        rt = await self.open_runtime("profile")
        projector = rt.add_projector(
            "identity-resolution",
            [self.topics.inbound],
            IdentityResolution(CustomerReadModel(rt.schema), topic=self.topics.profile),
        )
        self.projectors["identity-resolution"] = projector
        await rt.start()
        return projector

    async def start_orders(self) -> Projector:
        """The orders saga on the private topics (carts and confirmations -> orders)."""
        from parlay_orders.commands import OrderWriter
        from parlay_orders.domain import Product
        from parlay_orders.projections import OrderSaga
        from parlay_orders.readmodel import OrdersReadModel

        rt = await self.open_runtime("orders")
        assert rt.pool is not None and rt.store is not None
        read_model = OrdersReadModel(rt.schema)
        writer = OrderWriter(rt.store, read_model, topic=self.topics.orders)
        async with rt.pool.acquire() as conn, conn.transaction():
            for sku, name, price in CATALOG:
                await writer.upsert_product(
                    conn, self.tenant, Product(sku, name, price, "MXN"), at=T0
                )
        projector = rt.add_projector(
            "order-saga",
            [self.topics.conversation, self.topics.payments, self.topics.profile],
            OrderSaga(read_model, writer),
        )
        self.projectors["order-saga"] = projector
        await rt.start()
        return projector

    async def start_payments(self) -> Projector:
        """Payments for the orders that await payment (the gateway's part is not running: the
        payments stay requested)."""
        from parlay_payments.projections import PaymentsProcess
        from parlay_payments.readmodel import PaymentsReadModel

        rt = await self.open_runtime("payments")
        process = PaymentsProcess(PaymentsReadModel(rt.schema), topic=self.topics.payments)
        projector = rt.add_projector("order-payments", [self.topics.orders], process)
        self.projectors["order-payments"] = projector
        await rt.start()
        return projector

    async def stop(self, service: str) -> None:
        rt = self.runtimes.pop(service)
        for name, p in list(self.projectors.items()):
            if p in rt.projectors:
                del self.projectors[name]
        await rt.stop()

    async def close(self) -> None:
        for service in list(self.runtimes):
            with contextlib.suppress(Exception):
                await self.stop(service)
        await self.producer.stop()
        conn = await asyncpg.connect(self.database_url)
        try:
            for schema in self.schemas:
                rows = await conn.fetch(
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{schema}__%"
                )
                for r in rows:
                    await conn.execute(f"DROP SCHEMA IF EXISTS {r[0]} CASCADE")
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


def _profile_settings_and_migrations() -> tuple[type, list]:
    from parlay_profile.readmodel import MIGRATIONS
    from parlay_profile.settings import ProfileSettings

    return ProfileSettings, list(MIGRATIONS)


def _orders_settings_and_migrations() -> tuple[type, list]:
    from parlay_orders.migrations import MIGRATIONS
    from parlay_orders.settings import OrdersSettings

    return OrdersSettings, list(MIGRATIONS)


def _payments_settings_and_migrations() -> tuple[type, list]:
    from parlay_payments.migrations import MIGRATIONS
    from parlay_payments.settings import PaymentsSettings

    return PaymentsSettings, list(MIGRATIONS)


@contextlib.asynccontextmanager
async def live_services(bootstrap: str, database_url: str) -> AsyncIterator[Live]:
    topics = await make_topics(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    live = Live(bootstrap, database_url, topics, producer)
    try:
        yield live
    finally:
        await live.close()


#: The catalog of the world's orders service (sku, name, price in minor units, MXN).
CATALOG = [("TACO-1", "Tacos al pastor", 4990), ("AGUA-1", "Agua fresca", 2500)]

#: The traffic every "world" gets: customers on two channels over three days.
CUSTOMERS = [
    ("whatsapp", "16505550101", "Ana"),
    ("whatsapp", "16505550102", "Ben"),
    ("whatsapp", "4915112345678", "Carla"),
    ("telegram", "70001", "Dmitri"),
    ("telegram", "70002", "Eve"),
    ("whatsapp", "16505550103", ""),
]


def traffic(tenant: str, start: datetime = T0) -> list[NewEvent]:
    events = []
    for day in range(3):
        for i, (channel, address, name) in enumerate(CUSTOMERS):
            for n in range((i + day) % 4 + 1):
                at = start + timedelta(days=day, minutes=7 * i + 3 * n)
                events.append(
                    message_received(
                        tenant=tenant,
                        address=address,
                        text=f"day {day} message {n} from {name or address}",
                        at=at,
                        name=name,
                        channel=channel,
                        account="acc-wa" if channel == "whatsapp" else "acc-tg",
                    )
                )
    # WhatsApp customers order on the last day; the first two confirm (orders, then payments).
    for i, (channel, address, name) in enumerate(CUSTOMERS[:3]):
        at = start + timedelta(days=3, minutes=5 * i)
        events.append(
            message_received(
                tenant=tenant,
                address=address,
                text="para hoy",
                at=at,
                name=name,
                channel=channel,
                account="acc-wa",
                cart=[("TACO-1", 2, 4990), ("AGUA-1", i + 1, 2500)],
            )
        )
        if i < 2:
            events.append(
                message_received(
                    tenant=tenant,
                    address=address,
                    text="OK",
                    at=at + timedelta(minutes=1),
                    name=name,
                    channel=channel,
                    account="acc-wa",
                )
            )
    return events


@pytest.fixture(scope="session")
async def world(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Live]:
    """Profile, conversation, orders and payments running on private topics, fed with `traffic`
    and settled. Shared by the analytics tests that only read (export, verify, at); tests that
    change the live state build their own."""
    async with live_services(kafka_bootstrap, database_url) as live:
        await live.start_profile()
        await live.start_conversation()
        await live.start_orders()
        await live.start_payments()
        await live.produce_many(live.topics.inbound, traffic(live.tenant))
        await live.settle()
        yield live
