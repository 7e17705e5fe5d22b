"""Projections of the orders service.

OrderSaga (projector "order-saga"; parlay.conversation.v1, parlay.payments.v1, parlay.profile.v1)
    The service's reactions to the other services' events; every order it writes goes through
    `OrderWriter` (load, decide, append with the expected version, save) in the batch's
    transaction, with event ids derived from the consumed event, so a redelivery changes
    nothing.

    * ConversationOpened / ConversationOwnerChanged: conversation -> customer, channel, account.
    * MessageAppended (inbound): a WhatsApp cart (content.order) places an order (source
      whatsapp_cart) and, when it has no issues, asks the customer to confirm; a reply that is
      a confirmation ("OK", "sí", "👍", button "confirm:<order_id>") confirms the newest order of
      the conversation still placed and offered, and payment becomes due (attempt 1).
    * PaymentCaptured / PaymentFlagged / PaymentExpired / PaymentRefunded / PaymentLinkFailed:
      the payment side of the saga (see `domain.decide_*`).
    * ProfilesMerged / ProfilesUnmerged: customer aliases, so ListOrders(survivor) finds the
      merged customer's orders and an unmerge gives them back.

OrderProjection (no live projector; `parlay replay orders.orders` and the bench)
    Folds parlay.orders.v1 into the orders and products read models with `domain.apply`, a batch
    at a time: one SELECT of the touched orders, one unnest upsert. Idempotent by aggregate
    version (a row only moves forward), so it needs no per-event dedupe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.orders.v1 import orders_events_pb2 as oe
from parlay.payments.v1 import payments_events_pb2 as pe
from parlay.profile.v1 import profile_events_pb2 as pre
from parlay_kit.envelope import deterministic_event_id, from_timestamp
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_orders import domain
from parlay_orders.commands import Cause, Decide, OrderWriter
from parlay_orders.readmodel import OrdersReadModel

log = logging.getLogger(__name__)

_INBOUND = ce.MessageDirection.MESSAGE_DIRECTION_INBOUND


def _cause(event: ConsumedEvent) -> Cause:
    envelope = event.envelope
    return Cause(
        causation_id=envelope.event_id,
        correlation_id=envelope.correlation_id or envelope.event_id,
        traceparent=event.traceparent,
    )


def cart_order_id(tenant_id: str, conversation_id: str, message_id: str) -> str:
    """A cart's order id follows from its message: the same cart is the same order."""
    return deterministic_event_id(tenant_id, "order", conversation_id, message_id)


class OrderSaga:
    def __init__(
        self,
        read_model: OrdersReadModel,
        writer: OrderWriter,
        *,
        default_payment_method: str = domain.PAYMENT_LINK,
        max_payment_attempts: int = 2,
    ) -> None:
        self.rm = read_model
        self.writer = writer
        self.default_payment_method = default_payment_method
        self.max_payment_attempts = max_payment_attempts

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        """Events one at a time, in log order; the customers' addresses (every inbound
        message carries one, it rarely changes) are written once per batch at the end."""
        addresses: dict[tuple[str, str], str] = {}
        for event in events:
            await self._handle(uow, event, addresses)
        await self.rm.set_conversation_addresses(uow.conn, addresses)

    async def _handle(
        self, uow: UnitOfWork, event: ConsumedEvent, addresses: dict[tuple[str, str], str]
    ) -> None:
        p = event.payload
        if isinstance(p, ce.ConversationOpened):
            await self.rm.open_conversation(
                uow.conn,
                event.tenant_id,
                p.conversation_id,
                p.customer_id,
                p.channel,
                p.channel_account_id,
            )
        elif isinstance(p, ce.ConversationOwnerChanged):
            await self.rm.set_conversation_owner(
                uow.conn, event.tenant_id, p.conversation_id, p.customer_id
            )
        elif isinstance(p, ce.MessageAppended):
            if p.direction == _INBOUND:
                if p.address:
                    addresses[(event.tenant_id, p.conversation_id)] = p.address
                await self._inbound(uow, event, p)
        elif isinstance(p, pre.ProfilesMerged):
            if p.merged_customer_id and p.survivor_customer_id != p.merged_customer_id:
                await self.rm.set_alias(
                    uow.conn,
                    event.tenant_id,
                    p.merged_customer_id,
                    p.survivor_customer_id,
                    p.merge_id,
                )
        elif isinstance(p, pre.ProfilesUnmerged):
            await self.rm.remove_alias(
                uow.conn, event.tenant_id, p.merged_customer_id, p.survivor_customer_id
            )
        else:
            await self._payment(uow, event, p)

    # ------------------------------------------------------------------ conversation

    async def _inbound(self, uow: UnitOfWork, event: ConsumedEvent, m: ce.MessageAppended) -> None:
        tenant = event.tenant_id
        kind = m.content.WhichOneof("kind")
        if kind == "order":
            await self._place_cart(uow, event, m)
        elif kind == "text":
            if domain.is_confirmation(m.content.text.body):
                order_id = await self.rm.newest_confirmable(uow.conn, tenant, m.conversation_id)
                if order_id is not None:
                    await self._confirm(uow, event, m, order_id)
        elif kind == "interactive_reply":
            reply = m.content.interactive_reply
            order_id = domain.confirm_button_order(reply.reply_id, reply.payload)
            if order_id:
                await self._confirm(uow, event, m, order_id)
            elif domain.is_confirmation(reply.title):
                order_id = await self.rm.newest_confirmable(uow.conn, tenant, m.conversation_id)
                if order_id is not None:
                    await self._confirm(uow, event, m, order_id)

    async def _place_cart(
        self, uow: UnitOfWork, event: ConsumedEvent, m: ce.MessageAppended
    ) -> None:
        tenant = event.tenant_id
        conversation = await self.rm.conversation(uow.conn, tenant, m.conversation_id)
        if conversation is None:
            # Conversation events share a partition per conversation: ConversationOpened
            # always comes first. Without it the customer is unknown: dead-letter, never guess.
            raise LookupError(f"cart in conversation {m.conversation_id} that never opened")
        cart = m.content.order
        items = [
            domain.CartItem(
                sku=i.sku,
                quantity=i.quantity,
                unit_price_minor=i.unit_price_minor,
                currency=i.currency.upper(),
            )
            for i in cart.items
        ]
        catalog = await self.rm.products(uow.conn, tenant, [i.sku for i in items])
        priced = domain.price_cart(items, catalog)
        order_id = cart_order_id(tenant, m.conversation_id, m.message_id)
        placement = domain.Placement(
            order_id=order_id,
            customer_id=conversation["customer_id"],
            conversation_id=m.conversation_id,
            source=domain.SOURCE_CART,
            payment_method=self.default_payment_method,
            placed_by="customer",
            channel=m.channel or conversation["channel"],
            channel_account_id=m.channel_account_id or conversation["channel_account_id"],
            address=m.address or conversation["address"],
            source_event_id=m.message_id,
        )
        await self._write(
            uow,
            event,
            order_id,
            lambda s: domain.decide_place(s, placement, priced, request_confirmation=True),
        )

    async def _confirm(
        self, uow: UnitOfWork, event: ConsumedEvent, m: ce.MessageAppended, order_id: str
    ) -> None:
        def decide(state: domain.OrderState | None) -> list:
            if (
                state is None
                or state.conversation_id != m.conversation_id
                or not domain.customer_may_confirm(state)
            ):
                return []  # nothing (left) to confirm: a plain "ok" in the chat
            return domain.decide_confirm(state, confirmed_by="customer", evidence=m.message_id)

        await self._write(uow, event, order_id, decide)

    # ------------------------------------------------------------------ payments

    async def _payment(self, uow: UnitOfWork, event: ConsumedEvent, p: object) -> None:
        decide: Callable[[domain.OrderState], list[Message]]
        if isinstance(p, pe.PaymentCaptured):
            captured = p
            decide = lambda s: domain.decide_captured(  # noqa: E731
                s,
                payment_id=captured.payment_id,
                amount_minor=captured.amount_minor,
                currency=captured.currency,
                method=captured.method,
            )
        elif isinstance(p, pe.PaymentFlagged):
            flagged = p
            decide = lambda s: domain.decide_payment_flagged(  # noqa: E731
                s,
                payment_id=flagged.payment_id,
                reason=flagged.reason,
                amount_minor=flagged.amount_minor,
                currency=flagged.currency,
            )
        elif isinstance(p, pe.PaymentExpired):
            attempt = p.attempt
            decide = lambda s: domain.decide_expired(  # noqa: E731
                s, attempt=attempt, max_attempts=self.max_payment_attempts
            )
        elif isinstance(p, pe.PaymentRefunded):
            refunded = p
            decide = lambda s: domain.decide_refunded(  # noqa: E731
                s,
                payment_id=refunded.payment_id,
                amount_minor=refunded.amount_minor,
                currency=refunded.currency,
            )
        elif isinstance(p, pe.PaymentLinkFailed):
            failed = p
            decide = lambda s: domain.decide_link_failed(  # noqa: E731
                s, payment_id=failed.payment_id, reason=failed.reason
            )
        else:
            return  # events the saga does not react to
        order_id = getattr(p, "order_id", "")

        def guarded(state: domain.OrderState | None) -> list[Message]:
            if state is None:
                log.warning(
                    "%s %s for unknown order %r of tenant %s: ignored",
                    event.event_type,
                    event.event_id,
                    order_id,
                    event.tenant_id,
                )
                return []
            return decide(state)

        await self._write(uow, event, order_id, guarded)

    async def _write(
        self, uow: UnitOfWork, event: ConsumedEvent, order_id: str, decide: Decide
    ) -> None:
        if not order_id:
            raise ValueError(f"{event.event_type} {event.event_id} names no order")
        source = event.event_id
        await self.writer.write(
            uow.conn,
            event.tenant_id,
            order_id,
            decide,
            at=from_timestamp(event.envelope.occurred_at),
            event_id=lambda i: deterministic_event_id(source, "orders", order_id, str(i)),
            cause=_cause(event),
        )


class OrderProjection:
    """parlay.orders.v1 -> orders and products, batched (see the module docstring)."""

    deduplicates_itself = True

    def __init__(self, read_model: OrdersReadModel) -> None:
        self.rm = read_model

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        order_events = []
        products: dict[tuple[str, str], tuple[str, domain.Product, int, object]] = {}
        for e in events:
            t = e.envelope.event_type
            if t in domain.ORDER_EVENT_TYPES:
                order_events.append(e)
            elif t == domain.PRODUCT_UPSERTED:
                p = e.payload
                assert isinstance(p, oe.ProductUpserted)
                version = e.envelope.aggregate_version
                key = (e.tenant_id, p.sku)
                held = products.get(key)
                if held is None or held[2] < version:
                    products[key] = (
                        e.tenant_id,
                        domain.Product(
                            p.sku,
                            p.name,
                            p.price_minor,
                            p.currency,
                            p.available,
                            p.description,
                            p.image_url,
                        ),
                        version,
                        from_timestamp(e.envelope.occurred_at),
                    )
        if products:
            await self.rm.save_products(uow.conn, list(products.values()))  # type: ignore[arg-type]
        if not order_events:
            return
        # The batch's events per order, in log order (one partition holds an order's events).
        by_order: dict[tuple[str, str], list[domain.Folded]] = {}
        for e in order_events:
            envelope = e.envelope
            key = (envelope.tenant_id, envelope.aggregate_id)
            folded = (e.payload, envelope.aggregate_version, envelope.occurred_at)
            pending = by_order.get(key)
            if pending is None:
                by_order[key] = [folded]
            else:
                pending.append(folded)
        states = await self.rm.load_orders(uow.conn, by_order)
        changed = []
        fold = domain.fold
        for key, folded_events in by_order.items():
            before = states.get(key)
            after = fold(before, folded_events, tenant_id=key[0])
            if after is not None and after is not before:
                changed.append(after)
        await self.rm.save_orders(uow.conn, changed)
