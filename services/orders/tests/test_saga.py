"""The order saga over the real broker: conversation events (carts, confirmations, owners),
payments events and profile merges published to topics the service's projector consumes; the
assertions wait on the read model or on the projector's stored offsets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.orders.v1 import orders_service_pb2 as pb
from parlay.payments.v1 import payments_events_pb2 as pe
from parlay.profile.v1 import profile_events_pb2 as pre
from parlay_kit.auth import tenant_scope
from parlay_kit.testing import unique_name
from parlay_orders import domain
from parlay_orders.projections import cart_order_id

if TYPE_CHECKING:  # test modules cannot import conftest at run time (importlib mode)
    from conftest import Service

pytestmark = pytest.mark.timeout(120)

INBOUND = ce.MessageDirection.MESSAGE_DIRECTION_INBOUND


class Chat:
    """One customer's conversation in one tenant, as the conversation service reports it."""

    def __init__(self, service: Service, customer: str = "") -> None:
        self.service = service
        self.tenant = unique_name("shop")
        self.customer = customer or unique_name("cust")
        self.conversation = unique_name("conv")
        self.seq = 0

    async def catalog(self) -> None:
        for p in (
            domain.Product("TACO-1", "Tacos al pastor", 12475, "MXN"),
            domain.Product("AGUA-1", "Agua de jamaica", 3500, "MXN"),
        ):
            await self.service.add_product(self.tenant, p)

    async def open(self) -> None:
        await self._conv(
            ce.ConversationOpened(
                conversation_id=self.conversation,
                customer_id=self.customer,
                channel="whatsapp",
                channel_account_id="acc-1",
            ),
            "opened",
        )

    async def _conv(self, payload: object, *parts: str) -> None:
        bus = self.service.bus
        await bus.produce(
            bus.conversation,
            self.service.event(self.tenant, "conversation", self.conversation, payload, *parts),  # type: ignore[arg-type]
            source="conversation",
        )

    def message(self, content: ge.MessageContent, message_id: str = "") -> ce.MessageAppended:
        self.seq += 1
        return ce.MessageAppended(
            conversation_id=self.conversation,
            message_id=message_id or f"msg-{self.seq}-{unique_name('m')}",
            direction=INBOUND,
            channel="whatsapp",
            channel_account_id="acc-1",
            content=content,
            address="5215512345678",
        )

    async def send(self, message: ce.MessageAppended) -> str:
        await self._conv(message, message.message_id)
        return message.message_id

    async def cart(self, *items: tuple[str, int, int, str], message_id: str = "") -> str:
        content = ge.MessageContent(
            order=ge.OrderContent(
                items=[
                    ge.OrderItem(sku=s, quantity=q, unit_price_minor=p, currency=c)
                    for s, q, p, c in items
                ]
            )
        )
        message = self.message(content, message_id)
        await self.send(message)
        return cart_order_id(self.tenant, self.conversation, message.message_id)

    async def text(self, body: str) -> str:
        return await self.send(self.message(ge.MessageContent(text=ge.TextContent(body=body))))

    async def payment(self, payload: object, *parts: str) -> None:
        bus = self.service.bus
        await bus.produce(
            bus.payments,
            self.service.event(self.tenant, "payment", unique_name("pay"), payload, *parts),  # type: ignore[arg-type]
            source="payments",
        )


async def confirmed_order(service: Service) -> tuple[Chat, str, domain.OrderState]:
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    order_id = await chat.cart(("TACO-1", 2, 12475, "MXN"))
    await service.wait_order(chat.tenant, order_id, lambda s: s.confirmation_requested)
    await chat.text("Sí!")
    state = await service.wait_order(
        chat.tenant, order_id, lambda s: s.status == domain.AWAITING_PAYMENT, "awaiting payment"
    )
    return chat, order_id, state


# ------------------------------------------------------------------------ carts and confirming


async def test_a_cart_places_an_order_and_ok_makes_payment_due(service: Service) -> None:
    chat, order_id, state = await confirmed_order(service)
    assert state.customer_id == chat.customer
    assert state.source == domain.SOURCE_CART
    assert state.payment_method == domain.PAYMENT_LINK
    assert (state.total_minor, state.currency, state.payment_attempt) == (24950, "MXN", 1)
    assert state.summary == "2 x Tacos al pastor (TACO-1) MX$249.50"
    assert (state.channel, state.channel_account_id, state.address) == (
        "whatsapp",
        "acc-1",
        "5215512345678",
    )
    assert state.confirmed_by == "customer"
    assert await service.event_types(order_id) == [
        "OrderPlaced",
        "OrderConfirmationRequested",
        "OrderConfirmed",
        "OrderAwaitingPayment",
    ]


async def test_a_redelivered_cart_is_one_order(service: Service) -> None:
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    content = ge.MessageContent(
        order=ge.OrderContent(
            items=[ge.OrderItem(sku="AGUA-1", quantity=1, unit_price_minor=3500, currency="MXN")]
        )
    )
    message = chat.message(content)
    await chat.send(message)
    await chat.send(message)  # the same event (same id) again: a relay republish
    # The same message under another event id (a conversation replay) is still the same order.
    bus = service.bus
    await bus.produce(
        bus.conversation,
        service.event(chat.tenant, "conversation", chat.conversation, message, "replayed"),
        source="conversation",
    )
    order_id = cart_order_id(chat.tenant, chat.conversation, message.message_id)
    await service.wait_order(chat.tenant, order_id)
    await bus.wait_caught_up(service.saga)
    assert await service.event_types(order_id) == ["OrderPlaced", "OrderConfirmationRequested"]
    with tenant_scope(chat.tenant):
        listed = await service.servicer.ListOrders(
            pb.ListOrdersRequest(customer_id=chat.customer), None
        )
    assert [o.order_id for o in listed.orders] == [order_id]


async def test_a_cart_with_issues_waits_for_a_person(service: Service) -> None:
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    order_id = await chat.cart(("TACO-1", 1, 9999, "MXN"), ("GHOST", 1, 100, "MXN"))
    state = await service.wait_order(chat.tenant, order_id)
    assert state.issues == (domain.PRICE_MISMATCH, domain.UNKNOWN_SKU)
    assert [ln.issue for ln in state.lines] == [domain.PRICE_MISMATCH, domain.UNKNOWN_SKU]
    assert state.total_minor == 9999 + 100  # charged as the customer saw it
    await chat.text("ok")
    await service.bus.wait_caught_up(service.saga)
    state = await service.wait_order(chat.tenant, order_id)
    assert state.status == domain.PLACED
    assert await service.event_types(order_id) == ["OrderPlaced"]
    # A person looked at it: ConfirmOrder is allowed for an order with issues.
    with tenant_scope(chat.tenant):
        reply = await service.servicer.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order_id), None)
    assert reply.order.status == domain.AWAITING_PAYMENT


async def test_only_a_whole_message_confirms_and_the_button_names_the_order(
    service: Service,
) -> None:
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    first = await chat.cart(("TACO-1", 1, 12475, "MXN"))
    await service.wait_order(chat.tenant, first, lambda s: s.confirmation_requested)
    second = await chat.cart(("AGUA-1", 2, 3500, "MXN"))
    await service.wait_order(chat.tenant, second, lambda s: s.confirmation_requested)
    await chat.text("ok but change the address")
    await service.bus.wait_caught_up(service.saga)
    assert (await service.wait_order(chat.tenant, first)).status == domain.PLACED
    assert (await service.wait_order(chat.tenant, second)).status == domain.PLACED
    # The button of the first (older) order confirms that one, not the newest.
    button = ge.MessageContent(
        interactive_reply=ge.InteractiveReplyContent(reply_id=f"confirm:{first}", title="Confirm")
    )
    evidence = await chat.send(chat.message(button))
    state = await service.wait_order(
        chat.tenant, first, lambda s: s.status == domain.AWAITING_PAYMENT
    )
    assert state.confirmed_by == "customer"
    assert (await service.order(chat.tenant, second)).status == domain.PLACED  # type: ignore[union-attr]
    # "OK" confirms the newest one still placed and offered.
    await chat.text("👍")
    await service.wait_order(chat.tenant, second, lambda s: s.status == domain.AWAITING_PAYMENT)
    # Nothing left to confirm: a further "yes" changes nothing.
    await chat.text("yes")
    await service.bus.wait_caught_up(service.saga)
    assert len(await service.event_types(second)) == 4
    del evidence


async def test_owner_change_places_new_orders_under_the_new_owner(service: Service) -> None:
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    survivor = unique_name("cust")
    await chat._conv(
        ce.ConversationOwnerChanged(
            conversation_id=chat.conversation,
            customer_id=survivor,
            previous_customer_id=chat.customer,
            reason="merged",
        ),
        "owner",
    )
    order_id = await chat.cart(("AGUA-1", 1, 3500, "MXN"))
    state = await service.wait_order(chat.tenant, order_id)
    assert state.customer_id == survivor


async def test_create_order_in_a_conversation_takes_its_channel_and_address(
    service: Service,
) -> None:
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    await chat.text("hola")  # the customer's address arrives with their messages
    await service.bus.wait_caught_up(service.saga)
    with tenant_scope(chat.tenant):
        reply = await service.servicer.CreateOrder(
            pb.CreateOrderRequest(
                customer_id=chat.customer,
                conversation_id=chat.conversation,
                items=[pb.CreateOrderItem(sku="AGUA-1", quantity=2)],
                idempotency_key="k1",
            ),
            None,
        )
    state = await service.wait_order(chat.tenant, reply.order.order_id)
    assert (state.channel, state.channel_account_id, state.address) == (
        "whatsapp",
        "acc-1",
        "5215512345678",
    )
    assert state.confirmation_requested
    # The customer's "ok" confirms the order the agent created for them.
    await chat.text("ok")
    await service.wait_order(
        chat.tenant, state.order_id, lambda s: s.status == domain.AWAITING_PAYMENT
    )


# ------------------------------------------------------------------------------- payments


async def test_capture_mismatch_is_flagged_and_the_exact_amount_pays(service: Service) -> None:
    chat, order_id, state = await confirmed_order(service)
    payment_id = unique_name("p")
    await chat.payment(
        pe.PaymentCaptured(
            payment_id=payment_id, order_id=order_id, amount_minor=100, currency="MXN"
        ),
        "short",
    )
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.payment_flag != "")
    assert (state.status, state.payment_flag) == (domain.AWAITING_PAYMENT, domain.AMOUNT_MISMATCH)
    await chat.payment(
        pe.PaymentCaptured(
            payment_id=payment_id, order_id=order_id, amount_minor=24950, currency="MXN"
        ),
        "exact",
    )
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.status == domain.PAID)
    # The short capture stays flagged: someone must still refund it.
    assert (state.payment_id, state.paid_minor, state.payment_flag) == (
        payment_id,
        24950,
        domain.AMOUNT_MISMATCH,
    )
    # Partial then full refund.
    await chat.payment(
        pe.PaymentRefunded(
            payment_id=payment_id, order_id=order_id, amount_minor=4950, currency="MXN"
        ),
        "r1",
    )
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.refunded_minor == 4950)
    assert state.status == domain.PAID
    await chat.payment(
        pe.PaymentRefunded(
            payment_id=payment_id, order_id=order_id, amount_minor=20000, currency="MXN"
        ),
        "r2",
    )
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.status == domain.REFUNDED)
    assert state.refunded_minor == 24950


async def test_payment_flagged_and_link_failed_are_noted(service: Service) -> None:
    chat, order_id, _ = await confirmed_order(service)
    await chat.payment(
        pe.PaymentLinkFailed(payment_id="p", order_id=order_id, reason="account_invalid"),
        "lf",
    )
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.payment_flag != "")
    assert state.payment_flag == f"{domain.LINK_FAILED}: account_invalid"
    await chat.payment(
        pe.PaymentFlagged(
            payment_id="p", order_id=order_id, reason="currency_mismatch", currency="USD"
        ),
        "pf",
    )
    state = await service.wait_order(
        chat.tenant, order_id, lambda s: s.payment_flag == "currency_mismatch"
    )
    assert state.status == domain.AWAITING_PAYMENT


async def test_expiry_reminds_then_cancels_and_a_late_capture_is_flagged(
    service: Service,
) -> None:
    chat, order_id, _ = await confirmed_order(service)
    await chat.payment(pe.PaymentExpired(payment_id="p1", order_id=order_id, attempt=1), "e1")
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.payment_attempt == 2)
    assert state.status == domain.AWAITING_PAYMENT
    # A stale expiry of attempt 1 (redelivered under another id) changes nothing.
    await chat.payment(pe.PaymentExpired(payment_id="p1", order_id=order_id, attempt=1), "e1b")
    await chat.payment(pe.PaymentExpired(payment_id="p2", order_id=order_id, attempt=2), "e2")
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.status == "cancelled")
    assert (state.cancel_reason, state.payment_attempt) == (domain.PAYMENT_EXPIRED, 2)
    await chat.payment(
        pe.PaymentCaptured(payment_id="p2", order_id=order_id, amount_minor=24950, currency="MXN"),
        "late",
    )
    state = await service.wait_order(chat.tenant, order_id, lambda s: s.payment_flag != "")
    assert (state.status, state.payment_flag) == (domain.CANCELLED, domain.NOT_AWAITING_PAYMENT)
    assert await service.event_types(order_id) == [
        "OrderPlaced",
        "OrderConfirmationRequested",
        "OrderConfirmed",
        "OrderAwaitingPayment",
        "OrderAwaitingPayment",
        "OrderCancelled",
        "OrderPaymentFlagged",
    ]


# --------------------------------------------------------------------------------- merges


async def test_merge_lists_the_merged_customers_orders_under_the_survivor(
    service: Service,
) -> None:
    chat, order_id, _ = await confirmed_order(service)
    survivor = unique_name("cust")
    bus = service.bus

    async def listed(customer: str) -> list[str]:
        with tenant_scope(chat.tenant):
            reply = await service.servicer.ListOrders(
                pb.ListOrdersRequest(customer_id=customer), None
            )
        return [o.order_id for o in reply.orders]

    assert await listed(survivor) == []
    merge = pre.ProfilesMerged(
        merge_id="m1", survivor_customer_id=survivor, merged_customer_id=chat.customer
    )
    await bus.produce(
        bus.profile,
        service.event(chat.tenant, "customer", survivor, merge, "merge"),
        source="profile",
    )
    await service.bus.wait_caught_up(service.saga)
    assert await listed(survivor) == [order_id]
    unmerge = pre.ProfilesUnmerged(
        merge_id="m1", survivor_customer_id=survivor, merged_customer_id=chat.customer
    )
    await bus.produce(
        bus.profile,
        service.event(chat.tenant, "customer", survivor, unmerge, "unmerge"),
        source="profile",
    )
    await service.bus.wait_caught_up(service.saga)
    assert await listed(survivor) == []
    assert await listed(chat.customer) == [order_id]


# ----------------------------------------------------------------------------- poison events


async def test_a_cart_in_a_conversation_never_opened_is_dead_lettered(service: Service) -> None:
    """The customer is unknown: the saga refuses to guess, the event goes to the DLQ and the
    partition keeps flowing (a later cart in an opened conversation is placed)."""
    from parlay_kit.broker import ensure_topics
    from parlay_kit.topics import dead_letter_topic

    await ensure_topics(service.bus.bootstrap, [dead_letter_topic("orders")], partitions=1)
    before = service.saga.stats.dead_lettered
    stray = Chat(service)
    await stray.catalog()
    stray_order = await stray.cart(("TACO-1", 1, 12475, "MXN"))  # never opened
    chat = Chat(service)
    await chat.catalog()
    await chat.open()
    order_id = await chat.cart(("TACO-1", 1, 12475, "MXN"))
    await service.wait_order(chat.tenant, order_id)
    await service.bus.wait_caught_up(service.saga)
    assert service.saga.stats.dead_lettered == before + 1
    assert await service.order(stray.tenant, stray_order) is None


# --------------------------------------------------------------------------------- rebuild


async def test_the_read_models_rebuild_from_the_orders_topic(
    service: Service, database_url: str
) -> None:
    """Last in the module: every order and product the tests above wrote, published by the
    outbox relay, folded again by `OrderProjection` (`parlay replay orders.orders`) into a fresh
    schema, equals the read models the service wrote in its transactions, column for column."""
    import asyncpg

    from parlay_kit.envelope import unpack
    from parlay_kit.replay import Replayer
    from parlay_orders.rebuild import PROJECTIONS, fold_order

    chat, order_id, _ = await confirmed_order(service)
    await chat.payment(
        pe.PaymentCaptured(payment_id="p", order_id=order_id, amount_minor=24950, currency="MXN"),
        "paid",
    )
    await service.wait_order(chat.tenant, order_id, lambda s: s.status == domain.PAID)
    runtime = service.runtime
    assert runtime.relay is not None
    last = await service.pool.fetchval(
        f"SELECT coalesce(max(position), 0) FROM {runtime.schema}.events"
    )
    await runtime.relay.wait_published(last, 30)
    replayer = Replayer(
        PROJECTIONS[0],
        database_url=database_url,
        bootstrap=service.bus.bootstrap,
        live_schema=runtime.schema,
        topics=[service.bus.orders],
    )
    try:
        stats = await replayer.run()
        assert stats.errors == 0
        report = await replayer.verify()
        assert report.equal, report.to_json()
        assert {t.table: t.live_rows > 0 for t in report.tables} == {
            "orders": True,
            "products": True,
        }
        # `parlay at <when> order <id>`: the order's events folded with the service's rules.
        async with service.pool.acquire() as conn:
            stream = await runtime.store.load_stream(conn, order_id)
        folded = fold_order([(e, unpack(e)) for e in stream])
        assert folded is not None
        assert (folded.status, folded.version, folded.paid_minor) == ("paid", 5, 24950)
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {replayer.work_schema} CASCADE")
        finally:
            await conn.close()
