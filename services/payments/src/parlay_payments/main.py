"""Composition root of the payments service."""

from __future__ import annotations

import asyncio

from parlay.payments.v1 import payments_service_pb2_grpc as pb_grpc
from parlay_kit.runtime import ServiceRuntime, configure_logging
from parlay_payments.migrations import MIGRATIONS
from parlay_payments.servicer import SERVICE_NAME, PaymentsServicer
from parlay_payments.settings import PaymentsSettings


async def build(settings: PaymentsSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    runtime.add_grpc(
        pb_grpc.add_PaymentsServiceServicer_to_server,
        PaymentsServicer(pool, runtime.schema),
        SERVICE_NAME,
    )
    return runtime


async def serve(settings: PaymentsSettings) -> None:
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = PaymentsSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))
