"""Composition root of the payments service."""

from __future__ import annotations

import asyncio

from parlay.payments.v1 import payments_service_pb2_grpc as pb_grpc
from parlay_kit import topics
from parlay_kit.runtime import ServiceRuntime, configure_logging
from parlay_payments.commands import PaymentsCommands
from parlay_payments.migrations import MIGRATIONS
from parlay_payments.projections import PaymentsProcess
from parlay_payments.readmodel import PaymentsReadModel
from parlay_payments.servicer import SERVICE_NAME, PaymentsServicer
from parlay_payments.settings import PaymentsSettings

#: OrderAwaitingPayment / OrderCancelled -> payment requests and cancellations.
ORDER_PAYMENTS = "order-payments"
ORDER_PAYMENTS_TOPICS = [topics.ORDERS]
#: What the gateway did for us and what the providers reported (Stripe webhooks, Telegram
#: payments). Its own projector: the inbound topic carries every customer message, and an
#: order event never waits behind them.
PROVIDER_EVENTS = "provider-events"
PROVIDER_EVENTS_TOPICS = [topics.INBOUND]


async def build(settings: PaymentsSettings) -> ServiceRuntime:
    """Wire the runtime: migrations, the two projectors, the command handlers and gRPC."""
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    read_model = PaymentsReadModel(runtime.schema)
    process = PaymentsProcess(read_model)
    runtime.add_projector(ORDER_PAYMENTS, ORDER_PAYMENTS_TOPICS, process)
    runtime.add_projector(PROVIDER_EVENTS, PROVIDER_EVENTS_TOPICS, process)
    runtime.add_grpc(
        pb_grpc.add_PaymentsServiceServicer_to_server,
        PaymentsServicer(pool, read_model, PaymentsCommands(pool, runtime.store, read_model)),
        SERVICE_NAME,
    )
    return runtime


async def serve(settings: PaymentsSettings | None = None) -> None:
    settings = settings or PaymentsSettings()
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = PaymentsSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
