"""Composition root of the conversation service."""

from __future__ import annotations

import asyncio

from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
from parlay_conversation.projections import Timeline
from parlay_conversation.readmodel import MIGRATIONS, ConversationReadModel
from parlay_conversation.servicer import SERVICE_NAME, ConversationServicer
from parlay_conversation.settings import ConversationSettings
from parlay_kit import topics
from parlay_kit.runtime import ServiceRuntime, configure_logging

TIMELINE = "timeline"


async def build(settings: ConversationSettings) -> ServiceRuntime:
    """Wire the runtime: migrations, the timeline projector and the gRPC servicer."""
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    read_model = ConversationReadModel(runtime.schema)
    runtime.add_projector(TIMELINE, [topics.INBOUND, topics.PROFILE], Timeline(read_model))
    runtime.add_grpc(
        cs_grpc.add_ConversationServiceServicer_to_server,
        ConversationServicer(pool, read_model),
        SERVICE_NAME,
    )
    return runtime


async def serve(settings: ConversationSettings | None = None) -> None:
    settings = settings or ConversationSettings()
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = ConversationSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
