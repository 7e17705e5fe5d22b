"""Conversation application layer: the projector handlers.

Timeline ("timeline", consumes parlay.gateway.inbound.v1 and parlay.profile.v1)
    Learns identity -> customer from profile IdentityLinked events (its own map, so it never
    calls profile). A MessageReceived from a mapped identity is appended to the customer's
    conversation at once; one from an identity profile has not linked yet is parked and
    appended, in provider-time order, when the IdentityLinked arrives. Events are emitted with
    exact aggregate versions read from the locked conversation rows, and the read models are
    updated in the same transaction. MessageStatusUpdated is ignored for now (outbound messages
    arrive with later issues).

TimelineProjection (consumes parlay.conversation.v1)
    Folds conversation events into the read models with the same `apply`; used to rebuild the
    read models from the log into an empty schema. Idempotent by aggregate version.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_conversation import domain
from parlay_conversation.readmodel import ConversationReadModel, IdentityKey, ParkedRow
from parlay_kit import telemetry, topics
from parlay_kit.envelope import NewEvent, decode, encode, from_timestamp, unpack
from parlay_kit.projector import ConsumedEvent, UnitOfWork

log = logging.getLogger(__name__)

CONVERSATION_EVENT_TYPES = (ce.ConversationOpened, ce.MessageAppended)

#: In-batch messages sort after everything parked earlier (same provider time).
_IN_BATCH_ARRIVAL = 1 << 62


def inbound_from(envelope: Envelope, msg: ge.MessageReceived) -> domain.InboundMessage | None:
    """The timeline's view of a MessageReceived; None when it names no tenant or sender."""
    channel = msg.sender.channel or msg.channel
    if not envelope.tenant_id or not channel or not msg.sender.address:
        return None
    tenant, identity_channel, address = domain.normalize_identity(
        envelope.tenant_id, channel, msg.sender.address
    )
    occurred = envelope.occurred_at
    if occurred.seconds == 0 and occurred.nanos == 0:
        occurred = msg.sent_at
    return domain.InboundMessage(
        tenant_id=tenant,
        source_event_id=envelope.event_id,
        channel=identity_channel,
        channel_account_id=msg.channel_account_id,
        address=address,
        provider_message_id=msg.provider_message_id,
        content=msg.content,
        occurred_at=from_timestamp(occurred),
    )


@dataclass(frozen=True, slots=True)
class _Pending:
    """An inbound message waiting to be appended, with what its derived events carry."""

    msg: domain.InboundMessage
    arrival: int
    correlation_id: str
    traceparent: str
    envelope: bytes
    #: Set when it was parked by an earlier batch (its row must be deleted once appended).
    parked: bool

    def parked_row(self) -> ParkedRow:
        return ParkedRow(
            event_id=self.msg.source_event_id,
            tenant_id=self.msg.tenant_id,
            channel=self.msg.channel,
            address=self.msg.address,
            occurred_at=self.msg.occurred_at,
            arrival=self.arrival,
            envelope=self.envelope,
            traceparent=self.traceparent,
        )


def _pending_from_row(row: ParkedRow) -> _Pending | None:
    envelope = decode(row.envelope)
    payload = unpack(envelope)
    if not isinstance(payload, ge.MessageReceived):
        return None
    msg = inbound_from(envelope, payload)
    if msg is None:
        return None
    return _Pending(
        msg=msg,
        arrival=row.arrival,
        correlation_id=envelope.correlation_id or envelope.event_id,
        traceparent=row.traceparent,
        envelope=row.envelope,
        parked=True,
    )


@contextlib.contextmanager
def _traced(traceparent: str, name: str, event_id: str) -> Iterator[str]:
    """The traceparent for derived events: a span's (child of the message's trace) when tracing
    is on, else the message's own, passed through."""
    if not telemetry.enabled():
        yield traceparent
        return
    with telemetry.consume_span(
        name,
        {"traceparent": traceparent} if traceparent else None,
        attributes={"messaging.system": "kafka", "parlay.event_id": event_id},
    ):
        yield telemetry.current_traceparent() or traceparent


class Timeline:
    def __init__(self, read_model: ConversationReadModel, *, topic: str = topics.CONVERSATION):
        self.read_model = read_model
        self.topic = topic

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        steps = _steps(events)
        if not steps:
            return
        conn = uow.conn
        rm = self.read_model
        messages = [s for s in steps if isinstance(s, _Pending)]
        new_links = [s for s in steps if isinstance(s, _Link)]
        link_keys = {link.key for link in new_links}
        mapping = await rm.identity_map(conn, {m.msg.identity for m in messages} | link_keys)
        parked: dict[IdentityKey, list[_Pending]] = {}
        for key, rows in (await rm.parked_for(conn, link_keys)).items():
            for row in rows:
                pending = _pending_from_row(row)
                if pending is not None:
                    parked.setdefault(key, []).append(pending)
        owners = {(key[0], c) for key, c in mapping.items()}
        owners |= {(link.key[0], link.customer_id) for link in new_links}
        before = await rm.load(
            conn, {domain.conversation_id_for(t, c) for t, c in owners}, for_update=True
        )
        candidates = messages + [p for ps in parked.values() for p in ps]
        known_ids, known_provider = await rm.existing_messages(
            conn,
            [domain.message_id_for(p.msg.source_event_id) for p in candidates],
            [_provider_key(p.msg) for p in candidates],
        )

        states: dict[str, domain.ConversationState] = dict(before)
        appended: list[domain.TimelineMessage] = []
        links: dict[IdentityKey, tuple[str, str]] = {}
        unparked: list[str] = []
        new_parked: dict[str, _Pending] = {}

        def append(pending: _Pending, customer_id: str) -> None:
            msg = pending.msg
            message_id = domain.message_id_for(msg.source_event_id)
            provider_key = _provider_key(msg)
            if message_id in known_ids or (
                msg.provider_message_id and provider_key in known_provider
            ):
                return  # already in the timeline
            known_ids.add(message_id)
            known_provider.add(provider_key)
            conversation_id = domain.conversation_id_for(msg.tenant_id, customer_id)
            state = states.get(conversation_id)
            with _traced(pending.traceparent, "conversation append", msg.source_event_id) as tp:
                for e in domain.decide_inbound(state, customer_id, msg):
                    state, row = domain.apply(state, e)
                    if row is not None:
                        appended.append(row)
                    uow.emit(
                        NewEvent(
                            event_id=e.event_id,
                            tenant_id=e.tenant_id,
                            aggregate_type=domain.AGGREGATE_TYPE,
                            aggregate_id=e.aggregate_id,
                            payload=e.payload,
                            occurred_at=e.occurred_at,
                            topic=self.topic,
                            aggregate_version=e.version,
                            correlation_id=pending.correlation_id,
                            causation_id=msg.source_event_id,
                            traceparent=tp,
                        )
                    )
            assert state is not None
            states[conversation_id] = state

        for step in steps:
            if isinstance(step, _Pending):
                customer_id = mapping.get(step.msg.identity)
                if customer_id is not None:
                    append(step, customer_id)
                else:
                    parked.setdefault(step.msg.identity, []).append(step)
                    new_parked[step.msg.source_event_id] = step
                continue
            mapping[step.key] = step.customer_id
            links[step.key] = (step.customer_id, step.event_id)
            waiting = parked.pop(step.key, [])
            for pending in sorted(waiting, key=lambda p: (p.msg.occurred_at, p.arrival)):
                append(pending, step.customer_id)
                if pending.parked:
                    unparked.append(pending.msg.source_event_id)
                else:
                    new_parked.pop(pending.msg.source_event_id, None)

        await rm.link_identities(conn, links)
        await rm.unpark(conn, unparked)
        await rm.park(conn, [p.parked_row() for p in new_parked.values()])
        await rm.save(conn, before, states, appended)


@dataclass(frozen=True, slots=True)
class _Link:
    """Profile linked an identity to a customer."""

    key: IdentityKey
    customer_id: str
    event_id: str


def _steps(events: Sequence[ConsumedEvent]) -> list[_Pending | _Link]:
    """The batch's events that touch the timeline, in log order."""
    steps: list[_Pending | _Link] = []
    for i, event in enumerate(events):
        payload = event.payload
        if isinstance(payload, ge.MessageReceived):
            msg = inbound_from(event.envelope, payload)
            if msg is None:
                log.warning("MessageReceived %s names no tenant or sender; skipped", event.event_id)
                continue
            steps.append(
                _Pending(
                    msg=msg,
                    arrival=_IN_BATCH_ARRIVAL + i,
                    correlation_id=event.envelope.correlation_id or event.event_id,
                    traceparent=event.traceparent,
                    envelope=encode(event.envelope),
                    parked=False,
                )
            )
        elif isinstance(payload, pe.IdentityLinked):
            key = domain.normalize_identity(
                event.tenant_id, payload.identity.channel, payload.identity.address
            )
            if all(key) and payload.customer_id:
                steps.append(_Link(key, payload.customer_id, event.event_id))
        # Everything else (statuses, other profile events) does not touch the timeline.
    return steps


def _provider_key(msg: domain.InboundMessage) -> tuple[str, str, str, str, str]:
    return (
        msg.tenant_id,
        msg.channel,
        msg.channel_account_id,
        domain.INBOUND,
        msg.provider_message_id,
    )


class TimelineProjection:
    """Applies parlay.conversation.v1 events to the read models (rebuild from the log)."""

    def __init__(self, read_model: ConversationReadModel) -> None:
        self.read_model = read_model

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        relevant = [
            e
            for e in events
            if e.envelope.aggregate_type == domain.AGGREGATE_TYPE
            and isinstance(e.payload, CONVERSATION_EVENT_TYPES)
        ]
        if not relevant:
            return
        before = await self.read_model.load(
            uow.conn, {e.envelope.aggregate_id for e in relevant}, for_update=True
        )
        states: dict[str, domain.ConversationState] = dict(before)
        appended: list[domain.TimelineMessage] = []
        for e in relevant:
            env = e.envelope
            current = states.get(env.aggregate_id)
            if current is not None and env.aggregate_version <= current.version:
                continue  # already applied
            state, row = domain.apply(
                current,
                domain.ConversationEvent(
                    tenant_id=env.tenant_id,
                    aggregate_id=env.aggregate_id,
                    version=env.aggregate_version,
                    occurred_at=from_timestamp(env.occurred_at),
                    payload=e.payload,
                    event_id=env.event_id,
                ),
            )
            states[env.aggregate_id] = state
            if row is not None:
                appended.append(row)
        await self.read_model.save(uow.conn, before, states, appended)
