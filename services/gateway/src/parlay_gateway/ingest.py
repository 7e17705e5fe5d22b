"""The raw webhook as an event: WebhookReceived on the channel account's aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _set_timestamp(target: Timestamp, moment: datetime) -> None:
    """`target` = `to_timestamp(moment)`, without protobuf's pure-Python FromDatetime."""
    if moment.tzinfo is None:  # naive: to_timestamp's reading (local time) applies
        target.CopyFrom(to_timestamp(moment))
        return
    delta = moment - _EPOCH  # normalized: days may be negative, seconds and microseconds not
    target.seconds = delta.days * 86_400 + delta.seconds
    target.nanos = delta.microseconds * 1_000


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
    webhook = WebhookReceived(
        channel=adapter.channel,
        channel_account_id=account.channel_account_id,
        http_method=request.method,
        path=request.path,
        body=request.body,
    )
    # Item by item and field by field: passing a dict and a Timestamp to the constructor goes
    # through protobuf's generic (pure Python) map update and datetime conversion, which cost
    # more than the rest of this function.
    retained = webhook.headers
    for name in adapter.retained_headers:
        value = request.headers.get(name)
        if value is not None:
            retained[name] = value
    _set_timestamp(webhook.received_at, received_at)
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
