"""Fixtures for the orders tests: private topics on the session's real broker, the service
composed by `parlay_orders.main.build` on a fresh schema, a real gRPC server with API keys,
and helpers that wait on conditions and stored offsets — never on sleeps (`parlay_kit.testbus`).

`kafka_bootstrap` and `database_url` come from the `parlay_kit.testing` plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message

from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit import tenancy
from parlay_kit.envelope import NewEvent, deterministic_event_id, utcnow
from parlay_kit.grpc_server import build_server, create_channel
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.settings import KafkaSettings
from parlay_kit.testbus import (
    TopicBus,
    create_schema,
    drop_schema,
    topic_bus,
    two_tenants,
    wait_until,
)
from parlay_kit.testing import unique_name
from parlay_orders import domain
from parlay_orders.commands import OrderWriter
from parlay_orders.main import build
from parlay_orders.readmodel import OrdersReadModel
from parlay_orders.servicer import SERVICE_NAME, OrdersServicer
from parlay_orders.settings import OrdersSettings


class Bus(TopicBus):
    """Private topics on the shared broker: conversation, payments, profile in; orders out."""

    @property
    def conversation(self) -> str:
        return self.topics["conversation"]

    @property
    def payments(self) -> str:
        return self.topics["payments"]

    @property
    def profile(self) -> str:
        return self.topics["profile"]

    @property
    def orders(self) -> str:
        return self.topics["orders"]


@pytest.fixture(scope="module")
async def bus(kafka_bootstrap: str) -> AsyncIterator[Bus]:
    async with topic_bus(kafka_bootstrap, ["conversation", "payments", "profile", "orders"]) as b:
        yield Bus(b.bootstrap, b.topics, b.producer)


@pytest.fixture(scope="module")
async def module_schema(database_url: str) -> AsyncIterator[str]:
    name = await create_schema(database_url)
    try:
        yield name
    finally:
        await drop_schema(database_url, name)


@dataclass
class Service:
    """The orders service as main.build composes it, running its relay and saga projector."""

    runtime: ServiceRuntime
    bus: Bus
    rm: OrdersReadModel
    writer: OrderWriter
    servicer: OrdersServicer

    @staticmethod
    def event(
        tenant: str, aggregate_type: str, aggregate_id: str, payload: Message, *parts: str
    ) -> NewEvent:
        return event(tenant, aggregate_type, aggregate_id, payload, *parts)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.runtime.pool is not None
        return self.runtime.pool

    @property
    def saga(self) -> Projector:
        return self.runtime.projectors[0]

    async def order(self, tenant: str, order_id: str) -> domain.OrderState | None:
        return await self.rm.load_order(self.pool, tenant, order_id)

    async def wait_order(
        self,
        tenant: str,
        order_id: str,
        check: Callable[[domain.OrderState], bool] = lambda s: True,
        what: str = "",
    ) -> domain.OrderState:
        async def ready() -> bool:
            state = await self.order(tenant, order_id)
            return state is not None and check(state)

        await wait_until(ready, what=what or f"order {order_id}")
        state = await self.order(tenant, order_id)
        assert state is not None
        return state

    async def event_types(self, order_id: str) -> list[str]:
        rows = await self.pool.fetch(
            f"""SELECT event_type FROM {self.runtime.schema}.events
                WHERE aggregate_id = $1 ORDER BY aggregate_version""",
            order_id,
        )
        return [r[0].rsplit(".", 1)[-1] for r in rows]

    async def add_product(self, tenant: str, product: domain.Product) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self.writer.upsert_product(conn, tenant, product, at=utcnow())


def orders_settings(database_url: str, schema: str, bootstrap: str, **kw: object) -> OrdersSettings:
    return OrdersSettings(
        database_url=database_url,
        db_schema=schema,
        kafka=KafkaSettings(bootstrap=bootstrap),
        max_event_attempts=2,
        roles="relay,projectors",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
async def service(database_url: str, bus: Bus, module_schema: str) -> AsyncIterator[Service]:
    settings = orders_settings(database_url, module_schema, bus.bootstrap)
    runtime = await build(
        settings, saga_topics=[bus.conversation, bus.payments, bus.profile], orders_topic=bus.orders
    )
    assert runtime.pool is not None
    rm = OrdersReadModel(runtime.schema)
    writer = OrderWriter(runtime.store, rm, topic=bus.orders)
    await runtime.start()
    try:
        yield Service(runtime, bus, rm, writer, OrdersServicer(runtime.pool, rm, writer))
    finally:
        await runtime.stop()


# ---------------------------------------------------------------------------- event builders


def at_now() -> datetime:
    return datetime.now(UTC)


def event(
    tenant: str, aggregate_type: str, aggregate_id: str, payload: Message, *parts: str
) -> NewEvent:
    return NewEvent(
        event_id=deterministic_event_id(tenant, aggregate_id, *parts),
        tenant_id=tenant,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        payload=payload,
        occurred_at=at_now(),
        topic="",
    )


# ---------------------------------------------------------------------------- gRPC server


@dataclass
class Api:
    stub: pb_grpc.OrdersServiceStub
    other: pb_grpc.OrdersServiceStub
    anonymous: pb_grpc.OrdersServiceStub
    tenant: str
    other_tenant: str
    key: str
    address: str
    pool: asyncpg.Pool
    schema: str
    rm: OrdersReadModel
    writer: OrderWriter


@pytest.fixture(scope="module")
async def api(database_url: str, module_schema: str) -> AsyncIterator[Api]:
    """OrdersService over a real grpc.aio server (the kit's: API-key auth, status mapping) on a
    migrated schema; tenants and keys in a real tenancy schema."""
    from parlay_kit.db import create_pool, migrate
    from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore
    from parlay_orders.readmodel import MIGRATIONS

    schema = module_schema
    pool = await create_pool(database_url, schema)
    channels: list[grpc.aio.Channel] = []
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
            tenants = await two_tenants(conn, schema)
        tenant, key, other, other_key = (
            tenants.tenant,
            tenants.key,
            tenants.other,
            tenants.other_key,
        )
        rm = OrdersReadModel(schema)
        writer = OrderWriter(EventStore(schema, "orders"), rm, topic=unique_name("orders"))
        server = build_server(
            [(pb_grpc.add_OrdersServiceServicer_to_server, OrdersServicer(pool, rm, writer))],
            resolver=tenancy.ApiKeyResolver(pool, schema=schema),
            service_names=[SERVICE_NAME],
            port=0,
            telemetry_enabled=False,
        )
        await server.start()
        channels = [
            create_channel(server.address, api_key=key, telemetry_enabled=False),
            create_channel(server.address, api_key=other_key, telemetry_enabled=False),
            create_channel(server.address, telemetry_enabled=False),
        ]
        yield Api(
            *(pb_grpc.OrdersServiceStub(c) for c in channels),
            tenant=tenant,
            other_tenant=other,
            key=key,
            address=server.address,
            pool=pool,
            schema=schema,
            rm=rm,
            writer=writer,
        )
        for channel in channels:
            await channel.close()
        await server.stop(0)
    finally:
        await pool.close()
