"""Outbound delivery: OutboundMessageRequested -> the provider's API -> OutboundMessageSent/Failed.

    consumer.py    projector handler: records each request in the delivery ledger (exactly once)
    ledger.py      the ledger table and its state machine (requested/sending/sent/failed/unknown)
    dispatcher.py  the sender task: claim, send, record; crash recovery; retries; rate limits
    senders/       per-channel pure request builders and response classifiers
    http.py        the one httpx client and transport-failure classification
    ratelimit.py   token bucket and backoff arithmetic
    events.py      ledger rows -> OutboundMessageSent / OutboundMessageFailed
    media.py       GatewayService.GetMedia
    settings.py    OutboundSettings (provider base URLs, retry/rate-limit knobs)

See docs/outbound.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from parlay_gateway.account_store import AccountDirectory
from parlay_gateway.outbound import consumer
from parlay_gateway.outbound.dispatcher import Dispatcher
from parlay_gateway.outbound.ledger import MIGRATIONS, Ledger
from parlay_gateway.outbound.media import MediaResolver, MediaServicerMixin
from parlay_gateway.outbound.senders import SenderRegistry, default_senders
from parlay_gateway.outbound.settings import OutboundSettings
from parlay_kit import topics
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime


@dataclass
class Outbound:
    settings: OutboundSettings
    ledger: Ledger
    senders: SenderRegistry
    dispatcher: Dispatcher | None
    projector: Projector | None
    media: MediaResolver


def wire(
    runtime: ServiceRuntime,
    *,
    directory: AccountDirectory,
    settings: OutboundSettings,
    public_url: str = "",
    senders: SenderRegistry | None = None,
) -> Outbound:
    """Add the outbound consumer (projector) and the sender task (role "projectors") to the
    runtime. Call after `runtime.open()`; the ledger's tables come with MIGRATIONS."""
    assert runtime.pool is not None, "call runtime.open() first"
    senders = senders or default_senders()
    ledger = Ledger(runtime.schema)
    dispatcher: Dispatcher | None = None
    projector: Projector | None = None
    if settings.outbound_enabled:
        projector = runtime.add_projector(
            consumer.NAME, [topics.CONVERSATION], consumer.OutboundRequests(ledger, senders)
        )
        dispatcher = Dispatcher(
            pool=runtime.pool,
            store=runtime.store,
            ledger=ledger,
            senders=senders,
            directory=directory,
            settings=settings,
            public_url=public_url,
        )
        runtime.add_task(
            "outbound-sender", dispatcher.run, role="projectors", projector=consumer.NAME
        )
    media = MediaResolver(directory, settings, senders)
    return Outbound(settings, ledger, senders, dispatcher, projector, media)


__all__ = [
    "MIGRATIONS",
    "MediaResolver",
    "MediaServicerMixin",
    "Outbound",
    "OutboundSettings",
    "wire",
]
