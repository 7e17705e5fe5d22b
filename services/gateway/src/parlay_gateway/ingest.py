"""The raw webhook as an event: WebhookReceived on the channel account's aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from parlay.gateway.v1.gateway_events_pb2 import WebhookReceived
from parlay_gateway.accounts import AGGREGATE_TYPE, ChannelAccount
from parlay_gateway.channels.base import ChannelAdapter, InboundRequest
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, to_timestamp
from parlay_kit.eventstore import StoredEvent


class Appender(Protocol):
    """`GroupCommitter.append`: returns once the events are durable."""

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]: ...


def webhook_event_id(channel: str, channel_account_id: str, dedupe_key: str) -> str:
    return deterministic_event_id("webhook", channel, channel_account_id, dedupe_key)


def build_webhook_event(
    adapter: ChannelAdapter,
    request: InboundRequest,
    account: ChannelAccount,
    *,
    received_at: datetime,
    traceparent: str = "",
) -> NewEvent:
    """Pure. The same body for the same account gives the same event id, so a provider's retry
    is stored once (the store skips a known event id)."""
    headers = {
        name: request.headers[name] for name in adapter.retained_headers if name in request.headers
    }
    webhook = WebhookReceived(
        channel=adapter.channel,
        channel_account_id=account.channel_account_id,
        http_method=request.method,
        path=request.path,
        headers=headers,
        body=request.body,
        received_at=to_timestamp(received_at),
    )
    return NewEvent(
        event_id=webhook_event_id(
            adapter.channel, account.channel_account_id, adapter.dedupe_key(request)
        ),
        tenant_id=account.tenant_id,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=account.channel_account_id,
        payload=webhook,
        occurred_at=received_at,
        topic=topics.WEBHOOKS,
        traceparent=traceparent,
    )
