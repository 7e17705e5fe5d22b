"""Conversation application layer: the projector handlers.

Timeline ("timeline": parlay.gateway.inbound.v1, parlay.profile.v1, parlay.orders.v1,
parlay.payments.v1)
    * MessageReceived: appended to the customer's conversation (opened if needed, reopened if not
      open); then the tenant's rules, the bot and auto-assignment act. The identity -> customer
      map comes from profile's IdentityLinked (the service never calls profile); a message from an
      identity not linked yet is parked and appended, in provider-time order, once it is.
    * OutboundMessageSent / OutboundMessageFailed / MessageStatusUpdated: the outbound message's
      status moves forward (never back). A provider status for a message whose provider id is
      not known yet (the status webhook beat the gateway's own OutboundMessageSent) is parked
      and applied when the id becomes known.
    * ProfilesMerged / ProfilesUnmerged: conversations of the merged customer are re-owned by the
      survivor and given back on unmerge (ConversationOwnerChanged). IdentityUnlinked forgets a
      link. ConsentChanged feeds the local consent ledger.
    * parlay.orders.v1.* / parlay.payments.v1.* (by type name): proactive messages, and the
      thank-you the day after a first purchase (ProactiveMessageScheduled; the timer sends it).
    Events get exact versions from the locked conversation rows; read models are updated in the
    same transaction, with the same `apply` the rebuild uses.

TimelineProjection (parlay.conversation.v1)
    Folds conversation and inbox-configuration events into the read models with the same
    `apply`; rebuilds them from the log into an empty schema. Idempotent by aggregate version.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message
from opentelemetry import trace

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_conversation import config, domain, proactive
from parlay_conversation.domain import ConversationState
from parlay_conversation.inbox import (
    Automation,
    ConsentPolicy,
    Meta,
    TenantConfig,
    Writer,
    consent_channel,
    load_tenant_configs,
    send_or_suppress,
    text_content,
)
from parlay_conversation.readmodel import (
    ConversationReadModel,
    IdentityKey,
    OutboundRef,
    ParkedRow,
    StatusKey,
)
from parlay_kit import telemetry, topics
from parlay_kit.envelope import (
    decode,
    deterministic_event_id,
    encode,
    from_timestamp,
    to_timestamp,
    unpack,
)
from parlay_kit.projector import ConsumedEvent, UnitOfWork

log = logging.getLogger(__name__)

CONVERSATION_EVENT_TYPES: tuple[type[Message], ...] = (
    ce.ConversationOpened,
    ce.MessageAppended,
    ce.OutboundMessageRequested,
    ce.OutboundMessageStatusChanged,
    ce.OutboundMessageSuppressed,
    ce.ConversationStatusChanged,
    ce.ConversationAssigned,
    ce.ConversationHandedOff,
    ce.NoteAdded,
    ce.LabelsChanged,
    ce.ConversationRead,
    ce.SlaBreached,
    ce.ConversationOwnerChanged,
    ce.ProactiveMessageScheduled,
)

#: In-batch messages sort after everything parked earlier (same provider time).
_IN_BATCH_ARRIVAL = 1 << 62

_DELIVERY = {
    ge.DELIVERY_STATUS_SENT: domain.MSG_SENT,
    ge.DELIVERY_STATUS_DELIVERED: domain.MSG_DELIVERED,
    ge.DELIVERY_STATUS_READ: domain.MSG_READ,
    ge.DELIVERY_STATUS_FAILED: domain.MSG_FAILED,
}

_MERGED = "parlay.profile.v1.ProfilesMerged"
_UNMERGED = "parlay.profile.v1.ProfilesUnmerged"


def register_event_modules(*packages: str) -> None:
    """Import every generated module of these packages, so the projector can decode their
    events (parlay.orders.v1 / parlay.payments.v1 events activate as soon as they exist)."""
    for name in packages:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{name}.{info.name}")


register_event_modules("parlay.orders.v1", "parlay.payments.v1")


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
    #: The MessageReceived envelope (encoded only if it has to be parked).
    envelope: Envelope | bytes
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
            envelope=self.envelope if isinstance(self.envelope, bytes) else encode(self.envelope),
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


# ------------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class _Link:
    """Profile linked an identity to a customer."""

    key: IdentityKey
    customer_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class _Unlink:
    key: IdentityKey
    customer_id: str


@dataclass(frozen=True, slots=True)
class _Status:
    """A gateway report on an outbound message."""

    event: ConsumedEvent
    #: By our message id (OutboundMessageSent/Failed) or by provider id (MessageStatusUpdated).
    message_id: str
    key: StatusKey
    status: str
    provider_message_id: str
    at: datetime
    error_code: str = ""
    error_message: str = ""
    conversation_id: str = ""


@dataclass(frozen=True, slots=True)
class _Other:
    """Merges, consent, orders and payments events."""

    event: ConsumedEvent


_Step = _Pending | _Link | _Unlink | _Status | _Other


def _at(event: ConsumedEvent) -> datetime:
    return from_timestamp(event.envelope.occurred_at)


def _status_step(event: ConsumedEvent) -> _Status | None:
    payload = event.payload
    tenant = event.tenant_id
    if isinstance(payload, ge.OutboundMessageSent):
        at = from_timestamp(payload.sent_at) if payload.HasField("sent_at") else _at(event)
        return _Status(
            event,
            payload.message_id,
            (tenant, "", payload.channel_account_id, payload.provider_message_id),
            domain.MSG_SENT,
            payload.provider_message_id,
            at,
            conversation_id=payload.conversation_id,
        )
    if isinstance(payload, ge.OutboundMessageFailed):
        at = from_timestamp(payload.failed_at) if payload.HasField("failed_at") else _at(event)
        return _Status(
            event,
            payload.message_id,
            (tenant, "", payload.channel_account_id, ""),
            domain.MSG_FAILED,
            "",
            at,
            error_code=payload.error_code,
            error_message=payload.error_message,
            conversation_id=payload.conversation_id,
        )
    if isinstance(payload, ge.MessageStatusUpdated):
        status = _DELIVERY.get(payload.status)
        if status is None or not payload.provider_message_id:
            return None
        at = from_timestamp(payload.status_at) if payload.HasField("status_at") else _at(event)
        return _Status(
            event,
            "",
            (tenant, "", payload.channel_account_id, payload.provider_message_id),
            status,
            payload.provider_message_id,
            at,
            error_code=payload.error_code,
            error_message=payload.error_title,
        )
    return None


def _steps(events: Sequence[ConsumedEvent]) -> list[_Step]:
    """The batch's events that touch the conversation, in log order."""
    steps: list[_Step] = []
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
                    envelope=event.envelope,
                    parked=False,
                )
            )
        elif isinstance(payload, pe.IdentityLinked):
            key = domain.normalize_identity(
                event.tenant_id, payload.identity.channel, payload.identity.address
            )
            if all(key) and payload.customer_id:
                steps.append(_Link(key, payload.customer_id, event.event_id))
        elif isinstance(payload, pe.IdentityUnlinked):
            key = domain.normalize_identity(
                event.tenant_id, payload.identity.channel, payload.identity.address
            )
            if all(key) and payload.customer_id:
                steps.append(_Unlink(key, payload.customer_id))
        elif isinstance(
            payload, ge.OutboundMessageSent | ge.OutboundMessageFailed | ge.MessageStatusUpdated
        ):
            step = _status_step(event)
            if step is not None and event.tenant_id:
                steps.append(step)
        elif event.tenant_id and (
            event.event_type in (_MERGED, _UNMERGED)
            or isinstance(payload, pe.ConsentChanged)
            or proactive.is_proactive_source(event.event_type)
        ):
            steps.append(_Other(event))
        # Everything else does not touch the timeline.
    return steps


def _provider_key(msg: domain.InboundMessage) -> tuple[str, str, str, str, str]:
    return (
        msg.tenant_id,
        msg.channel,
        msg.channel_account_id,
        domain.INBOUND,
        msg.provider_message_id,
    )


# ------------------------------------------------------------------------------- Timeline


class Timeline:
    def __init__(
        self,
        read_model: ConversationReadModel,
        *,
        topic: str = topics.CONVERSATION,
        automation: Automation | None = None,
        consent: ConsentPolicy | None = None,
        windows: dict[str, int] | None = None,
    ):
        self.read_model = read_model
        self.topic = topic
        self.windows = dict(domain.DEFAULT_SERVICE_WINDOWS if windows is None else windows)
        self.consent = consent or ConsentPolicy(read_model)
        self.automation = automation or Automation(read_model, self.consent, self.windows)

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        steps = _steps(events)
        if not steps:
            return
        batch = _Batch(self, uow)
        await batch.run(steps)


class _Batch:
    """One projector batch: preloaded, locked state; steps applied in log order."""

    def __init__(self, timeline: Timeline, uow: UnitOfWork) -> None:
        self.t = timeline
        self.rm = timeline.read_model
        self.uow = uow
        self.conn = uow.conn
        self.writer = Writer(self.rm, timeline.topic)
        self.missing: set[str] = set()
        self.mapping: dict[IdentityKey, str] = {}
        self.parked: dict[IdentityKey, list[_Pending]] = {}
        self.links: dict[IdentityKey, tuple[str, str]] = {}
        self.unlinks: dict[IdentityKey, str] = {}
        self.unparked: list[str] = []
        self.new_parked: dict[str, _Pending] = {}
        self.known_ids: set[str] = set()
        self.known_provider: set[tuple[str, str, str, str, str]] = set()
        self.configs: dict[str, TenantConfig] = {}
        self.alias_tenants: set[str] = set()
        self.owner_cache: dict[tuple[str, str], str] = {}
        self.refs_by_id: dict[str, OutboundRef] = {}
        self.refs_by_key: dict[StatusKey, OutboundRef] = {}
        self.msg_status: dict[str, str] = {}
        self.parked_statuses: list[tuple[str, StatusKey, bytes]] = []
        self.unparked_statuses: list[str] = []

    # -------------------------------------------------------------- loading

    async def conversation(self, conversation_id: str) -> ConversationState | None:
        state = self.writer.state(conversation_id)
        if state is not None or conversation_id in self.missing:
            return state
        loaded = await self.rm.load(self.conn, [conversation_id], for_update=True)
        if conversation_id in loaded:
            self.writer.track(loaded)
            return loaded[conversation_id]
        self.missing.add(conversation_id)
        return None

    async def tenant_config(self, tenant_id: str) -> TenantConfig:
        tc = self.configs.get(tenant_id)
        if tc is None:
            tc = (await load_tenant_configs(self.conn, self.rm, [tenant_id]))[tenant_id]
            self.configs[tenant_id] = tc
        return tc

    async def owner_of(self, tenant_id: str, customer_id: str) -> str:
        if tenant_id not in self.alias_tenants:
            return customer_id
        key = (tenant_id, customer_id)
        if key not in self.owner_cache:
            owners = await self.rm.owners(self.conn, tenant_id, [customer_id])
            self.owner_cache[key] = owners.get(customer_id, customer_id)
        return self.owner_cache[key]

    async def prepare(self, steps: list[_Step]) -> None:
        conn, rm = self.conn, self.rm
        messages = [s for s in steps if isinstance(s, _Pending)]
        link_keys = {s.key for s in steps if isinstance(s, _Link)}
        self.mapping = await rm.identity_map(conn, {m.msg.identity for m in messages} | link_keys)
        for key, rows in (await rm.parked_for(conn, link_keys)).items():
            for row in rows:
                pending = _pending_from_row(row)
                if pending is not None:
                    self.parked.setdefault(key, []).append(pending)
        tenants = {m.msg.tenant_id for m in messages} | {k[0] for k in link_keys}
        if tenants:
            rows = await conn.fetch(
                f"""SELECT DISTINCT tenant_id FROM {rm.schema}.customer_aliases
                    WHERE tenant_id = ANY($1::text[])""",
                sorted(tenants),
            )
            self.alias_tenants = {r[0] for r in rows}
        owners = {(key[0], c) for key, c in self.mapping.items()}
        owners |= {(s.key[0], s.customer_id) for s in steps if isinstance(s, _Link)}
        statuses = [s for s in steps if isinstance(s, _Status)]
        self.refs_by_id = await rm.outbound_by_id(conn, [s.message_id for s in statuses])
        self.refs_by_key = await rm.outbound_by_provider(
            conn, [s.key for s in statuses if not s.message_id]
        )
        conversation_ids = {domain.conversation_id_for(t, c) for t, c in owners}
        conversation_ids |= {r.conversation_id for r in self.refs_by_id.values()}
        conversation_ids |= {r.conversation_id for r in self.refs_by_key.values()}
        loaded = await rm.load(conn, conversation_ids, for_update=True)
        self.writer.track(loaded)
        self.missing = conversation_ids - loaded.keys()
        candidates = messages + [p for ps in self.parked.values() for p in ps]
        self.known_ids, self.known_provider = await rm.existing_messages(
            conn,
            [domain.message_id_for(p.msg.source_event_id) for p in candidates],
            [_provider_key(p.msg) for p in candidates],
        )
        self.configs = await load_tenant_configs(
            conn, rm, sorted({m.msg.tenant_id for m in messages})
        )

    # -------------------------------------------------------------- running

    async def run(self, steps: list[_Step]) -> None:
        await self.prepare(steps)
        for step in steps:
            if isinstance(step, _Pending):
                customer_id = self.mapping.get(step.msg.identity)
                if customer_id is not None:
                    await self.append(step, customer_id)
                else:
                    self.parked.setdefault(step.msg.identity, []).append(step)
                    self.new_parked[step.msg.source_event_id] = step
            elif isinstance(step, _Link):
                await self.link(step)
            elif isinstance(step, _Unlink):
                if self.mapping.get(step.key) == step.customer_id:
                    del self.mapping[step.key]
                    self.links.pop(step.key, None)
                    self.unlinks[step.key] = step.customer_id
            elif isinstance(step, _Status):
                await self.status(step)
            else:
                await self.other(step.event)
        rm, conn = self.rm, self.conn
        await rm.link_identities(conn, self.links)
        await rm.unlink_identities(conn, list(self.unlinks.items()))
        await rm.unpark(conn, self.unparked)
        await rm.park(conn, [p.parked_row() for p in self.new_parked.values()])
        await rm.park_statuses(conn, self.parked_statuses)
        await rm.unpark_statuses(conn, self.unparked_statuses)
        await self.writer.save(conn)
        for event in self.writer.new_events:
            self.uow.emit(event)

    async def link(self, step: _Link) -> None:
        self.mapping[step.key] = step.customer_id
        self.links[step.key] = (step.customer_id, step.event_id)
        self.unlinks.pop(step.key, None)
        waiting = {p.msg.source_event_id: p for p in self.parked.pop(step.key, [])}
        for msg in domain.timeline_order([(p.msg, p.arrival) for p in waiting.values()]):
            pending = waiting[msg.source_event_id]
            await self.append(pending, step.customer_id)
            if pending.parked:
                self.unparked.append(pending.msg.source_event_id)
            else:
                self.new_parked.pop(pending.msg.source_event_id, None)

    async def append(self, pending: _Pending, customer_id: str) -> None:
        msg = pending.msg
        message_id = domain.message_id_for(msg.source_event_id)
        provider_key = _provider_key(msg)
        if message_id in self.known_ids or (
            msg.provider_message_id and provider_key in self.known_provider
        ):
            return  # already in the timeline
        self.known_ids.add(message_id)
        self.known_provider.add(provider_key)
        conversation_id = domain.conversation_id_for(msg.tenant_id, customer_id)
        state = await self.conversation(conversation_id)
        tc = await self.tenant_config(msg.tenant_id)
        owner = await self.owner_of(msg.tenant_id, customer_id) if state is None else ""
        with _traced(
            pending.traceparent,
            "conversation append",
            {"messaging.system": "kafka", "parlay.event_id": msg.source_event_id},
        ) as tp:
            meta = Meta(pending.correlation_id, msg.source_event_id, tp)
            self.writer.emit(
                domain.decide_inbound(
                    state, customer_id, msg, owner_customer_id=owner, bot_first=tc.bot_enabled
                ),
                meta,
            )
            current = self.writer.state(conversation_id)
            assert current is not None
            if (
                state is not None
                and state.status == domain.STATUS_RESOLVED
                and tc.bot_enabled
                and current.handler == domain.HANDLER_HUMAN
            ):
                # A customer coming back after a resolved conversation meets the bot first.
                self.t.automation.hand_off(
                    self.writer,
                    tc,
                    conversation_id,
                    domain.HANDLER_BOT,
                    "reopened",
                    team_id="",
                    actor="system",
                    at=msg.occurred_at,
                    ids=lambda kind: domain.event_id_for(msg.source_event_id, f"reopen:{kind}"),
                    meta=meta,
                )
            if tc.automates:
                await self.t.automation.after_inbound(
                    self.conn, self.writer, tc, conversation_id, msg, meta
                )

    # -------------------------------------------------------------- statuses

    def _meta(self, event: ConsumedEvent) -> Meta:
        return Meta(
            event.envelope.correlation_id or event.event_id, event.event_id, event.traceparent
        )

    async def status(self, step: _Status) -> None:
        ref: OutboundRef | None
        if step.message_id:
            ref = self.refs_by_id.get(step.message_id)
        else:
            ref = self.refs_by_key.get(step.key)
        if ref is None or ref.tenant_id != step.key[0]:
            if step.message_id:
                log.info("status for unknown outbound message %s; skipped", step.message_id)
            else:
                # The provider's status beat OutboundMessageSent: wait for the provider id.
                self.parked_statuses.append(
                    (step.event.event_id, step.key, encode(step.event.envelope))
                )
            return
        await self._apply_status(ref, step)
        if step.status == domain.MSG_SENT and step.provider_message_id:
            key = step.key
            self.refs_by_key[key] = ref
            stored = (await self.rm.parked_statuses_for(self.conn, [key])).get(key, [])
            in_batch = [(e, data) for e, k, data in self.parked_statuses if k == key]
            self.parked_statuses = [p for p in self.parked_statuses if p[1] != key]
            for _event_id, data in [*stored, *in_batch]:
                envelope = decode(data)
                parked = _status_step(ConsumedEvent(envelope, unpack(envelope), "", 0, 0, ""))
                if parked is not None:
                    await self._apply_status(ref, parked)
            self.unparked_statuses += [e for e, _ in stored]

    async def _apply_status(self, ref: OutboundRef, step: _Status) -> None:
        state = await self.conversation(ref.conversation_id)
        if state is None:
            return
        current = self.msg_status.get(ref.message_id, ref.status)
        events = domain.decide_status(
            state,
            message_id=ref.message_id,
            current_status=current,
            new_status=step.status,
            provider_message_id=step.provider_message_id,
            status_at=step.at,
            source_event_id=step.event.event_id,
            error_code=step.error_code,
            error_message=step.error_message,
        )
        if events:
            self.msg_status[ref.message_id] = step.status
            self.writer.emit(events, self._meta(step.event))

    # -------------------------------------------------------------- profile, orders, payments

    async def other(self, event: ConsumedEvent) -> None:
        if event.event_type in (_MERGED, _UNMERGED):
            await self.merge(event)
        elif isinstance(event.payload, pe.ConsentChanged):
            c = event.payload
            if c.customer_id and c.purpose:
                await self.rm.record_consent(
                    self.conn,
                    event.tenant_id,
                    c.customer_id,
                    consent_channel(c.channel),
                    c.purpose.strip().lower(),
                    c.granted,
                    _at(event),
                    event.event_id,
                )
        else:
            await self.proactive(event)

    async def merge(self, event: ConsumedEvent) -> None:
        payload = event.payload
        tenant = event.tenant_id
        survivor = getattr(payload, "survivor_customer_id", "")
        merged = getattr(payload, "merged_customer_id", "")
        merge_id = getattr(payload, "merge_id", "")
        if not survivor or not merged or survivor == merged:
            return
        if event.event_type == _MERGED:
            await self.rm.set_alias(self.conn, tenant, merged, survivor, merge_id)
            reason = "merged"
        else:
            await self.rm.remove_alias(self.conn, tenant, merged, survivor)
            reason = "unmerged"
        self.alias_tenants.add(tenant)
        self.owner_cache = {k: v for k, v in self.owner_cache.items() if k[0] != tenant}
        affected = await self.rm.merged_into(self.conn, tenant, merged)
        owners = await self.rm.owners(self.conn, tenant, affected)
        conversation_ids = set(
            await self.rm.conversations_of_customers(self.conn, tenant, affected)
        )
        conversation_ids |= {
            cid
            for cid, s in self.writer.states.items()
            if s.tenant_id == tenant and s.customer_id in affected
        }
        for cid in sorted(conversation_ids):
            state = await self.conversation(cid)
            if state is None:
                continue
            owner = owners.get(state.customer_id, state.customer_id)
            self.writer.emit(
                domain.decide_owner(
                    state,
                    owner,
                    reason=reason,
                    merge_id=merge_id,
                    at=_at(event),
                    event_id=_owner_ids(event.event_id, cid),
                ),
                self._meta(event),
            )

    async def conversation_for(
        self, tenant_id: str, customer_id: str, conversation_id: str
    ) -> ConversationState | None:
        if conversation_id:
            state = await self.conversation(conversation_id)
            if state is not None and state.tenant_id == tenant_id:
                return state
        own = await self.conversation(domain.conversation_id_for(tenant_id, customer_id))
        if own is not None:
            return own
        row = await self.conn.fetchval(
            f"""SELECT conversation_id FROM {self.rm.schema}.conversations
                WHERE tenant_id = $1 AND owner_customer_id = $2
                ORDER BY last_activity_at DESC LIMIT 1""",
            tenant_id,
            customer_id,
        )
        return await self.conversation(row) if row else None

    async def proactive(self, event: ConsumedEvent) -> None:
        tenant = event.tenant_id
        fields = proactive.fields_of(event.payload)
        customer = fields.get("customer_id", "")
        if not customer:
            return
        state = await self.conversation_for(tenant, customer, fields.get("conversation_id", ""))
        if state is None:
            log.info("%s for customer %s: no conversation to message", event.event_type, customer)
            return
        cid = state.conversation_id
        tc = await self.tenant_config(tenant)
        at = _at(event)
        meta = self._meta(event)
        plan, why = proactive.plan_for(event.event_type, fields, tc.settings)
        sender = "proactive:" + event.event_type.rsplit(".", 1)[-1]
        message_id = deterministic_event_id(event.event_id, "proactive")
        event_id = domain.event_id_for(event.event_id, "proactive")
        if plan is not None:
            template = None
            if plan.template_name:
                template = ge.TemplateContent(
                    name=plan.template_name,
                    language=plan.template_language,
                    body_parameters=[
                        ge.TemplateParameter(text=p) for p in plan.template_parameters
                    ],
                )
            await send_or_suppress(
                self.conn,
                self.writer,
                self.t.consent,
                self.t.windows,
                cid,
                domain.Outbound(
                    message_id=message_id,
                    content=text_content(plan.text),
                    sender=sender,
                    purpose=plan.purpose,
                ),
                at=at,
                event_id=event_id,
                trigger=event.event_type,
                meta=meta,
                template=template,
            )
        elif why == "missing_field":
            current = self.writer.state(cid)
            assert current is not None
            self.writer.emit(
                domain.suppressed(
                    current,
                    message_id=message_id,
                    reason="missing_field",
                    detail=f"{event.event_type} lacks a field its message needs",
                    purpose=domain.PURPOSE_TRANSACTIONAL,
                    text="",
                    trigger=event.event_type,
                    at=at,
                    event_id=event_id,
                ),
                meta,
            )
        if event.event_type in proactive.PURCHASE_EVENT_TYPES:
            await self.purchase(event, tc, cid, fields, at, meta)

    async def purchase(
        self,
        event: ConsumedEvent,
        tc: TenantConfig,
        conversation_id: str,
        fields: dict[str, str],
        at: datetime,
        meta: Meta,
    ) -> None:
        state = self.writer.state(conversation_id)
        assert state is not None
        order_id = fields.get("order_id") or event.envelope.aggregate_id
        first = await self.rm.record_purchase(
            self.conn, event.tenant_id, state.owner, order_id, event.event_id, at
        )
        if not first or tc.settings.thank_you_disabled:
            return
        schedule_id = deterministic_event_id("thank-you", event.tenant_id, state.owner)
        payload = ce.ProactiveMessageScheduled(
            conversation_id=conversation_id,
            schedule_id=schedule_id,
            kind=proactive.THANK_YOU_KIND,
            text=proactive.thank_you_text(tc.settings),
            purpose=proactive.THANK_YOU_PURPOSE,
            trigger_event_id=event.event_id,
        )
        payload.due_at.CopyFrom(
            to_timestamp(config.next_day_at(at, tc.settings.thank_you_time, tc.settings))
        )
        if tc.settings.thank_you_template.name:
            payload.template.CopyFrom(tc.settings.thank_you_template)
        self.writer.emit(
            domain.events_for(
                state,
                state.tenant_id,
                conversation_id,
                at,
                [("scheduled", payload)],
                lambda _k: deterministic_event_id(schedule_id, "scheduled"),
            ),
            meta,
        )


# ------------------------------------------------------------------------------- rebuild


#: Rows of a rebuild's timeline per COPY (MessageStream): small enough that Postgres starts
#: on the first group early, large enough that a COPY's round trip is noise.
_STREAM_GROUP = 256


class TimelineProjection:
    """Applies parlay.conversation.v1 events to the read models (rebuild from the log): the
    conversations with the same `apply` as the writers, the inbox configuration with
    `config.apply_config`. Events at or below an aggregate's stored version are skipped."""

    #: Idempotent by aggregate version (conversations and configuration alike): the projector
    #: can skip its per-event dedupe table.
    deduplicates_itself = True

    def __init__(self, read_model: ConversationReadModel) -> None:
        self.read_model = read_model

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        conversations = []
        configs = []
        for e in events:
            aggregate_type = e.envelope.aggregate_type
            if aggregate_type == domain.AGGREGATE_TYPE:
                if isinstance(e.payload, CONVERSATION_EVENT_TYPES):
                    conversations.append(e)
            elif aggregate_type in config.CONFIG_AGGREGATES and isinstance(
                e.payload, config.CONFIG_EVENT_TYPES
            ):
                configs.append(e)
        if conversations:
            await self._conversations(uow, conversations)
        if configs:
            await self._configs(uow, configs)

    async def _conversations(self, uow: UnitOfWork, events: list[ConsumedEvent]) -> None:
        by_aggregate: dict[str, list[ConsumedEvent]] = {}
        for e in events:
            by_aggregate.setdefault(e.envelope.aggregate_id, []).append(e)
        rm = self.read_model
        before = await rm.load(uow.conn, by_aggregate, for_update=True)
        states: dict[str, ConversationState] = dict(before)
        timestamp = domain.timestamp
        ConversationEvent = domain.ConversationEvent  # noqa: N806 - local alias, hot loop
        # Timeline rows go to Postgres a group of conversations at a time, while the next
        # group is folded (readmodel.MessageStream); the conversations themselves and the
        # other rows follow in `save`, once all are folded.
        async with rm.message_stream(uow.conn) as stream:
            group: list[domain.Effect] = []
            for aggregate_id, stream_events in by_aggregate.items():
                current = before.get(aggregate_id)
                seen = current.version if current is not None else 0
                fresh = []
                for e in stream_events:
                    env = e.envelope
                    version = env.aggregate_version
                    if version <= seen:
                        continue  # already applied
                    seen = version
                    fresh.append(
                        ConversationEvent(
                            env.tenant_id,
                            aggregate_id,
                            version,
                            timestamp(env.occurred_at),
                            e.payload,
                            env.event_id,
                        )
                    )
                if not fresh:
                    continue
                state, produced = domain.apply_events(current, fresh)
                assert state is not None
                states[aggregate_id] = state
                group += produced
                if len(group) >= _STREAM_GROUP:
                    await stream.write(group)
                    group = []
            await stream.write(group)
        await rm.save(uow.conn, before, states, stream.rest())

    async def _configs(self, uow: UnitOfWork, events: list[ConsumedEvent]) -> None:
        keys = {}
        for e in events:
            keys[e.event_id] = (e.tenant_id, e.envelope.aggregate_type, _config_key(e.payload))
        current = await self.read_model.config_rows(uow.conn, set(keys.values()), lock=True)
        changed: dict[tuple[str, str, str], config.ConfigRow] = {}
        for e in events:
            key = keys[e.event_id]
            row = changed.get(key) or current.get(key)
            if row is not None and e.envelope.aggregate_version <= row.version:
                continue
            new = config.apply_config(
                row, e.tenant_id, key[1], e.envelope.aggregate_version, e.payload
            )
            if new is not None:
                changed[key] = new
        await self.read_model.save_config(uow.conn, list(changed.values()))


def _owner_ids(source_event_id: str, conversation_id: str) -> Callable[[str], str]:
    return lambda kind: domain.event_id_for(source_event_id, f"{kind}:{conversation_id}")


def _config_key(payload: Message) -> str:
    for name in ("agent", "team", "rule"):
        if payload.DESCRIPTOR.fields_by_name.get(name) is not None:
            inner = getattr(payload, name)
            return str(getattr(inner, f"{name}_id"))
    for name in ("agent_id", "team_id", "rule_id"):
        if payload.DESCRIPTOR.fields_by_name.get(name) is not None:
            return str(getattr(payload, name))
    return ""
