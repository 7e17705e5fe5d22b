"""Composition root of the orders service."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit import topics
from parlay_kit.runtime import ServiceRuntime, configure_logging
from parlay_orders.commands import OrderWriter
from parlay_orders.projections import OrderSaga
from parlay_orders.readmodel import MIGRATIONS, OrdersReadModel
from parlay_orders.servicer import SERVICE_NAME, OrdersServicer
from parlay_orders.settings import OrdersSettings

ORDER_SAGA = "order-saga"
#: What the saga reacts to: conversations (carts, confirmations, owners), payments (the money
#: side of the saga) and profile merges (whose orders a customer sees).
ORDER_SAGA_TOPICS = [topics.CONVERSATION, topics.PAYMENTS, topics.PROFILE]


async def build(
    settings: OrdersSettings,
    *,
    saga_topics: Sequence[str] = ORDER_SAGA_TOPICS,
    orders_topic: str = topics.ORDERS,
) -> ServiceRuntime:
    """Wire the runtime: migrations, the saga projector and the gRPC servicer. The orders and
    products read models are written in the same transactions as the events (no projector of
    the service's own topic runs live; `parlay replay orders.orders` rebuilds them). Tests
    pass topics of their own."""
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    read_model = OrdersReadModel(runtime.schema)
    writer = OrderWriter(runtime.store, read_model, topic=orders_topic)
    runtime.add_projector(
        ORDER_SAGA,
        saga_topics,
        OrderSaga(
            read_model,
            writer,
            default_payment_method=settings.orders_default_payment_method,
            max_payment_attempts=settings.orders_max_payment_attempts,
        ),
    )
    runtime.add_grpc(
        pb_grpc.add_OrdersServiceServicer_to_server,
        OrdersServicer(
            pool,
            read_model,
            writer,
            default_payment_method=settings.orders_default_payment_method,
        ),
        SERVICE_NAME,
    )
    return runtime


async def serve(settings: OrdersSettings | None = None) -> None:
    settings = settings or OrdersSettings()
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = OrdersSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
