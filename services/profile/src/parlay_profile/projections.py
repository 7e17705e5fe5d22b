"""Profile application layer: the projector handlers.

IdentityResolution ("identity-resolution": parlay.gateway.inbound.v1, parlay.orders.v1,
parlay.payments.v1)
    Turns what the gateway observed (MessageReceived, IdentityEvidenceObserved,
    ContactSubscriptionChanged) and what orders / payments report (OrderPlaced,
    PaymentCaptured) into customer events (rules.Resolver),
    emits them with exact aggregate versions and updates the read models in the same
    transaction. Writers of a tenant are serialized by a transaction-scoped advisory lock taken
    before anything is read. Event ids derive from the causing event, and every rule is
    idempotent over its state (time guards), so a reprocessed record appends nothing new.

CustomerProjection (parlay.profile.v1)
    Folds profile events into the read models with the same `apply`; rebuilds the read models
    from the log into an empty schema. Idempotent by aggregate version; set-based writes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.orders.v1 import orders_events_pb2 as oe
from parlay.payments.v1 import payments_events_pb2 as pay
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit import telemetry, topics
from parlay_kit.envelope import NewEvent, from_timestamp
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_profile import domain, rules
from parlay_profile.readmodel import CustomerReadModel

log = logging.getLogger(__name__)

#: Gateway identity evidence and subscription signals (read by name and field name, so this
#: code also runs against a gateway contract newer or older than the one it was built with).
IDENTITY_EVIDENCE_OBSERVED = "parlay.gateway.v1.IdentityEvidenceObserved"
CONTACT_SUBSCRIPTION_CHANGED = "parlay.gateway.v1.ContactSubscriptionChanged"
#: Orders / payments events feeding the purchase summary. Their modules are imported so that
#: the types are registered: the projector skips a payload whose type it cannot resolve.
ORDER_PLACED = oe.OrderPlaced.DESCRIPTOR.full_name
PAYMENT_CAPTURED = pay.PaymentCaptured.DESCRIPTOR.full_name


class InconsistentReadModel(RuntimeError):
    """An identity points at a customer row that does not exist."""


def _occurred(event: ConsumedEvent, fallback: Any = None) -> datetime:
    occurred = event.envelope.occurred_at
    if occurred.seconds == 0 and occurred.nanos == 0 and fallback is not None:
        occurred = fallback
    return from_timestamp(occurred)


def _text(content: ge.MessageContent) -> str:
    kind = content.WhichOneof("kind")
    if kind == "text":
        return content.text.body
    if kind == "interactive_reply":
        return content.interactive_reply.title or content.interactive_reply.payload
    return ""


def observation_from(event: ConsumedEvent) -> rules.Observation | None:
    """The identity observation in a MessageReceived, None when it names no sender."""
    msg = event.payload
    assert isinstance(msg, ge.MessageReceived)
    tenant = event.envelope.tenant_id
    if not tenant or not msg.channel or not msg.sender.address:
        return None
    location = None
    if msg.content.WhichOneof("kind") == "location":
        loc = msg.content.location
        location = rules.Location(loc.latitude, loc.longitude, loc.name, loc.address)
    return rules.observation(
        tenant_id=tenant,
        # The sender's channel, falling back to the message's (they are the same today).
        channel=msg.sender.channel or msg.channel,
        address=msg.sender.address,
        channel_account_id=msg.channel_account_id,
        display_name=msg.sender_display_name,
        vouched_phone=msg.sender_phone,
        occurred_at=_occurred(event, msg.sent_at),
        source_event_id=event.event_id,
        text=_text(msg.content),
        location=location,
    )


def _field(message: Any, name: str, default: Any = "") -> Any:
    """A field of a message this code knows only by name (another context's newer type)."""
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is None or name not in descriptor.fields_by_name:
        return default
    return getattr(message, name)


def _occurred_or(event: ConsumedEvent, msg: Any, field: str) -> datetime:
    """The envelope's occurred_at, else the message's own time field."""
    return _occurred(event, _field(msg, field, None))


def evidence_from(event: ConsumedEvent) -> rules.EvidenceObservation | None:
    """parlay.gateway.v1.IdentityEvidenceObserved{channel, channel_account_id, subject:
    ChannelAddress, evidence_kind, phone, email, new_address, provider_event_id, observed_at,
    webhook_event_id}."""
    msg = event.payload
    subject = _field(msg, "subject", None)
    if not event.tenant_id or subject is None or not _field(subject, "address"):
        return None
    return rules.EvidenceObservation(
        tenant_id=event.tenant_id,
        channel=domain.normalize_channel(_field(msg, "channel")),
        channel_account_id=_field(msg, "channel_account_id"),
        subject_channel=_field(subject, "channel") or _field(msg, "channel"),
        subject_address=_field(subject, "address"),
        kind=_field(msg, "evidence_kind"),
        phone=_field(msg, "phone"),
        email=_field(msg, "email"),
        occurred_at=_occurred_or(event, msg, "observed_at"),
        source_event_id=event.event_id,
        new_address=_field(msg, "new_address"),
    )


def subscription_from(event: ConsumedEvent) -> rules.SubscriptionObservation | None:
    """parlay.gateway.v1.ContactSubscriptionChanged{channel, channel_account_id, subject:
    ChannelAddress, subscribed, reason, changed_at, webhook_event_id}."""
    msg = event.payload
    subject = _field(msg, "subject", None)
    if not event.tenant_id or subject is None or not _field(subject, "address"):
        return None
    return rules.SubscriptionObservation(
        tenant_id=event.tenant_id,
        channel=domain.normalize_channel(_field(msg, "channel")),
        channel_account_id=_field(msg, "channel_account_id"),
        subject_channel=_field(subject, "channel") or _field(msg, "channel"),
        subject_address=_field(subject, "address"),
        subscribed=bool(_field(msg, "subscribed", False)),
        reason=_field(msg, "reason"),
        occurred_at=_occurred_or(event, msg, "changed_at"),
        source_event_id=event.event_id,
    )


def _amount(msg: Any) -> tuple[int, str]:
    """(minor units, currency) from `amount_minor`/`total_minor` + `currency`, or from a
    money sub-message `amount`/`total` with those fields."""
    for name in ("amount_minor", "total_minor"):
        value = _field(msg, name, None)
        if value:
            return int(value), str(_field(msg, "currency"))
    for name in ("amount", "total"):
        money = _field(msg, name, None)
        if money is not None and hasattr(money, "DESCRIPTOR"):
            minor = _field(money, "amount_minor", 0) or _field(money, "minor", 0)
            return int(minor), str(_field(money, "currency") or _field(msg, "currency"))
    return 0, str(_field(msg, "currency"))


def purchase_from(event: ConsumedEvent) -> rules.PurchaseObservation | None:
    """OrderPlaced / PaymentCaptured, read by field name (customer_id, order_id, amount)."""
    msg = event.payload
    customer_id = _field(msg, "customer_id")
    if not event.tenant_id or not customer_id:
        return None
    kind = "order_placed" if event.event_type == ORDER_PLACED else "payment_captured"
    amount, currency = _amount(msg)
    return rules.PurchaseObservation(
        tenant_id=event.tenant_id,
        customer_id=customer_id,
        order_id=_field(msg, "order_id"),
        kind=kind,
        currency=currency,
        amount_minor=amount,
        occurred_at=_occurred(event),
        source_event_id=event.event_id,
    )


def inbound_observation(event: ConsumedEvent) -> rules.AnyObservation | None:
    """What a consumed record says to the profile, None for records it does not use."""
    if isinstance(event.payload, ge.MessageReceived):
        return observation_from(event)
    event_type = event.event_type
    if event_type == IDENTITY_EVIDENCE_OBSERVED:
        return evidence_from(event)
    if event_type == CONTACT_SUBSCRIPTION_CHANGED:
        return subscription_from(event)
    if event_type in (ORDER_PLACED, PAYMENT_CAPTURED):
        return purchase_from(event)
    return None  # statuses and everything else say nothing about customers


_TRACER: tuple[object, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    """The tracer of the current provider (cached: asking the provider each time is slow)."""
    global _TRACER
    provider = telemetry.tracer_provider()
    if _TRACER is None or _TRACER[0] is not provider:
        _TRACER = (provider, provider.get_tracer(__name__))
    return _TRACER[1]


def _sampled(traceparent: str) -> bool:
    parts = traceparent.split("-")
    try:
        return len(parts) == 4 and bool(int(parts[3], 16) & 1)
    except ValueError:
        return False


@contextlib.contextmanager
def _traced(traceparent: str, name: str, attributes: dict[str, str | int]) -> Iterator[str]:
    """The traceparent to store on events derived from a consumed event.

    A span per event costs tens of microseconds in the Python SDK, too much for a batched
    projector to pay for every event; so only work that is already being traced (a sampled
    parent) gets a consumer span, whose traceparent the derived events carry. Anything else
    passes the record's traceparent through unchanged: the trace id still follows the fact."""
    if not traceparent or not telemetry.enabled() or not _sampled(traceparent):
        yield traceparent
        return
    with _tracer().start_as_current_span(
        name,
        context=telemetry.context_from_traceparent(traceparent),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        sc = span.get_span_context()
        if not sc.is_valid:
            yield traceparent
        else:
            yield f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def to_new_event(
    e: domain.ProfileEvent,
    topic: str,
    *,
    correlation_id: str = "",
    causation_id: str = "",
    traceparent: str = "",
) -> NewEvent:
    return NewEvent(
        event_id=e.event_id,
        tenant_id=e.tenant_id,
        aggregate_type=domain.AGGREGATE_TYPE,
        aggregate_id=e.aggregate_id,
        payload=e.payload,
        occurred_at=e.occurred_at,
        topic=topic,
        aggregate_version=e.version,
        correlation_id=correlation_id,
        causation_id=causation_id,
        traceparent=traceparent,
    )


async def load_working_set(
    conn: Any, rm: CustomerReadModel, observations: Sequence[rules.AnyObservation]
) -> dict[str, domain.CustomerState]:
    """Every customer the observations' decisions may read: owners of the identities they
    name, holders of the same phones / emails, the customers first contact would create (they
    exist when an identity was unlinked), and whole merged groups around all of them."""
    keys: set[tuple[str, str, str]] = set()
    phones: set[tuple[str, str]] = set()
    emails: set[tuple[str, str]] = set()
    ids: set[str] = set()
    for obs in observations:
        t = obs.tenant_id
        if isinstance(obs, rules.PurchaseObservation):
            ids.add(obs.customer_id)
            continue
        if isinstance(obs, rules.Observation):
            channel, address = obs.key
            phone = domain.identity_phone(channel, address, obs.vouched_phone)
        else:
            channel, address = obs.subject
            phone = domain.identity_phone(channel, address)
            if isinstance(obs, rules.EvidenceObservation):
                extra = rules.evidence_identity(obs)
                if extra is not None:
                    keys.add((t, extra.channel, extra.address))
                    phones.add((t, extra.normalized_phone))
                    emails.add((t, extra.email))
        keys.add((t, channel, address))
        phones.add((t, phone))
        ids.add(domain.customer_id_for(t, channel, address))
        ids.add(domain.customer_id_for(t, channel, address, obs.source_event_id))
    owners = await rm.identity_owners(conn, keys)
    ids |= set(owners.values())
    ids |= await rm.phone_owners(conn, phones)
    ids |= await rm.email_owners(conn, emails)
    return await rm.load_closure(conn, ids)


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
        work: list[tuple[ConsumedEvent, rules.AnyObservation]] = []
        for event in events:
            obs = inbound_observation(event)
            if obs is None:
                if isinstance(event.payload, ge.MessageReceived):
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
        await rm.lock_tenants(conn, {o.tenant_id for _, o in work})
        before = await load_working_set(conn, rm, [o for _, o in work])
        resolver = rules.Resolver(
            rules.Profiles(before.values()), seen_resolution=self.seen_resolution
        )
        for event, obs in work:
            with _traced(
                event.traceparent,
                f"{event.topic} resolve identity",
                {
                    "messaging.system": "kafka",
                    "messaging.destination.name": event.topic,
                    "messaging.kafka.offset": event.offset,
                    "parlay.event_id": event.event_id,
                },
            ) as traceparent:
                mark = len(resolver.events)
                try:
                    resolver.observe(obs)
                except rules.InconsistentWorkingSet as exc:
                    raise InconsistentReadModel(str(exc)) from exc
                envelope = event.envelope
                for e in resolver.events[mark:]:
                    uow.emit(
                        to_new_event(
                            e,
                            self.topic,
                            correlation_id=envelope.correlation_id or envelope.event_id,
                            causation_id=envelope.event_id,
                            traceparent=traceparent,
                        )
                    )
        await rm.save(conn, before, resolver.profiles.states)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(ts: Any) -> datetime:
    """`from_timestamp` without its checks (the rebuild converts one per event)."""
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def profile_event(e: ConsumedEvent) -> domain.ProfileEvent:
    env = e.envelope
    return domain.ProfileEvent(
        tenant_id=env.tenant_id,
        aggregate_id=env.aggregate_id,
        version=env.aggregate_version,
        occurred_at=_instant(env.occurred_at),
        payload=e.payload,
        event_id=env.event_id,
    )


class CustomerProjection:
    """Applies parlay.profile.v1 events to the read models (rebuild from the log).

    One batch: load the states of the customers it touches (set-based SELECTs), fold every
    event in memory with `domain.apply` (events at or below a customer's stored version are
    skipped: idempotent), write the differences with one unnest statement per table.

    The load reads the customers' rows, and child rows only where the fold reads them:
    identities of customers with an IdentityUnlinked in the batch, merges of customers with a
    ProfilesUnmerged. Every other step only adds or replaces entries (the diff writes them as
    upserts), and last-seen and consent entries are written with the same "newer or equal wins"
    guard the fold applies, in SQL. Same end state, a fraction of the rows read; the rebuild
    test compares every table against the live read models."""

    #: Idempotent by aggregate version: the projector needs no per-event dedupe table.
    deduplicates_itself = True

    def __init__(self, read_model: CustomerReadModel) -> None:
        self.read_model = read_model

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        relevant = [
            e
            for e in events
            if e.envelope.aggregate_type == domain.AGGREGATE_TYPE
            and e.payload.DESCRIPTOR.file is pe.DESCRIPTOR
        ]
        if not relevant:
            return
        unlinked = {
            e.envelope.aggregate_id for e in relevant if type(e.payload) is pe.IdentityUnlinked
        }
        unmerged = {
            e.envelope.aggregate_id for e in relevant if type(e.payload) is pe.ProfilesUnmerged
        }
        before = await self.read_model.load(
            uow.conn,
            {e.envelope.aggregate_id for e in relevant},
            only={"identities": unlinked, "merges": unmerged, "seen": (), "consents": ()},
        )
        states: dict[str, domain.CustomerState] = dict(before)
        apply, apply_existing, created = domain.apply, domain.apply_existing, pe.CustomerCreated
        for e in relevant:
            env = e.envelope
            aggregate_id = env.aggregate_id
            version = env.aggregate_version
            current = states.get(aggregate_id)
            if current is not None:
                if version <= current.version:
                    continue  # already applied
                if type(e.payload) is not created:
                    states[aggregate_id] = apply_existing(
                        current, e.payload, version, _instant(env.occurred_at)
                    )
                    continue
            states[aggregate_id] = apply(current, profile_event(e))
        await self.read_model.save(uow.conn, before, states, rebuild=True)
