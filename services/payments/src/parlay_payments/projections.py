"""Payments application layer: the projector handlers.

PaymentsProcess, run twice by main.py:
  "order-payments"  on parlay.orders.v1: OrderAwaitingPayment -> PaymentRequested (+
                    TelegramInvoiceRequested for telegram); OrderCancelled -> PaymentCancelled for
                    the order's open payments.
  "provider-events" on parlay.gateway.inbound.v1: ChannelPaymentActionCompleted (what the gateway
                    did for us), PaymentProviderEventReceived (Stripe webhooks),
                    ChannelPaymentEventReceived (Telegram pre_checkout_query / successful_payment).
  One batch = one transaction (the kit's Projector): the payments it touches are loaded with one
  locked SELECT, every event is decided in memory with the pure rules of `domain`, the events
  are emitted with exact aggregate versions (an RPC that wrote the same payment in between makes
  the append fail and the batch retry), and the read models are upserted set-based. Derived
  event ids are uuid5 of the consumed event id, so a redelivered event appends nothing new (and
  the kit dedupes consumed ids anyway).

PaymentsProjection (parlay.payments.v1)
  Folds the payments topic into the read models with the same `domain.apply`: how `parlay
  replay payments.payments` rebuilds them. Idempotent by aggregate version.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.orders.v1 import orders_events_pb2 as oe
from parlay.payments.v1 import payments_events_pb2 as pe
from parlay_kit import topics
from parlay_kit.db import WriteBehind
from parlay_kit.envelope import NewEvent, deterministic_event_id, from_timestamp, utcnow
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_payments import domain
from parlay_payments.domain import Payment
from parlay_payments.readmodel import Lookup, PaymentsReadModel

log = logging.getLogger(__name__)

# Gateway actions (ChannelPaymentActionCompleted.action).
CREATE_CHECKOUT_SESSION = "create_checkout_session"
CREATE_REFUND = "create_refund"

# ProviderEventRejected reasons.
UNKNOWN_SESSION = "unknown_checkout_session"
UNKNOWN_PAYMENT = "unknown_payment"
UNKNOWN_INVOICE = "unknown_invoice"

HANDLED_TYPES: frozenset[type] = frozenset(
    {
        oe.OrderAwaitingPayment,
        oe.OrderCancelled,
        ge.ChannelPaymentActionCompleted,
        ge.PaymentProviderEventReceived,
        ge.ChannelPaymentEventReceived,
    }
)


@functools.lru_cache(maxsize=65_536)
def payment_id_of(tenant_id: str, order_id: str, attempt: int) -> str:
    return deterministic_event_id(*domain.payment_id_for(tenant_id, order_id, attempt))


def derived_event_id(cause_id: str, payment_id: str, payload: Message) -> str:
    """One id per (cause, payment, event type, refund): a redone decision is one event."""
    refund_id = getattr(payload, "refund_id", "")
    return deterministic_event_id(
        "payments", cause_id, payment_id, payload.DESCRIPTOR.full_name, refund_id
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The range of a valid Timestamp (0001-01-01 to 9999-12-31 23:59:59).
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def _time(ts: Timestamp) -> datetime | None:
    """The aware UTC datetime of a Timestamp (None when unset): exactly what
    `Timestamp.ToDatetime(tzinfo=UTC)` returns (microseconds, the nanos truncated), by integer
    arithmetic at a third of its cost; it runs once or twice per consumed event. Anything
    outside the valid range goes through ToDatetime, which refuses it as before."""
    seconds, nanos = ts.seconds, ts.nanos
    if not (seconds or nanos):
        return None
    if 0 <= nanos < 1_000_000_000 and _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    return from_timestamp(ts)


def occurred_at(event: ConsumedEvent) -> datetime:
    """The domain time of a consumed event (its recorded time when the producer set none)."""
    return _time(event.envelope.occurred_at) or _time(event.envelope.recorded_at) or utcnow()


class _Causation(TypedDict):
    causation_id: str
    correlation_id: str
    traceparent: str


def _caused_by(cause: ConsumedEvent) -> _Causation:
    """Causation, correlation and trace of a derived event: the consumed event's (set here
    rather than by `uow.emit`, which would copy every event once more). The trace continues the
    producer's, from the record's traceparent header."""
    envelope = cause.envelope
    return _Causation(
        causation_id=envelope.event_id,
        correlation_id=envelope.correlation_id or envelope.event_id,
        traceparent=cause.traceparent,
    )


@dataclass
class Batch:
    """The payments a batch decides on, with the indexes its matching needs, kept current as
    the batch's own decisions create payments and learn sessions and payment intents."""

    states: dict[str, Payment]
    topic: str
    by_session: dict[tuple[str, str, str], str] = field(default_factory=dict)
    by_intent: dict[tuple[str, str, str], str] = field(default_factory=dict)
    by_order: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    actions: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        for state in self.states.values():
            self._index(state)

    def _index(self, s: Payment) -> None:
        self.by_order.setdefault((s.tenant_id, s.order_id), set()).add(s.payment_id)
        if s.provider_session_id:
            self.by_session[(s.tenant_id, s.provider_account_id, s.provider_session_id)] = (
                s.payment_id
            )
        if s.provider_payment_id:
            self.by_intent[(s.tenant_id, s.provider_account_id, s.provider_payment_id)] = (
                s.payment_id
            )

    def payment(self, tenant_id: str, payment_id: str) -> Payment | None:
        state = self.states.get(payment_id)
        return state if state is not None and state.tenant_id == tenant_id else None

    def emit(
        self,
        uow: UnitOfWork,
        cause: ConsumedEvent,
        tenant_id: str,
        payment_id: str,
        payloads: Sequence[Message],
    ) -> None:
        """Append a decision's events to the payment (exact versions) and fold them."""
        if not payloads:
            return
        at = occurred_at(cause)
        state = self.states.get(payment_id)
        for payload in payloads:
            version = (state.version if state is not None else 0) + 1
            uow.emit(
                NewEvent(
                    event_id=derived_event_id(cause.event_id, payment_id, payload),
                    tenant_id=tenant_id,
                    aggregate_type=domain.AGGREGATE_TYPE,
                    aggregate_id=payment_id,
                    payload=payload,
                    occurred_at=at,
                    topic=self.topic,
                    aggregate_version=version,
                    **_caused_by(cause),
                )
            )
            state = domain.apply(state, payload, tenant_id=tenant_id, version=version, at=at)
        assert state is not None
        self.states[payment_id] = state
        self.changed.add(payment_id)
        self._index(state)

    def emit_rejected(
        self, uow: UnitOfWork, cause: ConsumedEvent, channel_account_id: str, payload: Message
    ) -> None:
        """An answer or audit record that belongs to no payment: its own aggregate."""
        uow.emit(
            NewEvent(
                event_id=derived_event_id(cause.event_id, "", payload),
                tenant_id=cause.tenant_id,
                aggregate_type=domain.REJECTED_AGGREGATE_TYPE,
                aggregate_id=f"rejected:{channel_account_id}",
                payload=payload,
                occurred_at=occurred_at(cause),
                topic=self.topic,
                **_caused_by(cause),
            )
        )


class PaymentsProcess:
    """Decides on order events and on what the gateway reports (see the module docstring)."""

    def __init__(self, read_model: PaymentsReadModel, *, topic: str = topics.PAYMENTS) -> None:
        self.read_model = read_model
        self.topic = topic

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        # By exact type (a set lookup): most of the inbound topic is customer messages.
        relevant = [e for e in events if type(e.payload) in HANDLED_TYPES and e.tenant_id]
        if not relevant:
            return
        states = await self.read_model.load(uow.conn, _lookup(relevant), lock=True)
        batch = Batch(states, self.topic)
        for event in relevant:
            self._decide(uow, batch, event)
        await self.read_model.save(uow.conn, [batch.states[p] for p in sorted(batch.changed)])
        await self.read_model.record_actions(uow.conn, batch.actions)

    def _decide(self, uow: UnitOfWork, batch: Batch, event: ConsumedEvent) -> None:
        msg = event.payload
        if isinstance(msg, oe.OrderAwaitingPayment):
            self._awaiting_payment(uow, batch, event, msg)
        elif isinstance(msg, oe.OrderCancelled):
            for pid in sorted(batch.by_order.get((event.tenant_id, msg.order_id), ())):
                state = batch.states[pid]
                reason = msg.reason or "order_cancelled"
                batch.emit(uow, event, state.tenant_id, pid, domain.cancel(state, reason))
        elif isinstance(msg, ge.ChannelPaymentActionCompleted):
            self._action_completed(uow, batch, event, msg)
        elif isinstance(msg, ge.PaymentProviderEventReceived):
            self._provider_event(uow, batch, event, msg)
        elif isinstance(msg, ge.ChannelPaymentEventReceived):
            self._channel_payment(uow, batch, event, msg)

    # ------------------------------------------------------------------ orders

    def _awaiting_payment(
        self, uow: UnitOfWork, batch: Batch, event: ConsumedEvent, msg: oe.OrderAwaitingPayment
    ) -> None:
        tenant = event.tenant_id
        pid = payment_id_of(tenant, msg.order_id, msg.attempt)
        due = domain.PaymentDue(
            payment_id=pid,
            order_id=msg.order_id,
            customer_id=msg.customer_id,
            conversation_id=msg.conversation_id,
            amount_minor=msg.amount_minor,
            currency=msg.currency,
            method=msg.payment_method,
            attempt=msg.attempt,
            channel=msg.channel,
            channel_account_id=msg.channel_account_id,
            address=msg.address,
            summary=msg.summary,
        )
        # Raises InvalidOrderEvent on an order payments cannot act on: dead-lettered.
        batch.emit(uow, event, tenant, pid, domain.request_payment(batch.states.get(pid), due))

    # ------------------------------------------------------------------ gateway actions

    def _action_completed(
        self,
        uow: UnitOfWork,
        batch: Batch,
        event: ConsumedEvent,
        msg: ge.ChannelPaymentActionCompleted,
    ) -> None:
        state = batch.payment(event.tenant_id, msg.payment_id)
        if state is None:
            # Not a payment of ours (another deployment on a shared broker): nothing to do.
            log.debug("action %s for unknown payment %s ignored", msg.action, msg.payment_id)
            return
        decided: list[Message] = []
        if msg.action == CREATE_CHECKOUT_SESSION:
            if msg.ok:
                decided = domain.link_created(
                    state,
                    provider_session_id=msg.provider_object_id,
                    checkout_url=msg.checkout_url,
                    expires_at=_time(msg.expires_at),
                    provider_account_id=msg.channel_account_id,
                )
            else:
                reason = ": ".join(p for p in (msg.error_code, msg.error_message) if p)
                decided = domain.link_failed(
                    state, reason=reason or "provider_error", attempts=msg.attempts
                )
        elif msg.action == CREATE_REFUND:
            if msg.ok:
                decided = domain.refund_completed(
                    state, msg.refund_id, provider_refund_id=msg.provider_object_id
                )
            else:
                reason = ": ".join(p for p in (msg.error_code, msg.error_message) if p)
                decided = domain.refund_failed(state, msg.refund_id, reason=reason or "refused")
        else:
            # send_invoice, answer_pre_checkout_query, expire_checkout_session: no decision to
            # take, recorded for operators (the outcomes of the others are payment events).
            batch.actions.append(
                {
                    "payment_id": state.payment_id,
                    "action": msg.action,
                    "request_event_id": msg.request_event_id,
                    "tenant_id": state.tenant_id,
                    "channel_account_id": msg.channel_account_id,
                    "ok": msg.ok,
                    "error_code": msg.error_code,
                    "error_message": msg.error_message,
                    "provider_object_id": msg.provider_object_id,
                    "provider_message_id": msg.provider_message_id,
                    "completed_at": _time(msg.completed_at) or occurred_at(event),
                }
            )
        batch.emit(uow, event, state.tenant_id, state.payment_id, decided)

    # ------------------------------------------------------------------ Stripe

    def _match_stripe(
        self, batch: Batch, tenant: str, msg: ge.PaymentProviderEventReceived
    ) -> tuple[Payment | None, str]:
        """The payment this service created that the event is about, on that provider account,
        or the reason there is none."""
        account = msg.channel_account_id
        if msg.checkout_session_id:
            pid = batch.by_session.get((tenant, account, msg.checkout_session_id))
            return (batch.states[pid], "") if pid else (None, UNKNOWN_SESSION)
        if msg.payment_intent_id:
            pid = batch.by_intent.get((tenant, account, msg.payment_intent_id))
            if pid:
                return batch.states[pid], ""
        # A payment intent we have not seen yet (it can beat checkout.session.completed): the
        # metadata the gateway set names the payment, trusted only for a payment that has a
        # session on this very account.
        state = batch.payment(tenant, msg.metadata.get("payment_id", ""))
        if state is not None and state.provider_session_id and state.provider_account_id == account:
            return state, ""
        return None, UNKNOWN_PAYMENT

    def _provider_event(
        self,
        uow: UnitOfWork,
        batch: Batch,
        event: ConsumedEvent,
        msg: ge.PaymentProviderEventReceived,
    ) -> None:
        stripe = domain.StripeEvent(
            event_type=msg.event_type,
            provider_event_id=msg.provider_event_id,
            amount_minor=msg.amount_minor,
            currency=msg.currency,
            status=msg.status,
            payment_intent_id=msg.payment_intent_id,
            amount_refunded_minor=msg.amount_refunded_minor,
            created_at=_time(msg.created_at),
        )
        if msg.provider != "stripe" or not domain.acts_on(stripe):
            return  # event types payments does not act on
        state, reason = self._match_stripe(batch, event.tenant_id, msg)
        if state is None:
            batch.emit_rejected(
                uow,
                event,
                msg.channel_account_id,
                pe.ProviderEventRejected(
                    provider=msg.provider,
                    channel_account_id=msg.channel_account_id,
                    provider_event_id=msg.provider_event_id,
                    event_type=msg.event_type,
                    reason=reason,
                    provider_object_id=msg.object_id,
                    webhook_event_id=msg.webhook_event_id,
                ),
            )
            return
        # Only charge.refunded can record a refund made at the provider: the id (a uuid5, a
        # hash) is derived for those alone.
        new_refund_id = (
            deterministic_event_id("refund", state.payment_id, "provider", msg.provider_event_id)
            if msg.event_type == domain.CHARGE_REFUNDED
            else ""
        )
        decided = domain.stripe_event(state, stripe, new_refund_id=new_refund_id)
        batch.emit(uow, event, state.tenant_id, state.payment_id, decided)

    # ------------------------------------------------------------------ Telegram

    def _channel_payment(
        self,
        uow: UnitOfWork,
        batch: Batch,
        event: ConsumedEvent,
        msg: ge.ChannelPaymentEventReceived,
    ) -> None:
        state = batch.payment(event.tenant_id, msg.invoice_payload)
        if state is not None and (
            state.method != domain.TELEGRAM or state.channel_account_id != msg.channel_account_id
        ):
            state = None
        if msg.kind == "pre_checkout_query":
            answer = domain.answer_pre_checkout(
                state,
                channel_account_id=msg.channel_account_id,
                total_minor=msg.total_minor,
                currency=msg.currency,
            )
            payload = pe.PreCheckoutQueryAnswered(
                payment_id=state.payment_id if state else "",
                order_id=state.order_id if state else "",
                channel_account_id=msg.channel_account_id,
                pre_checkout_query_id=msg.provider_event_id,
                ok=answer.ok,
                error_message=answer.error_message,
            )
            if state is None:
                batch.emit_rejected(uow, event, msg.channel_account_id, payload)
            else:
                batch.emit(uow, event, state.tenant_id, state.payment_id, [payload])
        elif msg.kind == "successful_payment":
            if state is None:
                batch.emit_rejected(
                    uow,
                    event,
                    msg.channel_account_id,
                    pe.ProviderEventRejected(
                        provider=msg.channel or "telegram",
                        channel_account_id=msg.channel_account_id,
                        provider_event_id=msg.provider_event_id,
                        event_type=msg.kind,
                        reason=UNKNOWN_INVOICE,
                        provider_object_id=msg.provider_charge_id,
                        webhook_event_id=msg.webhook_event_id,
                    ),
                )
                return
            decided = domain.money_received(
                state,
                amount_minor=msg.total_minor,
                currency=msg.currency,
                method=domain.TELEGRAM,
                provider_event_id=msg.provider_event_id or msg.provider_charge_id,
                provider_payment_id=msg.provider_charge_id,
                captured_at=_time(msg.occurred_at),
            )
            batch.emit(uow, event, state.tenant_id, state.payment_id, decided)


def _lookup(events: Sequence[ConsumedEvent]) -> Lookup:
    ids: set[str] = set()
    orders: set[tuple[str, str]] = set()
    sessions: set[tuple[str, str, str]] = set()
    intents: set[tuple[str, str, str]] = set()
    for e in events:
        tenant, msg = e.tenant_id, e.payload
        if isinstance(msg, oe.OrderAwaitingPayment):
            ids.add(payment_id_of(tenant, msg.order_id, msg.attempt))
        elif isinstance(msg, oe.OrderCancelled):
            orders.add((tenant, msg.order_id))
        elif isinstance(msg, ge.ChannelPaymentActionCompleted):
            ids.add(msg.payment_id)
        elif isinstance(msg, ge.PaymentProviderEventReceived):
            account = msg.channel_account_id
            if msg.checkout_session_id:
                sessions.add((tenant, account, msg.checkout_session_id))
            if msg.payment_intent_id:
                intents.add((tenant, account, msg.payment_intent_id))
            if msg.metadata.get("payment_id"):
                ids.add(msg.metadata["payment_id"])
        elif isinstance(msg, ge.ChannelPaymentEventReceived):
            ids.add(msg.invoice_payload)
    ids.discard("")
    return Lookup(frozenset(ids), frozenset(orders), frozenset(sessions), frozenset(intents))


#: Payments per upsert of a rebuild batch: small enough that Postgres starts on the first group
#: while the rest are folded, large enough that a statement's round trip is noise.
_UPSERT_GROUP = 256

REFUND_EVENTS: frozenset[type] = frozenset(
    {pe.RefundRequested, pe.PaymentRefunded, pe.RefundFailed}
)


class PaymentsProjection:
    """Folds parlay.payments.v1 into the read models (rebuild). Skips events at or below a
    payment's stored version, so it needs no per-event dedupe table."""

    deduplicates_itself = True

    def __init__(self, read_model: PaymentsReadModel) -> None:
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
        states = await self.read_model.load_by_ids(
            uow.conn,
            {e.envelope.aggregate_id for e in relevant},
            # Only refund events read a payment's earlier refunds.
            with_refunds={
                e.envelope.aggregate_id for e in relevant if type(e.payload) in REFUND_EVENTS
            },
        )
        by_payment: dict[str, list[ConsumedEvent]] = {}
        for e in relevant:
            by_payment.setdefault(e.envelope.aggregate_id, []).append(e)
        # Payment by payment (in id order, the writers' lock order), a group's rows upserted
        # while the next group is folded (WriteBehind): Python and Postgres work at once.
        async with WriteBehind() as writes:
            group: list[Payment] = []
            for payment_id in sorted(by_payment):
                state = states.get(payment_id)
                folded = _fold_new(state, by_payment[payment_id])
                if folded is state or folded is None:
                    continue  # nothing new, or events of a payment never requested
                group.append(folded)
                if len(group) >= _UPSERT_GROUP:
                    await writes.submit(self.read_model.save(uow.conn, group))
                    group = []
            await writes.submit(self.read_model.save(uow.conn, group))


def _fold_new(state: Payment | None, events: Sequence[ConsumedEvent]) -> Payment | None:
    """The payment after those of its events (in log order) above the version it holds: the
    same object when none is."""
    for e in events:
        env = e.envelope
        if state is not None and env.aggregate_version <= state.version:
            continue
        after = domain.apply(
            state,
            e.payload,
            tenant_id=env.tenant_id,
            version=env.aggregate_version,
            at=occurred_at(e),
        )
        if after is not None:  # None: an event of a payment never requested
            state = after
    return state
