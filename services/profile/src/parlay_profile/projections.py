"""Profile application layer: the projector handlers.

IdentityResolution ("identity-resolution", consumes parlay.gateway.inbound.v1)
    Turns each MessageReceived into the customer events it implies (domain.decide_message),
    emits them with exact aggregate versions read from the locked read-model rows, and updates
    the read models in the same transaction. Event ids derive from the causing event, so a
    reprocessed message appends nothing new (the store skips known event ids).

CustomerProjection (consumes parlay.profile.v1)
    Folds profile events into the read models with the same `apply`; used to rebuild the read
    models from the log into an empty schema. Idempotent by aggregate version.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit import telemetry, topics
from parlay_kit.envelope import NewEvent, from_timestamp
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_profile import domain
from parlay_profile.readmodel import CustomerReadModel

log = logging.getLogger(__name__)

PROFILE_EVENT_TYPES = (
    pe.CustomerCreated,
    pe.IdentityLinked,
    pe.DisplayNameChanged,
    pe.CustomerSeen,
)


class InconsistentReadModel(RuntimeError):
    """An identity points at a customer row that does not exist."""


def observation_from(event: ConsumedEvent) -> domain.Observation | None:
    """The identity observation in a MessageReceived, None when it names no sender."""
    msg = event.payload
    assert isinstance(msg, ge.MessageReceived)
    tenant = event.envelope.tenant_id
    if not tenant or not msg.channel or not msg.sender.address:
        return None
    occurred = event.envelope.occurred_at
    if occurred.seconds == 0 and occurred.nanos == 0:
        occurred = msg.sent_at
    return domain.observation(
        tenant_id=tenant,
        # The sender's channel, falling back to the message's (they are the same today).
        channel=msg.sender.channel or msg.channel,
        address=msg.sender.address,
        channel_account_id=msg.channel_account_id,
        display_name=msg.sender_display_name,
        vouched_phone=msg.sender_phone,
        occurred_at=from_timestamp(occurred),
        source_event_id=event.event_id,
    )


@contextlib.contextmanager
def _traced(event: ConsumedEvent, name: str) -> Iterator[str]:
    """The traceparent to store on events derived from `event`: a consumer span's when tracing
    is on (one span per event, child of the producer's), else the record's, passed through."""
    if not telemetry.enabled():
        yield event.traceparent
        return
    with telemetry.consume_span(
        name,
        {"traceparent": event.traceparent} if event.traceparent else None,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": event.topic,
            "messaging.kafka.offset": event.offset,
            "parlay.event_id": event.event_id,
            "parlay.event_type": event.event_type,
        },
    ):
        yield telemetry.current_traceparent() or event.traceparent


class IdentityResolution:
    def __init__(
        self,
        read_model: CustomerReadModel,
        *,
        seen_resolution: timedelta = domain.DEFAULT_SEEN_RESOLUTION,
        topic: str = topics.PROFILE,
    ) -> None:
        self.read_model = read_model
        self.seen_resolution = seen_resolution
        self.topic = topic

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        work: list[tuple[ConsumedEvent, domain.Observation]] = []
        for event in events:
            if not isinstance(event.payload, ge.MessageReceived):
                continue  # statuses and other inbound events say nothing about identities
            obs = observation_from(event)
            if obs is None:
                log.warning(
                    "MessageReceived %s has no tenant, channel or sender address; skipped",
                    event.event_id,
                )
                continue
            work.append((event, obs))
        if not work:
            return
        conn = uow.conn
        rm = self.read_model
        keys = {(o.tenant_id, o.channel, o.address) for _, o in work}
        owners = await rm.identity_owners(conn, keys)
        candidates = set(owners.values()) | {
            domain.customer_id_for(*k) for k in keys if k not in owners
        }
        before = await rm.load(conn, candidates, for_update=True)
        states: dict[str, domain.CustomerState] = dict(before)
        links = dict(owners)
        for event, obs in work:
            with _traced(event, f"{event.topic} resolve identity") as traceparent:
                decision = self._decide(obs, states, links)
                if not decision.events:
                    continue
                state = domain.fold(states.get(decision.customer_id), decision.events)
                assert state is not None
                states[decision.customer_id] = state
                if obs.key in state.identities:
                    links[(obs.tenant_id, *obs.key)] = decision.customer_id
                envelope = event.envelope
                for e in decision.events:
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
                            correlation_id=envelope.correlation_id or envelope.event_id,
                            causation_id=envelope.event_id,
                            traceparent=traceparent,
                        )
                    )
        await rm.save(conn, before, states)

    def _decide(
        self,
        obs: domain.Observation,
        states: dict[str, domain.CustomerState],
        links: dict[tuple[str, str, str], str],
    ) -> domain.Decision:
        key = (obs.tenant_id, obs.channel, obs.address)
        owner = links.get(key)
        if owner is not None:
            linked = states.get(owner)
            if linked is None:
                raise InconsistentReadModel(f"identity {key} links to missing customer {owner}")
            return domain.decide_message(obs, linked, seen_resolution=self.seen_resolution)
        fresh = states.get(domain.customer_id_for(*key))
        return domain.decide_message(obs, None, fresh, seen_resolution=self.seen_resolution)


class CustomerProjection:
    """Applies parlay.profile.v1 events to the read models (rebuild from the log)."""

    def __init__(self, read_model: CustomerReadModel) -> None:
        self.read_model = read_model

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        relevant = [
            e
            for e in events
            if e.envelope.aggregate_type == domain.AGGREGATE_TYPE
            and isinstance(e.payload, PROFILE_EVENT_TYPES)
        ]
        if not relevant:
            return
        before = await self.read_model.load(
            uow.conn, {e.envelope.aggregate_id for e in relevant}, for_update=True
        )
        states: dict[str, domain.CustomerState] = dict(before)
        for e in relevant:
            env = e.envelope
            current = states.get(env.aggregate_id)
            if current is not None and env.aggregate_version <= current.version:
                continue  # already applied
            states[env.aggregate_id] = domain.apply(
                current,
                domain.ProfileEvent(
                    tenant_id=env.tenant_id,
                    aggregate_id=env.aggregate_id,
                    version=env.aggregate_version,
                    occurred_at=from_timestamp(env.occurred_at),
                    payload=e.payload,
                    event_id=env.event_id,
                ),
            )
        await self.read_model.save(uow.conn, before, states)
