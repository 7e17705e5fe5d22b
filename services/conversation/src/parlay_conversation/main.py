"""Composition root of the conversation service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
from parlay_conversation import orders_client
from parlay_conversation.inbox import Automation, ConsentPolicy, OrderStatusProvider
from parlay_conversation.projections import Timeline
from parlay_conversation.readmodel import MIGRATIONS, ConversationReadModel
from parlay_conversation.readpool import ReadPool
from parlay_conversation.servicer import SERVICE_NAME, ConversationServicer
from parlay_conversation.settings import ConversationSettings
from parlay_conversation.timer import Timer
from parlay_kit import topics
from parlay_kit.runtime import ServiceRuntime, configure_logging

log = logging.getLogger(__name__)

TIMELINE = "timeline"
TIMELINE_TOPICS = [topics.INBOUND, topics.PROFILE, topics.ORDERS, topics.PAYMENTS]


def order_status_provider(settings: ConversationSettings) -> OrderStatusProvider | None:
    """The orders-backed "where is my order?" answer, once orders serves ListOrders."""
    if not orders_client.supported():
        log.info("orders has no ListOrders yet: order-status questions go to a human")
        return None
    if not settings.service_api_key:
        log.info("PARLAY_SERVICE_API_KEY not set: order-status questions go to a human")
        return None
    return orders_client.GrpcOrderStatus(settings.orders_grpc_target, settings.service_api_key)


async def open_read_pool(settings: ConversationSettings, schema: str) -> ReadPool:
    """The connections the gRPC queries use (commands use the runtime's pool, in transactions)."""
    return await ReadPool(
        settings.database_url,
        schema,
        size=settings.db_pool_size,
        password=settings.database_password(),
    ).open()


async def build(settings: ConversationSettings) -> ServiceRuntime:
    """Wire the runtime: migrations, the timeline projector, the timer and the gRPC servicer."""
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    read_pool = None
    if settings.runs("grpc"):
        read_pool = await open_read_pool(settings, runtime.schema)
        runtime.add_task("read-pool", _closer(read_pool), role="grpc")
    read_model = ConversationReadModel(runtime.schema)
    windows = settings.service_windows
    consent = ConsentPolicy(read_model, marketing_default=settings.marketing_consent_default)
    automation = Automation(read_model, consent, windows, order_status_provider(settings))
    runtime.add_projector(
        TIMELINE,
        TIMELINE_TOPICS,
        Timeline(read_model, automation=automation, consent=consent, windows=windows),
    )
    timer = Timer(
        pool,
        runtime.store,
        read_model,
        topic=topics.CONVERSATION,
        consent=consent,
        windows=windows,
        interval=settings.timer_interval_seconds,
        parked_status_ttl=timedelta(hours=settings.parked_status_ttl_hours),
    )
    runtime.add_task("timer", timer.run, role="projectors", projector=TIMELINE)
    runtime.add_grpc(
        cs_grpc.add_ConversationServiceServicer_to_server,
        ConversationServicer(
            pool,
            read_model,
            runtime.store,
            read_pool=read_pool,
            windows=windows,
            consent=consent,
            automation=automation,
        ),
        SERVICE_NAME,
    )
    return runtime


def _closer(pool: ReadPool) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def close_when_stopped(stop: asyncio.Event) -> None:
        await stop.wait()
        await pool.close()

    return close_when_stopped


async def serve(settings: ConversationSettings | None = None) -> None:
    settings = settings or ConversationSettings()
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = ConversationSettings()
    configure_logging(settings.log_level)
    try:  # uvloop where installed: a Postgres round trip costs a fraction of the CPU
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
