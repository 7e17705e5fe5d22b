"""Conversation domain rules: pure functions, no I/O.

A conversation is an aggregate ("conversation", id = conversation_id). There is one per
customer — one timeline across every channel the customer writes on — so its id derives from
(tenant, customer_id). Its state is a fold of its events (`apply`); `decide_inbound` says what an
inbound message means for it. The timeline projection and the read-model rebuild share both.

Rules implemented now (issue 2):

* The first message of a customer opens the conversation (ConversationOpened, status open),
  then every message is appended (MessageAppended) with a message id derived from the gateway
  event it came from, so the same message never appears twice.
* Inbound messages count as unread; the channel of the latest inbound message (by provider
  time) is the conversation's last channel, where a reply goes by default.
* Timelines are ordered by provider time, then by append order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from google.protobuf.message import Message

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.envelope import deterministic_event_id, from_timestamp, to_timestamp

AGGREGATE_TYPE = "conversation"

STATUS_OPEN = "open"
STATUS_PENDING = "pending"
STATUS_SNOOZED = "snoozed"
STATUS_RESOLVED = "resolved"

INBOUND = "inbound"
OUTBOUND = "outbound"
_DIRECTIONS = {
    ce.MESSAGE_DIRECTION_INBOUND: INBOUND,
    ce.MESSAGE_DIRECTION_OUTBOUND: OUTBOUND,
}


def conversation_id_for(tenant_id: str, customer_id: str) -> str:
    """The customer's one conversation (stable on replay)."""
    return deterministic_event_id("conversation", tenant_id, customer_id)


def message_id_for(source_event_id: str) -> str:
    """A timeline message's id, from the gateway event it came from."""
    return deterministic_event_id(source_event_id, "message")


def event_id_for(source_event_id: str, kind: str) -> str:
    """Id of the event of `kind` caused by `source_event_id`: reprocessing never duplicates."""
    return deterministic_event_id(source_event_id, "conversation", kind)


def normalize_identity(tenant_id: str, channel: str, address: str) -> tuple[str, str, str]:
    """The identity key as the profile service links it: channel lower-case, address trimmed."""
    return (tenant_id, channel.strip().lower(), address.strip())


# ------------------------------------------------------------------------------- content


def render_text(content: ge.MessageContent) -> str:
    """A plain-text rendering of any message content, for timelines and search."""
    kind = content.WhichOneof("kind")
    if kind == "text":
        return content.text.body
    if kind == "media":
        m = content.media
        return m.caption or f"[{m.kind or 'media'}{': ' + m.filename if m.filename else ''}]"
    if kind == "location":
        loc = content.location
        label = ", ".join(p for p in (loc.name, loc.address) if p)
        return f"[location: {label or f'{loc.latitude:.6f},{loc.longitude:.6f}'}]"
    if kind == "contacts":
        names = ", ".join(c.name for c in content.contacts.contacts if c.name)
        return f"[contact: {names}]" if names else "[contact]"
    if kind == "interactive_reply":
        r = content.interactive_reply
        return r.title or r.payload or r.reply_id
    if kind == "reaction":
        return f"[reaction: {content.reaction.emoji}]" if content.reaction.emoji else "[reaction]"
    if kind == "order":
        o = content.order
        count = sum(int(i.quantity) for i in o.items)
        summary = f"[order: {count} item{'s' if count != 1 else ''}]"
        return f"{summary} {o.text}" if o.text else summary
    if kind == "unsupported":
        return f"[unsupported: {content.unsupported.provider_type or 'message'}]"
    return ""


# ------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class ConversationState:
    tenant_id: str
    conversation_id: str
    customer_id: str
    status: str
    opened_at: datetime
    last_activity_at: datetime
    #: Channel (and account) the customer last wrote on, by provider time.
    last_channel: str
    last_channel_account_id: str
    #: Provider time of the inbound message that set last_channel.
    last_inbound_at: datetime | None
    message_count: int
    unread_count: int
    version: int


@dataclass(frozen=True, slots=True)
class TimelineMessage:
    """A message as the timeline stores it (one MessageAppended)."""

    tenant_id: str
    conversation_id: str
    message_id: str
    #: 1-based append position in the conversation.
    seq: int
    direction: str
    channel: str
    channel_account_id: str
    provider_message_id: str
    text: str
    content: bytes
    occurred_at: datetime
    source_event_id: str


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """A conversation event as the fold sees it (from the store, the topic, or just decided)."""

    tenant_id: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    payload: Message
    event_id: str = ""


class InvalidTransition(ValueError):
    """An event does not fit the state it is applied to (a bug or a corrupted stream)."""


def apply(
    state: ConversationState | None, event: ConversationEvent
) -> tuple[ConversationState, TimelineMessage | None]:
    """Fold one event; returns the new state and the message it appended, if any. Event types
    this version does not know still advance the version."""
    payload = event.payload
    at = event.occurred_at
    if isinstance(payload, ce.ConversationOpened):
        if state is not None:
            raise InvalidTransition(f"conversation {payload.conversation_id} opened twice")
        return (
            ConversationState(
                tenant_id=event.tenant_id,
                conversation_id=payload.conversation_id,
                customer_id=payload.customer_id,
                status=STATUS_OPEN,
                opened_at=at,
                last_activity_at=at,
                last_channel=payload.channel,
                last_channel_account_id=payload.channel_account_id,
                last_inbound_at=None,
                message_count=0,
                unread_count=0,
                version=event.version,
            ),
            None,
        )
    if state is None:
        raise InvalidTransition(
            f"{type(payload).__name__} for conversation {event.aggregate_id} before it opened"
        )
    if isinstance(payload, ce.MessageAppended):
        direction = _DIRECTIONS.get(payload.direction, INBOUND)
        sent_at = from_timestamp(payload.sent_at) if payload.HasField("sent_at") else at
        message = TimelineMessage(
            tenant_id=state.tenant_id,
            conversation_id=state.conversation_id,
            message_id=payload.message_id,
            seq=state.message_count + 1,
            direction=direction,
            channel=payload.channel,
            channel_account_id=payload.channel_account_id,
            provider_message_id=payload.provider_message_id,
            text=payload.text,
            content=payload.content.SerializeToString(deterministic=True),
            occurred_at=sent_at,
            source_event_id=payload.source_event_id,
        )
        new = replace(
            state,
            message_count=state.message_count + 1,
            last_activity_at=max(state.last_activity_at, sent_at),
            version=event.version,
        )
        if direction == INBOUND:
            new = replace(new, unread_count=new.unread_count + 1)
            if new.last_inbound_at is None or sent_at >= new.last_inbound_at:
                new = replace(
                    new,
                    last_channel=payload.channel,
                    last_channel_account_id=payload.channel_account_id,
                    last_inbound_at=sent_at,
                )
        return new, message
    return replace(state, version=event.version), None


# ------------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message, as the timeline needs it (from a MessageReceived)."""

    tenant_id: str
    source_event_id: str
    channel: str
    channel_account_id: str
    address: str
    provider_message_id: str
    content: ge.MessageContent
    occurred_at: datetime

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.tenant_id, self.channel, self.address)


def decide_inbound(
    state: ConversationState | None, customer_id: str, msg: InboundMessage
) -> list[ConversationEvent]:
    """Open the customer's conversation if needed and append the message."""
    if state is not None:
        conversation_id = state.conversation_id
    else:
        conversation_id = conversation_id_for(msg.tenant_id, customer_id)
    payloads: list[tuple[str, Message]] = []
    if state is None:
        payloads.append(
            (
                "opened",
                ce.ConversationOpened(
                    conversation_id=conversation_id,
                    customer_id=customer_id,
                    channel=msg.channel,
                    channel_account_id=msg.channel_account_id,
                ),
            )
        )
    appended = ce.MessageAppended(
        conversation_id=conversation_id,
        message_id=message_id_for(msg.source_event_id),
        direction=ce.MESSAGE_DIRECTION_INBOUND,
        channel=msg.channel,
        channel_account_id=msg.channel_account_id,
        provider_message_id=msg.provider_message_id,
        text=render_text(msg.content),
        source_event_id=msg.source_event_id,
    )
    appended.content.CopyFrom(msg.content)
    appended.sent_at.CopyFrom(to_timestamp(msg.occurred_at))
    payloads.append(("message_appended", appended))
    version = state.version if state is not None else 0
    return [
        ConversationEvent(
            tenant_id=msg.tenant_id,
            aggregate_id=conversation_id,
            version=version + i,
            occurred_at=msg.occurred_at,
            payload=payload,
            event_id=event_id_for(msg.source_event_id, kind),
        )
        for i, (kind, payload) in enumerate(payloads, start=1)
    ]


def timeline_order(messages: list[tuple[InboundMessage, int]]) -> list[InboundMessage]:
    """Parked messages in the order they join the timeline: provider time, then arrival."""
    return [m for m, _ in sorted(messages, key=lambda pair: (pair[0].occurred_at, pair[1]))]
