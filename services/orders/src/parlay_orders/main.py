"""Composition root of the orders service."""

from __future__ import annotations

import asyncio

from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit.runtime import ServiceRuntime, configure_logging
from parlay_orders.migrations import MIGRATIONS
from parlay_orders.servicer import SERVICE_NAME, OrdersServicer
from parlay_orders.settings import OrdersSettings


async def build(settings: OrdersSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    runtime.add_grpc(
        pb_grpc.add_OrdersServiceServicer_to_server,
        OrdersServicer(pool, runtime.schema),
        SERVICE_NAME,
    )
    return runtime


async def serve(settings: OrdersSettings) -> None:
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = OrdersSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))
