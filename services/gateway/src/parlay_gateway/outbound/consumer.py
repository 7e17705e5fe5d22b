"""Projector handler: parlay.conversation.v1 OutboundMessageRequested -> a 'requested' ledger row.

It only records; the dispatcher sends. Recording happens in the projector's batch transaction
(with the consumed offsets and the processed-event ids), so a request is recorded exactly once
however often Kafka redelivers it, and the insert is idempotent on message_id besides. No HTTP
call ever runs inside this transaction.
"""

from __future__ import annotations

import logging

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay_gateway.outbound.ledger import Ledger
from parlay_gateway.outbound.senders import SenderRegistry
from parlay_kit.envelope import from_timestamp
from parlay_kit.projector import ConsumedEvent, UnitOfWork

log = logging.getLogger(__name__)

NAME = "outbound"


class MissingMessageId(ValueError):
    """A request without message_id cannot be sent exactly once: dead-lettered."""


class OutboundRequests:
    def __init__(self, ledger: Ledger, senders: SenderRegistry) -> None:
        self.ledger = ledger
        self.senders = senders

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        payload = event.payload
        if not isinstance(payload, ce.OutboundMessageRequested):
            return
        if not self.senders.handles(payload.channel):
            return
        if not payload.message_id:
            raise MissingMessageId(f"OutboundMessageRequested {event.event_id} has no message_id")
        envelope = event.envelope
        inserted = await self.ledger.record_requested(
            uow.conn,
            message_id=payload.message_id,
            request_event_id=event.event_id,
            tenant_id=envelope.tenant_id,
            conversation_id=payload.conversation_id,
            channel=payload.channel,
            channel_account_id=payload.channel_account_id,
            recipient=payload.recipient_address,
            request=payload.SerializeToString(deterministic=True),
            correlation_id=envelope.correlation_id or event.event_id,
            traceparent=event.traceparent,
            requested_at=from_timestamp(envelope.occurred_at),
        )
        if not inserted:
            log.info(
                "outbound request for message %s already recorded (event %s)",
                payload.message_id,
                event.event_id,
            )
