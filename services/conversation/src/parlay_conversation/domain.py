"""Conversation domain rules: pure functions, no I/O.

A conversation is an aggregate ("conversation", id = conversation_id). There is one per
customer — one timeline across every channel the customer writes on — so its id derives from
(tenant, customer_id). Its state is a fold of its events (`apply`); the `decide_*` functions say
what an input (an inbound message, a provider status, an agent's command) means for it. The
timeline projector, the gRPC commands, the timer and the read-model rebuild all share `apply`, so
the read models are a function of the conversation topic.

Rules (docs/conversation.md has the full list):

* The first message of a customer opens the conversation (ConversationOpened), then every message
  is appended (MessageAppended) with a message id derived from the gateway event it came from.
* Lifecycle: open, pending, snoozed (until a time), resolved. A new inbound message reopens.
  Reopening a resolved conversation starts a new SLA cycle.
* Inbound messages count as unread until MarkRead; the channel of the latest inbound message (by
  provider time) is where a reply goes by default. Each channel keeps the provider time of the
  customer's last message: its customer-service window.
* Outbound statuses only move forward: pending < sent < failed < delivered < read. (A failure
  reported after "sent" wins over it; a delivery or read receipt is proof the message arrived and
  wins over a failure.)
* Timelines are ordered by provider time, then by append order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.envelope import deterministic_event_id, to_timestamp
from parlay_kit.errors import ConcurrencyError, FailedPrecondition, InvalidArgument

AGGREGATE_TYPE = "conversation"

STATUS_OPEN = "open"
STATUS_PENDING = "pending"
STATUS_SNOOZED = "snoozed"
STATUS_RESOLVED = "resolved"
STATUSES = (STATUS_OPEN, STATUS_PENDING, STATUS_SNOOZED, STATUS_RESOLVED)

INBOUND = "inbound"
OUTBOUND = "outbound"
_DIRECTIONS = {
    ce.MESSAGE_DIRECTION_INBOUND: INBOUND,
    ce.MESSAGE_DIRECTION_OUTBOUND: OUTBOUND,
}

HANDLER_BOT = "bot"
HANDLER_HUMAN = "human"

PURPOSE_TRANSACTIONAL = "transactional"
PURPOSE_MARKETING = "marketing"
PURPOSES = (PURPOSE_TRANSACTIONAL, PURPOSE_MARKETING)

#: Outbound message statuses and their order (a status never moves to a lower rank).
MSG_PENDING = "pending"
MSG_SENT = "sent"
MSG_DELIVERED = "delivered"
MSG_READ = "read"
MSG_FAILED = "failed"
STATUS_RANK = {MSG_PENDING: 0, MSG_SENT: 1, MSG_FAILED: 2, MSG_DELIVERED: 3, MSG_READ: 4}

SLA_FIRST_RESPONSE = "first_response"
SLA_RESOLUTION = "resolution"

#: Senders of outbound messages.
SENDER_BOT = "bot"
#: The bot could not answer (counts toward handing off).
SENDER_BOT_FALLBACK = "bot:fallback"


def agent_sender(agent_id: str) -> str:
    return f"agent:{agent_id}" if agent_id else "api"


def is_human_sender(sender: str) -> bool:
    """Replies that stop the first-response clock: an agent's or the integration's own."""
    return sender.startswith("agent:") or sender == "api"


# ------------------------------------------------------------------------------- ids


@functools.lru_cache(maxsize=65_536)
def conversation_id_for(tenant_id: str, customer_id: str) -> str:
    """The customer's one conversation (stable on replay)."""
    return deterministic_event_id("conversation", tenant_id, customer_id)


@functools.lru_cache(maxsize=65_536)
def message_id_for(source_event_id: str) -> str:
    """A timeline message's id, from the gateway event it came from."""
    return deterministic_event_id(source_event_id, "message")


def event_id_for(source_event_id: str, kind: str) -> str:
    """Id of the event of `kind` caused by `source_event_id`: reprocessing never duplicates."""
    return deterministic_event_id(source_event_id, "conversation", kind)


def outbound_message_id(tenant_id: str, conversation_id: str, client_message_id: str) -> str:
    """The message id (the gateway's send idempotency key) of a SendMessage with a client key."""
    return deterministic_event_id("outbound", tenant_id, conversation_id, client_message_id)


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
        return _render_media(content.media)
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


def _render_media(m: ge.MediaContent) -> str:
    return m.caption or f"[{m.kind or 'media'}{': ' + m.filename if m.filename else ''}]"


def render_outbound(content: ge.OutboundContent) -> str:
    """Plain text of an outbound message, for timelines and search."""
    kind = content.WhichOneof("kind")
    if kind == "text":
        return content.text.body
    if kind == "template":
        t = content.template
        params = ", ".join(p.text for p in t.body_parameters)
        return f"[template: {t.name}{f' ({params})' if params else ''}]"
    if kind == "interactive":
        i = content.interactive
        options = [b.title for b in i.buttons] + [r.title for s in i.sections for r in s.rows]
        body = " ".join(p for p in (i.header, i.body, i.footer) if p)
        return f"{body} [{' | '.join(options)}]" if options else body
    if kind == "media":
        return _render_media(content.media)
    return ""


# ------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class ChannelContact:
    """Where the customer can be reached on one channel account, and its service window."""

    channel: str
    channel_account_id: str
    address: str
    #: Provider time of the customer's last message on it (None: never wrote there).
    last_inbound_at: datetime | None
    last_provider_message_id: str = ""


@dataclass(slots=True)
class ConversationState:
    """A conversation's state. Treat it as a value: `apply_event` never changes the state it is
    given (it folds into a copy); only a fold that owns its copy (`apply_events`) mutates."""

    tenant_id: str
    conversation_id: str
    #: The customer the conversation was opened for.
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
    #: The customer it belongs to now (the survivor while its customer is merged).
    owner_customer_id: str = ""
    snoozed_until: datetime | None = None
    assignee_agent_id: str = ""
    team_id: str = ""
    assigned_at: datetime | None = None
    handler: str = HANDLER_HUMAN
    #: Consecutive messages the bot could not answer.
    bot_unanswered: int = 0
    labels: tuple[str, ...] = ()
    contacts: tuple[ChannelContact, ...] = ()
    #: Channels used in either direction, sorted.
    channels: tuple[str, ...] = ()
    #: SLA cycle: 1 when opened, +1 on every reopening of a resolved conversation.
    cycle: int = 1
    cycle_started_at: datetime | None = None
    #: The customer waits for a human's first response since then (this cycle).
    awaiting_since: datetime | None = None
    first_response_at: datetime | None = None
    #: (kind, cycle) of SLA breaches, in order.
    breaches: tuple[tuple[str, int], ...] = ()
    read_through_seq: int = 0
    resolved_at: datetime | None = None

    @property
    def owner(self) -> str:
        return self.owner_customer_id or self.customer_id

    def contact(self, channel: str, channel_account_id: str = "") -> ChannelContact | None:
        """The contact on a channel (and account); without an account, the one the customer
        wrote on last."""
        best: ChannelContact | None = None
        for c in self.contacts:
            if c.channel != channel:
                continue
            if channel_account_id:
                if c.channel_account_id == channel_account_id:
                    return c
                continue
            if best is None or _later(c.last_inbound_at, best.last_inbound_at):
                best = c
        return best


def _copier(cls: type) -> Callable[[Any], Any]:
    """A fast copy of one slots dataclass (`dataclasses.replace` costs ~50 us for a state this
    wide; the projection's hot path folds thousands of events a batch)."""
    names = [f.name for f in fields(cls)]
    namespace: dict[str, Any] = {"cls": cls}
    exec(  # noqa: S102 - generated from the dataclass's own field names
        f"def copy(s):\n    return cls({', '.join(f's.{n}' for n in names)})\n", namespace
    )
    return namespace["copy"]  # type: ignore[no-any-return]


_copy: Callable[[ConversationState], ConversationState] = _copier(ConversationState)


def _evolve(state: ConversationState, **changes: Any) -> ConversationState:
    new = _copy(state)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(ts: Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime (microseconds), fast (positional
    timedelta arguments: keyword ones cost half as much again, on every event of a rebuild)."""
    return _UNIX_EPOCH + timedelta(0, ts.seconds, ts.nanos // 1000)


def _later(a: datetime | None, b: datetime | None) -> bool:
    if a is None:
        return False
    return b is None or a > b


@dataclass(frozen=True, slots=True)
class TimelineMessage:
    """A message as the timeline stores it (a MessageAppended or an OutboundMessageRequested)."""

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
    #: Serialized MessageContent (inbound) or OutboundContent (outbound).
    content: bytes
    occurred_at: datetime
    source_event_id: str
    status: str = ""
    sender: str = ""
    purpose: str = ""
    client_message_id: str = ""
    error_code: str = ""
    error_message: str = ""
    status_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """An outbound message's status moved forward."""

    message_id: str
    status: str
    provider_message_id: str
    error_code: str
    error_message: str
    status_at: datetime


@dataclass(frozen=True, slots=True)
class NoteRow:
    tenant_id: str
    conversation_id: str
    note_id: str
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    tenant_id: str
    conversation_id: str
    schedule_id: str
    kind: str
    due_at: datetime
    #: Serialized ProactiveMessageScheduled.
    payload: bytes


@dataclass(frozen=True, slots=True)
class ScheduleDone:
    schedule_id: str
    outcome: str


Effect = TimelineMessage | StatusUpdate | NoteRow | ScheduleRow | ScheduleDone


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


def _contact_key(c: ChannelContact) -> tuple[str, str]:
    return (c.channel, c.channel_account_id)


def _upsert_contact(
    contacts: tuple[ChannelContact, ...], new: ChannelContact
) -> tuple[ChannelContact, ...]:
    """The contacts with `new` in place of the one on its channel account (or added), sorted
    by (channel, account). Every tuple of contacts is made here, so `contacts` is sorted and
    holds each account once: a replacement keeps its place (no sort on the hot path, a
    customer writing again on the same account)."""
    channel, account = new.channel, new.channel_account_id
    for i, c in enumerate(contacts):
        if c.channel == channel and c.channel_account_id == account:
            if (
                c.last_inbound_at is not None
                and new.last_inbound_at is not None
                and new.last_inbound_at < c.last_inbound_at
            ):
                # An older message (out of order): keep the newer window, learn the address.
                new = replace(c, address=c.address or new.address)
            return (*contacts[:i], new, *contacts[i + 1 :])
    return tuple(sorted((*contacts, new), key=_contact_key))


def apply(
    state: ConversationState | None, event: ConversationEvent
) -> tuple[ConversationState, TimelineMessage | None]:
    """Fold one event; returns the new state and the timeline message it appended, if any
    (the original contract, kept for readers such as rebuild.py; `apply_event` returns every
    read-model row)."""
    new, effects = apply_event(state, event)
    for effect in effects:
        if isinstance(effect, TimelineMessage):
            return new, effect
    return new, None


def apply_event(
    state: ConversationState | None, event: ConversationEvent
) -> tuple[ConversationState, list[Effect]]:
    """Fold one event; returns the new state and the read-model rows it produced. Event types
    this version does not know still advance the version. `state` is not changed."""
    if state is None:
        return _first(event), []
    new = _copy(state)
    return new, _fold_into(new, event)


def apply_events(
    state: ConversationState | None, events: Sequence[ConversationEvent]
) -> tuple[ConversationState | None, list[Effect]]:
    """Fold several events of one conversation (the rebuild's batches): the same folding as
    `apply_event`, one copy of the state for all of them."""
    effects: list[Effect] = []
    current = _copy(state) if state is not None else None
    for event in events:
        if current is None:
            current = _first(event)
        else:
            effects += _fold_into(current, event)
    return current, effects


def _first(event: ConversationEvent) -> ConversationState:
    if type(event.payload) is not ce.ConversationOpened:
        raise InvalidTransition(
            f"{type(event.payload).__name__} for conversation {event.aggregate_id} before it opened"
        )
    payload = cast(ce.ConversationOpened, event.payload)
    at = event.occurred_at
    return ConversationState(
        tenant_id=event.tenant_id,
        conversation_id=payload.conversation_id,
        customer_id=payload.customer_id,
        owner_customer_id=payload.customer_id,
        status=STATUS_OPEN,
        opened_at=at,
        last_activity_at=at,
        last_channel=payload.channel,
        last_channel_account_id=payload.channel_account_id,
        last_inbound_at=None,
        message_count=0,
        unread_count=0,
        version=event.version,
        cycle=1,
        cycle_started_at=at,
    )


def _fold_into(s: ConversationState, event: ConversationEvent) -> list[Effect]:
    """Apply one event to `s` in place (s is a copy the caller owns)."""
    fold_one = _APPLY.get(type(event.payload))
    s.version = event.version
    if fold_one is None:
        return []
    return fold_one(s, event.payload, event.occurred_at)


_NO_EFFECTS: list[Effect] = []


def _twice(s: ConversationState, payload: ce.ConversationOpened, at: datetime) -> list[Effect]:
    raise InvalidTransition(f"conversation {payload.conversation_id} opened twice")


def _appended(s: ConversationState, payload: ce.MessageAppended, at: datetime) -> list[Effect]:
    # Each protobuf field read makes a new Python object: read each once (the hot path of a
    # rebuild). Arguments are positional for the same reason (TimelineMessage's field order).
    direction = _DIRECTIONS.get(payload.direction, INBOUND)
    sent_at = timestamp(payload.sent_at) if payload.HasField("sent_at") else at
    channel = payload.channel
    account = payload.channel_account_id
    provider_message_id = payload.provider_message_id
    s.message_count += 1
    message = TimelineMessage(
        s.tenant_id,
        s.conversation_id,
        payload.message_id,
        s.message_count,
        direction,
        channel,
        account,
        provider_message_id,
        payload.text,
        payload.content.SerializeToString(deterministic=True),
        sent_at,
        payload.source_event_id,
    )
    if sent_at > s.last_activity_at:
        s.last_activity_at = sent_at
    if channel and channel not in s.channels:
        s.channels = tuple(sorted((*s.channels, channel)))
    if direction != INBOUND:
        return [message]
    s.unread_count += 1
    if s.last_inbound_at is None or sent_at >= s.last_inbound_at:
        s.last_channel = channel
        s.last_channel_account_id = account
        s.last_inbound_at = sent_at
    if channel:
        s.contacts = _upsert_contact(
            s.contacts,
            ChannelContact(channel, account, payload.address, sent_at, provider_message_id),
        )
    if (
        s.handler == HANDLER_HUMAN
        and s.awaiting_since is None
        and s.first_response_at is None
        and s.status != STATUS_RESOLVED
    ):
        s.awaiting_since = sent_at
    return [message]


def _requested(
    s: ConversationState, payload: ce.OutboundMessageRequested, at: datetime
) -> list[Effect]:
    channel = payload.channel
    sender = payload.sender
    s.message_count += 1
    effects: list[Effect] = [
        TimelineMessage(
            s.tenant_id,
            s.conversation_id,
            payload.message_id,
            s.message_count,
            OUTBOUND,
            channel,
            payload.channel_account_id,
            "",  # provider_message_id: known once sent
            payload.text,
            payload.content.SerializeToString(deterministic=True),
            at,
            "",  # source_event_id
            MSG_PENDING,
            sender,
            payload.purpose or PURPOSE_TRANSACTIONAL,
            payload.client_message_id,
            "",  # error_code
            "",  # error_message
            at,  # status_at
        )
    ]
    if payload.schedule_id:
        effects.append(ScheduleDone(payload.schedule_id, "sent"))
    if is_human_sender(sender) and s.first_response_at is None:
        s.first_response_at, s.awaiting_since = at, None
    if sender == SENDER_BOT_FALLBACK:
        s.bot_unanswered += 1
    elif sender == SENDER_BOT:
        s.bot_unanswered = 0
    if at > s.last_activity_at:
        s.last_activity_at = at
    if channel and channel not in s.channels:
        s.channels = tuple(sorted((*s.channels, channel)))
    return effects


def _status_changed(
    s: ConversationState, payload: ce.OutboundMessageStatusChanged, at: datetime
) -> list[Effect]:
    return [
        StatusUpdate(
            payload.message_id,
            payload.status,
            payload.provider_message_id,
            payload.error_code,
            payload.error_message,
            timestamp(payload.status_at) if payload.HasField("status_at") else at,
        )
    ]


def _suppressed(
    s: ConversationState, payload: ce.OutboundMessageSuppressed, at: datetime
) -> list[Effect]:
    if payload.schedule_id:
        return [ScheduleDone(payload.schedule_id, f"suppressed:{payload.reason}")]
    return []


def _lifecycle(
    s: ConversationState, payload: ce.ConversationStatusChanged, at: datetime
) -> list[Effect]:
    previous = s.status
    status = payload.status
    s.status = status
    s.snoozed_until = (
        timestamp(payload.snoozed_until)
        if status == STATUS_SNOOZED and payload.HasField("snoozed_until")
        else None
    )
    if status == STATUS_RESOLVED:
        s.awaiting_since = None
        s.resolved_at = at
    elif previous == STATUS_RESOLVED:
        # Reopened: a new SLA cycle.
        s.cycle += 1
        s.cycle_started_at = at
        s.awaiting_since = None
        s.first_response_at = None
        s.resolved_at = None
    return []


def _assigned(s: ConversationState, payload: ce.ConversationAssigned, at: datetime) -> list[Effect]:
    s.assignee_agent_id = payload.agent_id
    s.team_id = payload.team_id
    s.assigned_at = at
    return []


def _handed_off(
    s: ConversationState, payload: ce.ConversationHandedOff, at: datetime
) -> list[Effect]:
    if payload.handler == HANDLER_HUMAN:
        if s.awaiting_since is None and s.first_response_at is None and s.status != STATUS_RESOLVED:
            s.awaiting_since = at
    else:
        s.awaiting_since = None
    s.handler = payload.handler
    s.bot_unanswered = 0
    return []


def _note(s: ConversationState, payload: ce.NoteAdded, at: datetime) -> list[Effect]:
    return [
        NoteRow(
            tenant_id=s.tenant_id,
            conversation_id=s.conversation_id,
            note_id=payload.note_id,
            author=payload.author,
            text=payload.text,
            created_at=at,
        )
    ]


def _labels(s: ConversationState, payload: ce.LabelsChanged, at: datetime) -> list[Effect]:
    s.labels = tuple(sorted(set(payload.labels)))
    return []


def _read(s: ConversationState, payload: ce.ConversationRead, at: datetime) -> list[Effect]:
    s.unread_count = 0
    s.read_through_seq = max(s.read_through_seq, payload.read_through_seq)
    return []


def _breached(s: ConversationState, payload: ce.SlaBreached, at: datetime) -> list[Effect]:
    key = (payload.kind, payload.cycle)
    if key not in s.breaches:
        s.breaches = (*s.breaches, key)
    return []


def _owner(
    s: ConversationState, payload: ce.ConversationOwnerChanged, at: datetime
) -> list[Effect]:
    s.owner_customer_id = payload.customer_id
    return []


def _scheduled(
    s: ConversationState, payload: ce.ProactiveMessageScheduled, at: datetime
) -> list[Effect]:
    return [
        ScheduleRow(
            tenant_id=s.tenant_id,
            conversation_id=s.conversation_id,
            schedule_id=payload.schedule_id,
            kind=payload.kind,
            due_at=timestamp(payload.due_at),
            payload=payload.SerializeToString(deterministic=True),
        )
    ]


_APPLY: dict[type, Callable[[Any, Any, datetime], list[Effect]]] = {
    ce.ConversationOpened: _twice,
    ce.MessageAppended: _appended,
    ce.OutboundMessageRequested: _requested,
    ce.OutboundMessageStatusChanged: _status_changed,
    ce.OutboundMessageSuppressed: _suppressed,
    ce.ConversationStatusChanged: _lifecycle,
    ce.ConversationAssigned: _assigned,
    ce.ConversationHandedOff: _handed_off,
    ce.NoteAdded: _note,
    ce.LabelsChanged: _labels,
    ce.ConversationRead: _read,
    ce.SlaBreached: _breached,
    ce.ConversationOwnerChanged: _owner,
    ce.ProactiveMessageScheduled: _scheduled,
}


def fold(events: Sequence[ConversationEvent]) -> tuple[ConversationState | None, list[Effect]]:
    return apply_events(None, events)


# ------------------------------------------------------------------------------- decisions


def events_for(
    state: ConversationState | None,
    tenant_id: str,
    conversation_id: str,
    at: datetime,
    payloads: Sequence[tuple[str, Message]],
    event_id: Callable[[str], str],
) -> list[ConversationEvent]:
    """Events with explicit versions following the state's, ids from `event_id(kind)`."""
    version = state.version if state is not None else 0
    return [
        ConversationEvent(
            tenant_id=tenant_id,
            aggregate_id=conversation_id,
            version=version + i,
            occurred_at=at,
            payload=payload,
            event_id=event_id(kind),
        )
        for i, (kind, payload) in enumerate(payloads, start=1)
    ]


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

    @property
    def text(self) -> str:
        return render_text(self.content)


def decide_inbound(
    state: ConversationState | None,
    customer_id: str,
    msg: InboundMessage,
    *,
    owner_customer_id: str = "",
    bot_first: bool = False,
) -> list[ConversationEvent]:
    """Open the customer's conversation if needed, append the message, reopen if it was not
    open. `owner_customer_id`: the survivor when the customer is merged; `bot_first`: a new
    conversation is answered by the bot."""
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
        if owner_customer_id and owner_customer_id != customer_id:
            payloads.append(
                (
                    "owner",
                    ce.ConversationOwnerChanged(
                        conversation_id=conversation_id,
                        customer_id=owner_customer_id,
                        previous_customer_id=customer_id,
                        reason="merged",
                    ),
                )
            )
        if bot_first:
            payloads.append(
                (
                    "bot_first",
                    ce.ConversationHandedOff(
                        conversation_id=conversation_id,
                        handler=HANDLER_BOT,
                        previous_handler=HANDLER_HUMAN,
                        reason="bot_first",
                        actor="system",
                    ),
                )
            )
    elif state.status != STATUS_OPEN:
        payloads.append(
            (
                "reopened",
                ce.ConversationStatusChanged(
                    conversation_id=conversation_id,
                    status=STATUS_OPEN,
                    previous_status=state.status,
                    reason="inbound_message",
                    actor="customer",
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
        address=msg.address,
    )
    appended.content.CopyFrom(msg.content)
    appended.sent_at.CopyFrom(to_timestamp(msg.occurred_at))
    payloads.append(("message_appended", appended))
    return events_for(
        state,
        msg.tenant_id,
        conversation_id,
        msg.occurred_at,
        payloads,
        lambda kind: event_id_for(msg.source_event_id, kind),
    )


def timeline_order(messages: list[tuple[InboundMessage, int]]) -> list[InboundMessage]:
    """Parked messages in the order they join the timeline: provider time, then arrival."""
    return [m for m, _ in sorted(messages, key=lambda pair: (pair[0].occurred_at, pair[1]))]


# ------------------------------------------------------------------------------- statuses


def status_moves_forward(current: str, new: str) -> bool:
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, -1)


def decide_status(
    state: ConversationState,
    *,
    message_id: str,
    current_status: str,
    new_status: str,
    provider_message_id: str,
    status_at: datetime,
    source_event_id: str,
    error_code: str = "",
    error_message: str = "",
) -> list[ConversationEvent]:
    """An outbound message's status, if it moves forward (else nothing: statuses are
    monotone however late or out of order the provider reports them)."""
    if not status_moves_forward(current_status, new_status):
        return []
    payload = ce.OutboundMessageStatusChanged(
        conversation_id=state.conversation_id,
        message_id=message_id,
        status=new_status,
        provider_message_id=provider_message_id,
        error_code=error_code,
        error_message=error_message,
        source_event_id=source_event_id,
    )
    payload.status_at.CopyFrom(to_timestamp(status_at))
    return events_for(
        state,
        state.tenant_id,
        state.conversation_id,
        status_at,
        [("status", payload)],
        lambda kind: event_id_for(source_event_id, f"{kind}:{message_id}:{new_status}"),
    )


# ------------------------------------------------------------------------------- windows

#: Default customer-service windows (seconds) per channel; channels not listed have none.
DEFAULT_SERVICE_WINDOWS: dict[str, int] = {
    "whatsapp": 24 * 3600,
    "messenger": 24 * 3600,
    "instagram": 24 * 3600,
    "wechat": 48 * 3600,
}


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g}h" if hours >= 1 else f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class WindowState:
    channel: str
    channel_account_id: str
    last_inbound_at: datetime | None
    closes_at: datetime | None
    open: bool


def window_of(
    contact: ChannelContact | None,
    channel: str,
    windows: Mapping[str, int],
    now: datetime,
) -> WindowState | None:
    """The channel's service window (None when the channel has no window)."""
    seconds = windows.get(channel)
    if not seconds:
        return None
    last = contact.last_inbound_at if contact is not None else None
    closes = last + timedelta(seconds=seconds) if last is not None else None
    return WindowState(
        channel=channel,
        channel_account_id=contact.channel_account_id if contact else "",
        last_inbound_at=last,
        closes_at=closes,
        open=closes is not None and now < closes,
    )


def check_window(
    contact: ChannelContact | None,
    channel: str,
    content_kind: str,
    windows: Mapping[str, int],
    now: datetime,
) -> None:
    """Outside the channel's window only an approved template may be sent."""
    if content_kind == "template":
        return
    window = window_of(contact, channel, windows, now)
    if window is None or window.open:
        return
    span = _hours(windows[channel])
    if window.closes_at is None:
        raise FailedPrecondition(
            f"the {channel} customer-service window ({span}) is not open: the customer has not "
            f"written on {channel}; only an approved template can be sent"
        )
    raise FailedPrecondition(
        f"the {channel} customer-service window ({span}) closed at "
        f"{window.closes_at.isoformat()} (the customer last wrote at "
        f"{window.last_inbound_at.isoformat() if window.last_inbound_at else '?'}); "
        "only an approved template can be sent"
    )


# ------------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message the business wants to send into a conversation."""

    message_id: str
    content: ge.OutboundContent
    sender: str
    purpose: str = PURPOSE_TRANSACTIONAL
    channel: str = ""
    channel_account_id: str = ""
    client_message_id: str = ""
    schedule_id: str = ""
    #: Extra contact (address known from profile, not from a message) for a named channel.
    fallback_contact: ChannelContact | None = None


def reply_contact(state: ConversationState, out: Outbound) -> ChannelContact:
    """Where the message goes: the named channel (and account), else the channel the customer
    last wrote on."""
    channel = out.channel or state.last_channel
    account = out.channel_account_id if out.channel else ""
    if not out.channel:
        account = state.last_channel_account_id
    contact = state.contact(channel, account) or state.contact(channel)
    if contact is not None and account and contact.channel_account_id != account:
        contact = replace(contact, channel_account_id=account, last_inbound_at=None)
    if contact is None and out.fallback_contact is not None:
        contact = out.fallback_contact
    if contact is None or not contact.address:
        raise FailedPrecondition(f"the customer has no known address on {channel or 'any channel'}")
    if not contact.channel_account_id:
        raise InvalidArgument(
            "channel_account_id", f"is required: the customer never wrote on {channel}"
        )
    return contact


def decide_send(
    state: ConversationState,
    out: Outbound,
    *,
    at: datetime,
    windows: Mapping[str, int],
    event_id: str,
) -> tuple[list[ConversationEvent], ChannelContact]:
    """OutboundMessageRequested for the reply, or FailedPrecondition (window closed, no
    address). Consent is checked by the caller (it needs the consent ledger)."""
    contact = reply_contact(state, out)
    kind = out.content.WhichOneof("kind") or ""
    window_contact = state.contact(contact.channel, contact.channel_account_id)
    check_window(window_contact, contact.channel, kind, windows, at)
    reply_to = ""
    if window_contact is not None and contact.channel in _REPLY_TOKEN_CHANNELS:
        reply_to = window_contact.last_provider_message_id
    payload = ce.OutboundMessageRequested(
        conversation_id=state.conversation_id,
        message_id=out.message_id,
        customer_id=state.owner,
        channel=contact.channel,
        channel_account_id=contact.channel_account_id,
        recipient_address=contact.address,
        text=render_outbound(out.content),
        purpose=out.purpose,
        client_message_id=out.client_message_id,
        sender=out.sender,
        reply_to_provider_message_id=reply_to,
        schedule_id=out.schedule_id,
    )
    payload.content.CopyFrom(out.content)
    events = events_for(
        state,
        state.tenant_id,
        state.conversation_id,
        at,
        [("requested", payload)],
        lambda _kind: event_id,
    )
    return events, contact


#: Channels whose replies reference the customer's message (LINE reply tokens).
_REPLY_TOKEN_CHANNELS = frozenset({"line"})


def suppressed(
    state: ConversationState,
    *,
    message_id: str,
    reason: str,
    detail: str,
    purpose: str,
    text: str,
    trigger: str,
    at: datetime,
    event_id: str,
    channel: str = "",
    schedule_id: str = "",
) -> list[ConversationEvent]:
    payload = ce.OutboundMessageSuppressed(
        conversation_id=state.conversation_id,
        message_id=message_id,
        customer_id=state.owner,
        reason=reason,
        detail=detail,
        purpose=purpose,
        text=text,
        trigger=trigger,
        schedule_id=schedule_id,
        channel=channel,
    )
    return events_for(
        state,
        state.tenant_id,
        state.conversation_id,
        at,
        [("suppressed", payload)],
        lambda _k: event_id,
    )


# ------------------------------------------------------------------------------- commands


def check_version(state: ConversationState, expected_version: int) -> None:
    if expected_version and expected_version != state.version:
        raise ConcurrencyError(
            f"conversation {state.conversation_id} is at version {state.version}, "
            f"not {expected_version}"
        )


def decide_status_change(
    state: ConversationState,
    status: str,
    *,
    actor: str,
    reason: str,
    at: datetime,
    event_id: Callable[[str], str],
    snoozed_until: datetime | None = None,
) -> list[ConversationEvent]:
    """Move the lifecycle; nothing when already there (same snooze time included)."""
    if status not in STATUSES:
        raise InvalidArgument("status", f"must be one of {', '.join(STATUSES)}")
    if status == STATUS_SNOOZED:
        if snoozed_until is None:
            raise InvalidArgument("until", "is required")
        if snoozed_until <= at:
            raise InvalidArgument("until", "must be in the future")
    if state.status == status and (
        status != STATUS_SNOOZED or state.snoozed_until == snoozed_until
    ):
        return []
    payload = ce.ConversationStatusChanged(
        conversation_id=state.conversation_id,
        status=status,
        previous_status=state.status,
        reason=reason,
        actor=actor,
    )
    if snoozed_until is not None and status == STATUS_SNOOZED:
        payload.snoozed_until.CopyFrom(to_timestamp(snoozed_until))
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("status", payload)], event_id
    )


def decide_assign(
    state: ConversationState,
    *,
    agent_id: str,
    team_id: str,
    reason: str,
    actor: str,
    at: datetime,
    event_id: Callable[[str], str],
) -> list[ConversationEvent]:
    if state.assignee_agent_id == agent_id and state.team_id == team_id:
        return []
    payload = ce.ConversationAssigned(
        conversation_id=state.conversation_id,
        agent_id=agent_id,
        team_id=team_id,
        previous_agent_id=state.assignee_agent_id,
        previous_team_id=state.team_id,
        reason=reason,
        actor=actor,
    )
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("assigned", payload)], event_id
    )


def decide_handoff(
    state: ConversationState,
    *,
    to: str,
    reason: str,
    actor: str,
    at: datetime,
    event_id: Callable[[str], str],
) -> list[ConversationEvent]:
    if to not in (HANDLER_BOT, HANDLER_HUMAN):
        raise InvalidArgument("to", "must be the bot or a human")
    if state.handler == to:
        return []
    payload = ce.ConversationHandedOff(
        conversation_id=state.conversation_id,
        handler=to,
        previous_handler=state.handler,
        reason=reason,
        actor=actor,
    )
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("handed_off", payload)], event_id
    )


def decide_note(
    state: ConversationState, *, note_id: str, author: str, text: str, at: datetime, event_id: str
) -> list[ConversationEvent]:
    payload = ce.NoteAdded(
        conversation_id=state.conversation_id, note_id=note_id, author=author, text=text
    )
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("note", payload)], lambda _k: event_id
    )


def decide_labels(
    state: ConversationState,
    labels: Sequence[str],
    *,
    actor: str,
    at: datetime,
    event_id: Callable[[str], str],
) -> list[ConversationEvent]:
    new = tuple(sorted(set(labels)))
    if new == state.labels:
        return []
    payload = ce.LabelsChanged(conversation_id=state.conversation_id, labels=new, actor=actor)
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("labels", payload)], event_id
    )


def decide_read(
    state: ConversationState, *, actor: str, at: datetime, event_id: Callable[[str], str]
) -> list[ConversationEvent]:
    if state.unread_count == 0 and state.read_through_seq >= state.message_count:
        return []
    payload = ce.ConversationRead(
        conversation_id=state.conversation_id,
        read_through_seq=state.message_count,
        actor=actor,
    )
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("read", payload)], event_id
    )


def decide_owner(
    state: ConversationState,
    owner: str,
    *,
    reason: str,
    merge_id: str,
    at: datetime,
    event_id: Callable[[str], str],
) -> list[ConversationEvent]:
    if state.owner == owner:
        return []
    payload = ce.ConversationOwnerChanged(
        conversation_id=state.conversation_id,
        customer_id=owner,
        previous_customer_id=state.owner,
        reason=reason,
        merge_id=merge_id,
    )
    return events_for(
        state, state.tenant_id, state.conversation_id, at, [("owner", payload)], event_id
    )


# ------------------------------------------------------------------------------- SLA


@dataclass(frozen=True, slots=True)
class SlaTargets:
    first_response_seconds: int = 0
    resolution_seconds: int = 0


@dataclass(frozen=True, slots=True)
class SlaDue:
    kind: str
    started_at: datetime
    due_at: datetime
    target_seconds: int


def sla_deadlines(state: ConversationState, targets: SlaTargets) -> list[SlaDue]:
    """The running SLA clocks of the conversation and when each is due (not yet breached)."""
    out: list[SlaDue] = []
    if (
        targets.first_response_seconds > 0
        and state.awaiting_since is not None
        and state.first_response_at is None
        and state.status != STATUS_RESOLVED
        and (SLA_FIRST_RESPONSE, state.cycle) not in state.breaches
    ):
        out.append(
            SlaDue(
                SLA_FIRST_RESPONSE,
                state.awaiting_since,
                state.awaiting_since + timedelta(seconds=targets.first_response_seconds),
                targets.first_response_seconds,
            )
        )
    if (
        targets.resolution_seconds > 0
        and state.status != STATUS_RESOLVED
        and state.handler == HANDLER_HUMAN
        and state.cycle_started_at is not None
        and (SLA_RESOLUTION, state.cycle) not in state.breaches
    ):
        out.append(
            SlaDue(
                SLA_RESOLUTION,
                state.cycle_started_at,
                state.cycle_started_at + timedelta(seconds=targets.resolution_seconds),
                targets.resolution_seconds,
            )
        )
    return out


def _fixed(event_id: str) -> Callable[[str], str]:
    return lambda _kind: event_id


def sla_breach_event_id(conversation_id: str, kind: str, cycle: int) -> str:
    return deterministic_event_id("sla-breach", conversation_id, kind, str(cycle))


def decide_sla_breaches(
    state: ConversationState, targets: SlaTargets, now: datetime
) -> list[ConversationEvent]:
    """One SlaBreached per clock that is past due (deterministic ids: a timer on every replica
    may find the same deadline; the store keeps one)."""
    events: list[ConversationEvent] = []
    current = state
    for due in sla_deadlines(state, targets):
        if due.due_at > now:
            continue
        payload = ce.SlaBreached(
            conversation_id=state.conversation_id,
            kind=due.kind,
            cycle=state.cycle,
            target_seconds=due.target_seconds,
        )
        payload.started_at.CopyFrom(to_timestamp(due.started_at))
        payload.due_at.CopyFrom(to_timestamp(due.due_at))
        decided = events_for(
            current,
            state.tenant_id,
            state.conversation_id,
            due.due_at,
            [("sla", payload)],
            _fixed(sla_breach_event_id(state.conversation_id, due.kind, state.cycle)),
        )
        events += decided
        current = _evolve(current, version=current.version + len(decided))
    return events


@dataclass
class Decision:
    """Events decided for one conversation, applied as they are added (so later decisions see
    the state they produce)."""

    state: ConversationState
    events: list[ConversationEvent] = field(default_factory=list)

    def add(self, events: Sequence[ConversationEvent]) -> None:
        for e in events:
            if e.version != self.state.version + 1:
                raise InvalidTransition(
                    f"event version {e.version} does not follow {self.state.version}"
                )
            self.state, _ = apply_event(self.state, e)
            self.events.append(e)
