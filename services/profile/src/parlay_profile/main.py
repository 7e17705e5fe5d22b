"""Composition root of the profile service."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from parlay.profile.v1 import profile_service_pb2_grpc as ps_grpc
from parlay_kit import topics
from parlay_kit.runtime import ServiceRuntime, configure_logging
from parlay_profile.commands import ProfileCommands
from parlay_profile.projections import IdentityResolution
from parlay_profile.readmodel import MIGRATIONS, CustomerReadModel
from parlay_profile.servicer import SERVICE_NAME, ProfileServicer
from parlay_profile.settings import ProfileSettings

IDENTITY_RESOLUTION = "identity-resolution"
#: What identity resolution consumes: the gateway's observations, and orders / payments for the
#: purchase summary (their events are skipped until this build knows their types).
IDENTITY_RESOLUTION_TOPICS = [topics.INBOUND, topics.ORDERS, topics.PAYMENTS]


async def build(settings: ProfileSettings) -> ServiceRuntime:
    """Wire the runtime: migrations, the identity-resolution projector, the command handlers
    and the gRPC servicer."""
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    pool = await runtime.open()
    read_model = CustomerReadModel(runtime.schema)
    runtime.add_projector(
        IDENTITY_RESOLUTION,
        IDENTITY_RESOLUTION_TOPICS,
        IdentityResolution(
            read_model,
            seen_resolution=timedelta(seconds=settings.profile_seen_resolution_seconds),
        ),
    )
    runtime.add_grpc(
        ps_grpc.add_ProfileServiceServicer_to_server,
        ProfileServicer(pool, read_model, ProfileCommands(pool, runtime.store, read_model)),
        SERVICE_NAME,
    )
    return runtime


async def serve(settings: ProfileSettings | None = None) -> None:
    settings = settings or ProfileSettings()
    runtime = await build(settings)
    await runtime.run_until_signalled()


def main() -> None:
    settings = ProfileSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
