"""Composition root: wires the gateway's parts onto the kit's ServiceRuntime.

ServiceRuntime (pool, migrations, event store + outbox relay, group commit, SIGTERM)
  + channel accounts (table, config file, gRPC GatewayService)
  + HTTP server (FastAPI/uvicorn: webhooks, /healthz, /metrics) as a runtime task
  + normalizer projector: parlay.gateway.webhooks.v1 -> parlay.gateway.inbound.v1
  + outbound: consumer of OutboundMessageRequested (parlay.conversation.v1), the sender task,
    GatewayService.GetMedia (see outbound/ and docs/outbound.md)
  + payment actions: projectors on parlay.payments.v1 that make the Stripe / Telegram payment
    calls payments asks for -> ChannelPaymentActionCompleted (see payments/)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from parlay_gateway import grpc_api, normalizer, outbound, payments
from parlay_gateway.account_service import ChannelAccounts
from parlay_gateway.account_store import MIGRATIONS, AccountDirectory, AccountRepository
from parlay_gateway.channels.registry import AdapterRegistry, default_registry
from parlay_gateway.config_file import load_account_specs
from parlay_gateway.http_app import create_app
from parlay_gateway.http_server import HttpServer
from parlay_gateway.outbound.senders import default_senders
from parlay_gateway.outbound.senders.webchat import WebchatSender
from parlay_gateway.settings import GatewaySettings
from parlay_gateway.webchat import socket as webchat_socket
from parlay_gateway.webchat import store as webchat_store
from parlay_kit import telemetry, topics
from parlay_kit.runtime import ServiceRuntime, configure_logging

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: GatewaySettings
    runtime: ServiceRuntime
    accounts: ChannelAccounts
    directory: AccountDirectory
    registry: AdapterRegistry
    http: HttpServer
    outbound: outbound.Outbound | None = None
    webchat: webchat_socket.WebchatHub | None = None
    payments: payments.Payments | None = None


class GatewayServicer(outbound.MediaServicerMixin, grpc_api.GatewayServicer):
    """GatewayService: channel accounts (grpc_api) + GetMedia (outbound.media)."""

    def __init__(self, accounts: ChannelAccounts, media: outbound.MediaResolver) -> None:
        super().__init__(accounts)
        self.media = media


async def load_accounts_file(accounts: ChannelAccounts, path: str) -> dict[str, str]:
    """Create or update the accounts listed in the file; returns {account id: outcome}."""
    outcomes: dict[str, str] = {}
    for spec in load_account_specs(path):
        outcomes[spec.channel_account_id] = await accounts.apply_config(spec)
    if outcomes:
        log.info(
            "channel accounts from %s: %s",
            path,
            ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        )
    return outcomes


async def assemble(
    settings: GatewaySettings,
    *,
    registry: AdapterRegistry | None = None,
    with_grpc: bool = True,
    outbound_settings: outbound.OutboundSettings | None = None,
) -> Gateway:
    """Open the database (migrations), load the accounts file and wire every part. Nothing
    serves yet: `gateway.runtime.start()` or `run_until_signalled()` does that."""
    runtime = ServiceRuntime(
        settings,
        migrations=[
            *MIGRATIONS,
            *normalizer.MIGRATIONS,
            *outbound.MIGRATIONS,
            *webchat_store.MIGRATIONS,
        ],
    )
    pool = await runtime.open()
    assert runtime.group_commit is not None
    repository = AccountRepository(runtime.schema)
    directory = AccountDirectory(
        pool,
        repository,
        ttl=settings.account_cache_ttl_seconds,
        negative_ttl=settings.account_negative_cache_ttl_seconds,
    )
    accounts = ChannelAccounts(pool, runtime.store, repository, directory)
    if settings.channel_accounts_file:
        await load_accounts_file(accounts, settings.channel_accounts_file)
    registry = registry or default_registry()

    app = create_app(
        lookup_account=directory.get,
        registry=registry,
        appender=runtime.group_commit,
        max_body_bytes=settings.max_body_bytes,
        ingest_timeout_seconds=settings.ingest_timeout_seconds,
        public_url=settings.public_url,
    )
    webchat_history = webchat_store.WebchatHistory(runtime.schema)
    webchat_hub = webchat_socket.WebchatHub(
        pool=pool,
        history=webchat_history,
        appender=runtime.group_commit,
        lookup_account=directory.get,
        ingest_timeout_seconds=settings.ingest_timeout_seconds,
    )
    webchat_socket.install(app, webchat_hub)
    runtime.add_task("webchat-listener", webchat_hub.run)
    http = HttpServer(
        app,
        settings.http_host,
        settings.http_port,
        graceful_shutdown_seconds=settings.http_graceful_shutdown_seconds,
    )
    http.bind()
    runtime.add_task("http", http.run)
    runtime.add_projector(
        normalizer.NAME,
        [topics.WEBHOOKS],
        normalizer.Normalizer(registry, schema=runtime.schema),
    )
    senders = default_senders()
    senders.register(WebchatSender(pool, webchat_history))
    out = outbound.wire(
        runtime,
        directory=directory,
        settings=outbound_settings or outbound.OutboundSettings(),
        public_url=settings.public_url,
        senders=senders,
    )

    payment_actions = payments.wire(
        runtime,
        settings=settings,
        telegram_base_url=lambda account: out.settings.base_url("telegram", account),
    )

    async def close_media_client(stop: Any) -> None:
        await stop.wait()
        await out.media.close()

    runtime.add_task("media-client", close_media_client, role="grpc")
    if with_grpc:
        runtime.add_grpc(
            grpc_api.add_to_server, GatewayServicer(accounts, out.media), grpc_api.SERVICE_NAME
        )
    return Gateway(
        settings, runtime, accounts, directory, registry, http, out, webchat_hub, payment_actions
    )


async def serve(settings: GatewaySettings) -> None:
    telemetry.setup_telemetry(settings.service_name, settings.otlp_endpoint)
    gateway = await assemble(settings)
    try:
        await gateway.runtime.run_until_signalled()
    finally:
        telemetry.shutdown_telemetry()


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    try:  # uvloop (from uvicorn[standard]) when available, as uvicorn itself would pick it
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
