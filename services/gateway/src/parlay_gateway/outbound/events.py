"""Pure: ledger rows -> deliveries, and the OutboundMessageSent / OutboundMessageFailed events.

Both go to parlay.gateway.inbound.v1 on the contact aggregate `<channel_account_id>:<recipient>`,
the stream of that contact's MessageStatusUpdated. Their ids are deterministic in the message id:
a message has exactly one outcome event, whatever happens to the process that records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay_gateway.outbound.senders.base import Delivery
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, to_timestamp

AGGREGATE_TYPE = "contact"
#: error_code of OutboundMessageFailed when a request was sent but its answer was lost and the
#: provider offers no way to re-send it safely.
OUTCOME_UNKNOWN = "outcome_unknown"


def delivery_of(row: Mapping[str, Any]) -> Delivery:
    request = ce.OutboundMessageRequested()
    request.ParseFromString(bytes(row["request"]))
    return Delivery(
        message_id=row["message_id"],
        request_event_id=str(row["request_event_id"]),
        tenant_id=row["tenant_id"],
        conversation_id=row["conversation_id"],
        channel=row["channel"],
        channel_account_id=row["channel_account_id"],
        recipient=row["recipient"],
        content=request.content,
        text=request.text,
        purpose=request.purpose,
        reply_to_provider_message_id=request.reply_to_provider_message_id,
        attempts=int(row["attempts"]),
    )


def contact_id(channel_account_id: str, recipient: str) -> str:
    return f"{channel_account_id}:{recipient}"


def sent_event(
    row: Mapping[str, Any], provider_message_id: str, at: datetime, attempts: int
) -> NewEvent:
    payload = gw.OutboundMessageSent(
        request_event_id=str(row["request_event_id"]),
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        channel=row["channel"],
        channel_account_id=row["channel_account_id"],
        recipient=gw.ChannelAddress(channel=row["channel"], address=row["recipient"]),
        provider_message_id=provider_message_id,
        sent_at=to_timestamp(at),
        attempts=attempts,
    )
    return _event(row, payload, "sent", at)


def failed_event(
    row: Mapping[str, Any], error_code: str, error_message: str, at: datetime, attempts: int
) -> NewEvent:
    payload = gw.OutboundMessageFailed(
        request_event_id=str(row["request_event_id"]),
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        channel=row["channel"],
        channel_account_id=row["channel_account_id"],
        recipient=gw.ChannelAddress(channel=row["channel"], address=row["recipient"]),
        error_code=error_code,
        error_message=error_message[:1000],
        attempts=attempts,
        failed_at=to_timestamp(at),
    )
    return _event(row, payload, "failed", at)


def _event(row: Mapping[str, Any], payload: Any, kind: str, at: datetime) -> NewEvent:
    # One outcome per message: sent and failed share the id, so a second outcome is dropped.
    del kind
    return NewEvent(
        event_id=deterministic_event_id("outbound", row["message_id"], "outcome"),
        tenant_id=row["tenant_id"],
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=contact_id(row["channel_account_id"], row["recipient"]),
        payload=payload,
        occurred_at=at,
        topic=topics.INBOUND,
        correlation_id=row["correlation_id"] or "",
        causation_id=str(row["request_event_id"]),
        traceparent=row["traceparent"] or "",
    )
