"""gRPC entry point: parlay.conversation.v1.ConversationService, read side. Every query is
scoped to the caller's tenant (`current_tenant()`); another tenant's conversations do not exist
for it. Pages use opaque keyset tokens, so a page is stable however large the table grows."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

import asyncpg

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.conversation.v1 import conversation_service_pb2 as cs
from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
from parlay_conversation import domain
from parlay_conversation.readmodel import ConversationReadModel
from parlay_kit.auth import current_tenant
from parlay_kit.envelope import to_timestamp
from parlay_kit.errors import InvalidArgument, NotFound

SERVICE_NAME = "parlay.conversation.v1.ConversationService"

DEFAULT_CONVERSATIONS_PAGE = 50
DEFAULT_MESSAGES_PAGE = 100
MAX_PAGE = 500

_STATUS = {
    domain.STATUS_OPEN: cs.CONVERSATION_STATUS_OPEN,
    domain.STATUS_PENDING: cs.CONVERSATION_STATUS_PENDING,
    domain.STATUS_SNOOZED: cs.CONVERSATION_STATUS_SNOOZED,
    domain.STATUS_RESOLVED: cs.CONVERSATION_STATUS_RESOLVED,
}
_DIRECTION = {
    domain.INBOUND: ce.MESSAGE_DIRECTION_INBOUND,
    domain.OUTBOUND: ce.MESSAGE_DIRECTION_OUTBOUND,
}


def conversation_to_proto(state: domain.ConversationState) -> cs.Conversation:
    return cs.Conversation(
        conversation_id=state.conversation_id,
        tenant_id=state.tenant_id,
        customer_id=state.customer_id,
        status=_STATUS.get(state.status, cs.CONVERSATION_STATUS_UNSPECIFIED),
        opened_at=to_timestamp(state.opened_at),
        last_activity_at=to_timestamp(state.last_activity_at),
        last_channel=state.last_channel,
        message_count=state.message_count,
        unread_count=state.unread_count,
        version=state.version,
    )


def message_to_proto(m: domain.TimelineMessage) -> cs.Message:
    return cs.Message(
        message_id=m.message_id,
        direction=_DIRECTION.get(m.direction, ce.MESSAGE_DIRECTION_UNSPECIFIED),
        channel=m.channel,
        channel_account_id=m.channel_account_id,
        text=m.text,
        occurred_at=to_timestamp(m.occurred_at),
        provider_message_id=m.provider_message_id,
    )


def page_size(value: int, default: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(value or default, MAX_PAGE)


def encode_token(kind: str, at: datetime, key: str | int) -> str:
    raw = json.dumps({"k": kind, "t": at.isoformat(), "id": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, kind: str) -> tuple[datetime, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data["k"] != kind:
            raise ValueError("token of another listing")
        return datetime.fromisoformat(data["t"]), data["id"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("page_token", "is not a token this listing returned") from exc


class ConversationServicer(cs_grpc.ConversationServiceServicer):
    def __init__(self, pool: asyncpg.Pool, read_model: ConversationReadModel) -> None:
        self.pool = pool
        self.read_model = read_model

    async def ListConversations(  # noqa: N802 - gRPC method name
        self, request: cs.ListConversationsRequest, context: Any = None
    ) -> cs.ListConversationsResponse:
        tenant = current_tenant()
        limit = page_size(request.page_size, DEFAULT_CONVERSATIONS_PAGE)
        after = None
        if request.page_token:
            at, conversation_id = decode_token(request.page_token, "conversations")
            if not isinstance(conversation_id, str):
                raise InvalidArgument("page_token", "is not a token this listing returned")
            after = (at, conversation_id)
        async with self.pool.acquire() as conn:
            rows = await self.read_model.list_conversations(
                conn,
                tenant,
                customer_id=request.customer_id.strip(),
                after=after,
                limit=limit + 1,
            )
        response = cs.ListConversationsResponse(
            conversations=[conversation_to_proto(c) for c in rows[:limit]]
        )
        if len(rows) > limit:
            last = rows[limit - 1]
            response.next_page_token = encode_token(
                "conversations", last.last_activity_at, last.conversation_id
            )
        return response

    async def GetConversation(  # noqa: N802 - gRPC method name
        self, request: cs.GetConversationRequest, context: Any = None
    ) -> cs.GetConversationResponse:
        tenant = current_tenant()
        conversation_id = request.conversation_id.strip()
        if not conversation_id:
            raise InvalidArgument("conversation_id", "is required")
        limit = page_size(request.page_size, DEFAULT_MESSAGES_PAGE)
        after = None
        if request.page_token:
            at, seq = decode_token(request.page_token, f"messages:{conversation_id}")
            if not isinstance(seq, int):
                raise InvalidArgument("page_token", "is not a token this listing returned")
            after = (at, seq)
        async with self.pool.acquire() as conn:
            state = await self.read_model.get(conn, tenant, conversation_id)
            if state is None:
                raise NotFound(f"conversation {conversation_id} not found")
            messages = await self.read_model.messages(
                conn, conversation_id, after=after, limit=limit + 1
            )
        conversation = conversation_to_proto(state)
        conversation.messages.extend(message_to_proto(m) for m in messages[:limit])
        response = cs.GetConversationResponse(conversation=conversation)
        if len(messages) > limit:
            last = messages[limit - 1]
            response.next_page_token = encode_token(
                f"messages:{conversation_id}", last.occurred_at, last.seq
            )
        return response
