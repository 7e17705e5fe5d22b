"""The API representation (parlay.conversation.v1 Conversation, Message, Note), shared by the
servicer and the read model.

GetConversation and ListConversations are the inbox's hottest reads, so what they return is
rendered when it changes — by the writers, in the same transaction as the rest of the read
model — and stored next to it as protobuf bytes:

* `conversations.api`: the Conversation without its messages, notes and service windows (the
  windows depend on the time of the read);
* `conversation_messages.api`: the message as an *entry of Conversation.messages* (field tag,
  length, bytes); for an outbound message `api_static` holds the part that never changes, and
  a status update renders the entry again from it and the new progress (status, status_at,
  provider message id, error);
* `conversation_notes.api`: the note as an entry of Conversation.notes.

A page is then one `string_agg` in Postgres and one `MergeFromString` in Python. Protobuf allows
a message's fields in any order and lets a later value of a field win, which is what makes
entries of static bytes + progress bytes well-formed. A change to these messages' schema means
rebuilding the read model (TimelineProjection), as for any other read-model change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.conversation.v1 import conversation_service_pb2 as cs
from parlay_conversation import domain
from parlay_conversation.domain import (
    INBOUND,
    OUTBOUND,
    ChannelContact,
    ConversationState,
    NoteRow,
    TimelineMessage,
)

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Conversation.messages (10) and Conversation.notes (18), length-delimited.
MESSAGES_TAG = bytes([(10 << 3) | 2])
NOTES_TAG = bytes([(18 << 3) | 2, 1])
#: Message.content (12) and Message.outbound_content (13), length-delimited.
_CONTENT_TAG = bytes([(12 << 3) | 2])
_OUTBOUND_CONTENT_TAG = bytes([(13 << 3) | 2])

DIRECTIONS = {
    INBOUND: ce.MESSAGE_DIRECTION_INBOUND,
    OUTBOUND: ce.MESSAGE_DIRECTION_OUTBOUND,
}
STATUSES = {
    domain.STATUS_OPEN: cs.CONVERSATION_STATUS_OPEN,
    domain.STATUS_PENDING: cs.CONVERSATION_STATUS_PENDING,
    domain.STATUS_SNOOZED: cs.CONVERSATION_STATUS_SNOOZED,
    domain.STATUS_RESOLVED: cs.CONVERSATION_STATUS_RESOLVED,
}
HANDLERS = {
    domain.HANDLER_BOT: cs.CONVERSATION_HANDLER_BOT,
    domain.HANDLER_HUMAN: cs.CONVERSATION_HANDLER_HUMAN,
}


def timestamp(dt: datetime) -> Timestamp:
    """`to_timestamp` without the calendar round trip (pages convert many)."""
    delta = dt - _UNIX_EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


#: One-byte varints (every length below 128: most fields' lengths).
_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]


def varint(n: int) -> bytes:
    """A protobuf varint; a negative int64 is encoded as its 64-bit two's complement."""
    if 0 <= n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Hand-written protobuf encoding for the rows the projection renders for every message.
#
# Building a `cs.Message` (and its Timestamp) to serialize it costs several microseconds in the
# upb runtime, most of a rebuild's per-message work; writing the few fields directly costs a
# fraction of that. The output is byte-for-byte what `SerializeToString()` of the same message
# gives (fields in field-number order, proto3 defaults omitted) — tests/test_render.py checks
# it against the generated code — so rows written before and after this encoder are equal.


def _tag(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


_LEN, _VARINT = 2, 0


def _str(tag: bytes, value: str) -> bytes:
    """A non-empty string field (callers skip empty ones: proto3 omits them)."""
    data = value.encode()
    n = len(data)
    return tag + (_SMALL_VARINTS[n] if n < 0x80 else varint(n)) + data


_TS_SECONDS = _tag(1, _VARINT)
_TS_NANOS = _tag(2, _VARINT)


def timestamp_bytes(dt: datetime) -> bytes:
    """A google.protobuf.Timestamp's serialized body (seconds, nanos) for an aware datetime,
    as `timestamp(dt).SerializeToString()` gives it."""
    delta = dt - _UNIX_EPOCH
    seconds = delta.days * 86400 + delta.seconds
    body = _TS_SECONDS + varint(seconds) if seconds else b""
    if delta.microseconds:
        body += _TS_NANOS + varint(delta.microseconds * 1000)
    return body


def _message_field(tag: bytes, body: bytes) -> bytes:
    n = len(body)
    return tag + (_SMALL_VARINTS[n] if n < 0x80 else varint(n)) + body


_M_ID = _tag(1, _LEN)
_M_DIRECTION = _tag(2, _VARINT)
_M_CHANNEL = _tag(3, _LEN)
_M_ACCOUNT = _tag(4, _LEN)
_M_TEXT = _tag(5, _LEN)
_M_OCCURRED_AT = _tag(6, _LEN)
_M_PROVIDER_ID = _tag(7, _LEN)
_M_STATUS = _tag(8, _LEN)
_M_SENDER = _tag(9, _LEN)
_M_ERROR_CODE = _tag(10, _LEN)
_M_ERROR_MESSAGE = _tag(11, _LEN)
_M_PURPOSE = _tag(14, _LEN)
_M_CLIENT_ID = _tag(15, _LEN)
_M_STATUS_AT = _tag(16, _LEN)


# ------------------------------------------------------------------------------- conversations


def conversation_header(state: ConversationState) -> cs.Conversation:
    """The conversation without messages, notes and service windows."""
    c = cs.Conversation(
        conversation_id=state.conversation_id,
        tenant_id=state.tenant_id,
        customer_id=state.owner,
        origin_customer_id=state.customer_id,
        status=STATUSES.get(state.status, cs.CONVERSATION_STATUS_UNSPECIFIED),
        opened_at=timestamp(state.opened_at),
        last_activity_at=timestamp(state.last_activity_at),
        last_channel=state.last_channel,
        message_count=state.message_count,
        unread_count=state.unread_count,
        version=state.version,
        assignee_agent_id=state.assignee_agent_id,
        team_id=state.team_id,
        handler=HANDLERS.get(state.handler, cs.CONVERSATION_HANDLER_UNSPECIFIED),
        labels=list(state.labels),
        channels=list(state.channels),
        sla_breaches=[cs.SlaBreach(kind=kind, cycle=cycle) for kind, cycle in state.breaches],
    )
    if state.snoozed_until is not None:
        c.snoozed_until.CopyFrom(timestamp(state.snoozed_until))
    if state.first_response_at is not None:
        c.first_response_at.CopyFrom(timestamp(state.first_response_at))
    return c


def header_bytes(state: ConversationState) -> bytes:
    return conversation_header(state).SerializeToString(deterministic=True)


def add_windows(
    c: cs.Conversation,
    contacts: Sequence[ChannelContact],
    windows: Mapping[str, int],
    now: datetime,
) -> None:
    """The service windows of the channels that have one, as of `now`."""
    for contact in contacts:
        w = domain.window_of(contact, contact.channel, windows, now)
        if w is None:
            continue
        sw = cs.ServiceWindow(
            channel=w.channel, channel_account_id=w.channel_account_id, open=w.open
        )
        if w.last_inbound_at is not None:
            sw.last_inbound_at.CopyFrom(timestamp(w.last_inbound_at))
        if w.closes_at is not None:
            sw.closes_at.CopyFrom(timestamp(w.closes_at))
        c.service_windows.append(sw)


def conversation_to_proto(
    state: ConversationState,
    *,
    windows: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> cs.Conversation:
    c = conversation_header(state)
    if windows is not None and now is not None:
        add_windows(c, state.contacts, windows, now)
    return c


# ------------------------------------------------------------------------------- messages


def static_message(m: TimelineMessage) -> cs.Message:
    """The fields of a message that never change after it joined the timeline (content not
    included: see `message_static_bytes`)."""
    msg = cs.Message(
        message_id=m.message_id,
        direction=DIRECTIONS.get(m.direction, ce.MESSAGE_DIRECTION_UNSPECIFIED),
        channel=m.channel,
        channel_account_id=m.channel_account_id,
        text=m.text,
        occurred_at=timestamp(m.occurred_at),
        sender=m.sender,
        purpose=m.purpose,
        client_message_id=m.client_message_id,
    )
    if m.direction != OUTBOUND:
        msg.provider_message_id = m.provider_message_id
    return msg


def message_static_bytes(m: TimelineMessage) -> bytes:
    """The unchanging fields, serialized (`static_message(m).SerializeToString()`, written
    directly). The content is already serialized: it is appended as its field, not parsed and
    serialized again."""
    outbound = m.direction == OUTBOUND
    data = _str(_M_ID, m.message_id) if m.message_id else b""
    direction = DIRECTIONS.get(m.direction, ce.MESSAGE_DIRECTION_UNSPECIFIED)
    if direction:
        data += _M_DIRECTION + varint(direction)
    if m.channel:
        data += _str(_M_CHANNEL, m.channel)
    if m.channel_account_id:
        data += _str(_M_ACCOUNT, m.channel_account_id)
    if m.text:
        data += _str(_M_TEXT, m.text)
    data += _message_field(_M_OCCURRED_AT, timestamp_bytes(m.occurred_at))
    if not outbound and m.provider_message_id:
        data += _str(_M_PROVIDER_ID, m.provider_message_id)
    if m.sender:
        data += _str(_M_SENDER, m.sender)
    if m.purpose:
        data += _str(_M_PURPOSE, m.purpose)
    if m.client_message_id:
        data += _str(_M_CLIENT_ID, m.client_message_id)
    if m.content:
        tag = _OUTBOUND_CONTENT_TAG if m.direction == OUTBOUND else _CONTENT_TAG
        data += tag + varint(len(m.content)) + m.content
    return data


def progress_bytes(
    status: str,
    status_at: datetime | None,
    provider_message_id: str,
    error_code: str,
    error_message: str,
) -> bytes:
    """An outbound message's changing fields, serialized (they follow the static bytes); the
    bytes of `progress_message(...).SerializeToString()`, written directly."""
    data = _str(_M_PROVIDER_ID, provider_message_id) if provider_message_id else b""
    if status:
        data += _str(_M_STATUS, status)
    if error_code:
        data += _str(_M_ERROR_CODE, error_code)
    if error_message:
        data += _str(_M_ERROR_MESSAGE, error_message)
    if status_at is not None:
        data += _message_field(_M_STATUS_AT, timestamp_bytes(status_at))
    return data


def progress_message(
    status: str,
    status_at: datetime | None,
    provider_message_id: str,
    error_code: str,
    error_message: str,
) -> cs.Message:
    """The changing fields as a message (the reference `progress_bytes` encodes)."""
    msg = cs.Message(
        status=status,
        provider_message_id=provider_message_id,
        error_code=error_code,
        error_message=error_message,
    )
    if status_at is not None:
        msg.status_at.CopyFrom(timestamp(status_at))
    return msg


def entry(data: bytes, tag: bytes = MESSAGES_TAG) -> bytes:
    return _message_field(tag, data)


def message_entry(m: TimelineMessage) -> bytes:
    """The stored representation of a message: an entry of Conversation.messages."""
    data = message_static_bytes(m)
    if m.direction == OUTBOUND:
        data += progress_bytes(
            m.status, m.status_at, m.provider_message_id, m.error_code, m.error_message
        )
    return entry(data)


def set_progress(
    msg: cs.Message,
    status: str,
    status_at: datetime | None,
    provider_message_id: str,
    error_code: str,
    error_message: str,
) -> None:
    msg.status = status
    if status_at is not None:
        msg.status_at.CopyFrom(timestamp(status_at))
    if provider_message_id:
        msg.provider_message_id = provider_message_id
    if error_code:
        msg.error_code = error_code
    if error_message:
        msg.error_message = error_message


def message_to_proto(m: TimelineMessage) -> cs.Message:
    msg = cs.Message.FromString(message_static_bytes(m))
    if m.direction == OUTBOUND:
        set_progress(
            msg, m.status, m.status_at, m.provider_message_id, m.error_code, m.error_message
        )
    return msg


# ------------------------------------------------------------------------------- notes


def note_to_proto(n: NoteRow) -> cs.Note:
    return cs.Note(
        note_id=n.note_id, author=n.author, text=n.text, created_at=timestamp(n.created_at)
    )


def note_entry(n: NoteRow) -> bytes:
    """The stored representation of a note: an entry of Conversation.notes."""
    return entry(note_to_proto(n).SerializeToString(deterministic=True), NOTES_TAG)
