"""Fixtures for the payments tests: a topic set of its own on the session's real broker, ONE
running payments service for the session (event store, outbox relay, both projectors, the
kit's gRPC server with API keys in a real tenancy schema; each test uses its own tenant), and
helpers that publish other services' events as those services would (orders events, the
gateway's ChannelPaymentActionCompleted / PaymentProviderEventReceived /
ChannelPaymentEventReceived) and wait on stored offsets — never on sleeps.

`kafka_bootstrap` and `database_url` come from the `parlay_kit.testing` plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.orders.v1 import orders_events_pb2 as oe
from parlay.payments.v1 import payments_service_pb2_grpc as pb_grpc
from parlay_kit import tenancy
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import NewEvent, decode, deterministic_event_id, unpack
from parlay_kit.grpc_server import build_server, create_channel
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.settings import KafkaSettings
from parlay_kit.testbus import TopicBus, drop_schema, topic_bus, wait_until
from parlay_kit.testing import unique_name
from parlay_kit.topics import dead_letter_topic
from parlay_payments.commands import PaymentsCommands
from parlay_payments.migrations import MIGRATIONS
from parlay_payments.projections import PaymentsProcess, payment_id_of
from parlay_payments.readmodel import PaymentsReadModel
from parlay_payments.servicer import SERVICE_NAME, PaymentsServicer
from parlay_payments.settings import PaymentsSettings

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STRIPE_ACCOUNT = "acc-stripe"
TELEGRAM_ACCOUNT = "acc-telegram"


# ---------------------------------------------------------------------- other services' events


def _event(tenant: str, event_id: str, agg_type: str, agg_id: str, payload: Message) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        tenant_id=tenant,
        aggregate_type=agg_type,
        aggregate_id=agg_id,
        payload=payload,
        occurred_at=T0,
        topic="",
    )


def awaiting_payment(
    tenant: str,
    order_id: str,
    *,
    method: str = "payment_link",
    amount: int = 24950,
    currency: str = "MXN",
    attempt: int = 1,
) -> NewEvent:
    """OrderAwaitingPayment as the orders service emits it."""
    telegram = method == "telegram"
    return _event(
        tenant,
        deterministic_event_id("orders", tenant, order_id, "awaiting_payment", str(attempt)),
        "order",
        order_id,
        oe.OrderAwaitingPayment(
            order_id=order_id,
            customer_id="cus-1",
            conversation_id="conv-1",
            amount_minor=amount,
            currency=currency,
            payment_method=method,
            attempt=attempt,
            channel="telegram" if telegram else "whatsapp",
            channel_account_id=TELEGRAM_ACCOUNT if telegram else "acc-wa",
            address="chat-42" if telegram else "5215550001111",
            summary="2 x Tacos al pastor (TACO-1) 249.50 MXN",
        ),
    )


def order_cancelled(tenant: str, order_id: str, reason: str = "customer_request") -> NewEvent:
    return _event(
        tenant,
        deterministic_event_id("orders", tenant, order_id, "cancelled"),
        "order",
        order_id,
        oe.OrderCancelled(order_id=order_id, customer_id="cus-1", reason=reason, actor="agent"),
    )


def action_completed(
    tenant: str,
    payment_id: str,
    action: str,
    *,
    ok: bool = True,
    object_id: str = "",
    refund_id: str = "",
    channel: str = "stripe",
    account: str = STRIPE_ACCOUNT,
    error_code: str = "",
    request_event_id: str = "",
) -> NewEvent:
    """ChannelPaymentActionCompleted as the gateway reports a provider call it made."""
    request = request_event_id or deterministic_event_id("req", payment_id, action, refund_id)
    msg = ge.ChannelPaymentActionCompleted(
        channel=channel,
        channel_account_id=account,
        action=action,
        request_event_id=request,
        payment_id=payment_id,
        ok=ok,
        error_code=error_code,
        error_message="declined" if not ok else "",
        provider_object_id=object_id,
        checkout_url=f"https://checkout.stripe.com/c/pay/{object_id}" if object_id else "",
        refund_id=refund_id,
        attempts=1,
    )
    msg.completed_at.FromDatetime(T0)
    if action == "create_checkout_session" and ok:
        msg.expires_at.FromDatetime(T0 + timedelta(hours=24))
    return _event(
        tenant,
        deterministic_event_id(request, action),
        "payment_actions",
        f"payment-actions:{account}",
        msg,
    )


def stripe_event(
    tenant: str,
    evt_id: str,
    event_type: str,
    *,
    session: str = "",
    intent: str = "",
    amount: int = 24950,
    currency: str = "MXN",
    status: str = "paid",
    refunded: int = 0,
    metadata: dict[str, str] | None = None,
    account: str = STRIPE_ACCOUNT,
) -> NewEvent:
    """PaymentProviderEventReceived as the gateway normalizes a verified Stripe webhook."""
    object_type = event_type.rsplit(".", 1)[0]
    object_id = {"checkout.session": session, "payment_intent": intent}.get(object_type, "ch_1")
    msg = ge.PaymentProviderEventReceived(
        provider="stripe",
        channel_account_id=account,
        provider_event_id=evt_id,
        event_type=event_type,
        object_type=object_type,
        object_id=object_id,
        checkout_session_id=session,
        payment_intent_id=intent,
        metadata=metadata or {},
        amount_minor=amount,
        amount_refunded_minor=refunded,
        currency=currency,
        status=status,
        webhook_event_id=deterministic_event_id("webhook", evt_id),
    )
    msg.created_at.FromDatetime(T0)
    return _event(
        tenant,
        deterministic_event_id("stripe", account, evt_id),
        "payment_provider",
        f"stripe:{account}",
        msg,
    )


def telegram_payment(
    tenant: str,
    kind: str,
    payload: str,
    *,
    total: int = 24950,
    currency: str = "MXN",
    query_id: str = "",
    charge_id: str = "",
) -> NewEvent:
    """ChannelPaymentEventReceived (pre_checkout_query / successful_payment) from Telegram."""
    provider_id = query_id or charge_id or unique_name("tg")
    msg = ge.ChannelPaymentEventReceived(
        channel="telegram",
        channel_account_id=TELEGRAM_ACCOUNT,
        kind=kind,
        provider_event_id=provider_id,
        payer=ge.ChannelAddress(channel="telegram", address="chat-42"),
        currency=currency,
        total_minor=total,
        invoice_payload=payload,
        provider_charge_id=charge_id,
    )
    return _event(
        tenant,
        deterministic_event_id("telegram", TELEGRAM_ACCOUNT, provider_id, kind),
        "contact",
        f"{TELEGRAM_ACCOUNT}:chat-42",
        msg,
    )


# ---------------------------------------------------------------------- the running service


@dataclass
class Service:
    bus: TopicBus
    runtime: ServiceRuntime
    orders_projector: Projector
    provider_projector: Projector
    address: str
    read_model: PaymentsReadModel
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    # Helpers for the test modules (they cannot import conftest).
    payment_id_of = staticmethod(payment_id_of)
    wait_until = staticmethod(wait_until)
    awaiting_payment = staticmethod(awaiting_payment)
    order_cancelled = staticmethod(order_cancelled)
    action_completed = staticmethod(action_completed)
    stripe_event = staticmethod(stripe_event)
    telegram_payment = staticmethod(telegram_payment)
    STRIPE_ACCOUNT = STRIPE_ACCOUNT
    TELEGRAM_ACCOUNT = TELEGRAM_ACCOUNT

    @property
    def bootstrap(self) -> str:
        return self.bus.bootstrap

    @property
    def topics(self) -> dict[str, str]:
        return self.bus.topics

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.runtime.pool is not None
        return self.runtime.pool

    @property
    def schema(self) -> str:
        return self.runtime.schema

    async def tenant(self) -> tuple[str, pb_grpc.PaymentsServiceStub]:
        """A new tenant and a stub authenticated with its API key."""
        async with self.pool.acquire() as conn:
            tenant = (
                await tenancy.create_tenant(conn, "Shop", unique_name("shop"), schema=self.schema)
            ).tenant_id
            key = (await tenancy.create_api_key(conn, tenant, schema=self.schema)).key
        channel = create_channel(self.address, api_key=key, telemetry_enabled=False)
        self.channels.append(channel)
        return tenant, pb_grpc.PaymentsServiceStub(channel)

    async def orders(self, *events: NewEvent) -> None:
        """Publish orders events and wait until the order-payments projector applied them."""
        for event in events:
            await self.bus.produce(self.topics["orders"], event, source="orders")
        await self.wait_caught_up(self.orders_projector)

    async def gateway(self, *events: NewEvent) -> None:
        """Publish gateway events and wait until the provider-events projector applied them."""
        for event in events:
            await self.bus.produce(self.topics["inbound"], event, source="gateway")
        await self.wait_caught_up(self.provider_projector)

    async def wait_caught_up(self, projector: Projector, timeout: float = 30.0) -> None:
        await self.bus.wait_caught_up(projector, timeout)

    async def wait_published(self, timeout: float = 30.0) -> None:
        """The outbox relay has published every event in the store."""
        await self.bus.wait_published(self.runtime, timeout)

    async def events(self, aggregate_id: str) -> list[Message]:
        """The payments events stored for an aggregate, in version order."""
        rows = await self.pool.fetch(
            f"""SELECT envelope FROM {self.schema}.events WHERE aggregate_id = $1
                ORDER BY aggregate_version""",
            aggregate_id,
        )
        return [unpack(decode(r[0])) for r in rows]

    async def event_types(self, aggregate_id: str) -> list[str]:
        return [type(m).__name__ for m in await self.events(aggregate_id)]

    async def tenant_events(self, tenant: str) -> list[tuple[str, Message]]:
        rows = await self.pool.fetch(
            f"""SELECT aggregate_id, envelope FROM {self.schema}.events WHERE tenant_id = $1
                ORDER BY position""",
            tenant,
        )
        return [(r[0], unpack(decode(r[1]))) for r in rows]

    async def payment(self, tenant: str, payment_id: str):
        return await self.read_model.get(self.pool, tenant, payment_id)


@pytest.fixture(scope="session")
async def svc(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Service]:
    # Poison events go to the service's dead-letter topic (the local stack creates it).
    await ensure_topics(kafka_bootstrap, [dead_letter_topic("payments")], partitions=1)
    schema = unique_name("t")
    settings = PaymentsSettings(
        database_url=database_url,
        db_schema=schema,
        kafka=KafkaSettings(bootstrap=kafka_bootstrap),
        max_event_attempts=2,
    )
    async with topic_bus(kafka_bootstrap, ("orders", "inbound", "payments")) as bus:
        names = bus.topics
        runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
        pool = await runtime.open()
        server = None
        service: Service | None = None
        try:
            await tenancy.migrate(pool, schema)
            rm = PaymentsReadModel(schema)
            process = PaymentsProcess(rm, topic=names["payments"])
            orders_projector = runtime.add_projector("order-payments", [names["orders"]], process)
            provider_projector = runtime.add_projector(
                "provider-events", [names["inbound"]], process
            )
            await runtime.start()
            servicer = PaymentsServicer(
                pool, rm, PaymentsCommands(pool, runtime.store, rm, topic=names["payments"])
            )
            server = build_server(
                [(pb_grpc.add_PaymentsServiceServicer_to_server, servicer)],
                resolver=tenancy.ApiKeyResolver(pool, schema=schema),
                service_names=[SERVICE_NAME],
                port=0,
                telemetry_enabled=False,
            )
            await server.start()
            service = Service(
                bus, runtime, orders_projector, provider_projector, server.address, rm
            )
            yield service
        finally:
            if service is not None:
                for channel in service.channels:
                    await channel.close()
            if server is not None:
                await server.stop(0)
            await runtime.stop()
            await drop_schema(database_url, schema)
