"""The normalizer: a projector on the raw-webhook topic that turns each stored webhook into the
normalized inbound events (MessageReceived, MessageStatusUpdated, ...) on the inbound topic.

It runs after the webhook was acknowledged, so a parser bug never loses a message: the handler
raises, the projector retries and then dead-letters the webhook with the reason; fix the parser
and replay the raw topic. Emitted events have deterministic ids, so replays add nothing twice.
"""

from __future__ import annotations

import logging

from parlay.gateway.v1.gateway_events_pb2 import WebhookReceived
from parlay_gateway import metrics
from parlay_gateway.channels.registry import AdapterRegistry
from parlay_kit.projector import ConsumedEvent, UnitOfWork

log = logging.getLogger(__name__)

NAME = "normalizer"


class UnknownChannel(LookupError):
    pass


class Normalizer:
    def __init__(self, registry: AdapterRegistry) -> None:
        self._registry = registry

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        webhook = event.payload
        if not isinstance(webhook, WebhookReceived):
            return  # e.g. ChannelAccountCreated shares the topic
        adapter = self._registry.get(webhook.channel)
        if adapter is None:
            raise UnknownChannel(f"no adapter for channel {webhook.channel!r}")
        for normalized in adapter.normalize(webhook, event.tenant_id, event.event_id):
            uow.emit(normalized)
            metrics.NORMALIZED_EVENTS.labels(webhook.channel, normalized.event_type).inc()
