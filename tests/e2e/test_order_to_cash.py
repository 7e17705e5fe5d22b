"""Order to cash, end to end: five service processes, a real broker and Postgres, real HTTP.

A signed WhatsApp cart becomes an order with the right lines and total; the customer gets the
summary and confirms with "OK"; payments asks for a Stripe Checkout session, the gateway creates
it on the Stripe stand-in (official `stripe` library) and the link reaches the customer through
the WhatsApp stand-in; the stand-in's signed `checkout.session.completed` comes back through the
gateway, payments captures, orders marks the order paid and the customer is told. The same Stripe
events again (three times, and in reverse order) change nothing; a forged signature, a stale
timestamp, an unknown session and a mismatched amount are each refused with nothing changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid

import asyncpg
import httpx
import pytest

from parlay.conversation.v1 import conversation_service_pb2 as conv_pb
from parlay.conversation.v1 import conversation_service_pb2_grpc as conv_grpc
from parlay.orders.v1 import orders_service_pb2 as orders_pb
from parlay.orders.v1 import orders_service_pb2_grpc as orders_grpc
from parlay.payments.v1 import payments_service_pb2 as pay_pb
from parlay.payments.v1 import payments_service_pb2_grpc as pay_grpc
from parlay.profile.v1 import profile_service_pb2 as profile_pb
from parlay.profile.v1 import profile_service_pb2_grpc as profile_grpc

from .stack import ServiceStack, eventually, running_stack
from .whatsapp import account, signed_headers, text_message, webhook

pytestmark = pytest.mark.slow

SUFFIX = uuid.uuid4().hex[:6]
WHATSAPP = f"wa-o2c-{SUFFIX}"
STRIPE = f"stripe-o2c-{SUFFIX}"
STRIPE_KEY = f"sk_test_o2c_{SUFFIX}"
STRIPE_SECRET = f"whsec_o2c_{SUFFIX}"
WA_ID = "5215512345678"


def stripe_account(tenant_id: str) -> dict:
    return {
        "tenant_id": tenant_id,
        "channel_account_id": STRIPE,
        "channel": "stripe",
        "credentials": {"api_key": STRIPE_KEY, "webhook_secret": STRIPE_SECRET},
        "settings": {},
    }


@pytest.fixture(scope="module")
async def stack(database_url, tmp_path_factory, standin):
    from parlay_standins import env_for

    async with running_stack(
        database_url,
        tmp_path_factory.mktemp("o2c-stack"),
        lambda tenant: [account(WHATSAPP, tenant), stripe_account(tenant)],
        extra_env=env_for(standin.url),
    ) as s:
        async with httpx.AsyncClient() as client:
            registered = await client.post(
                f"{standin.url}/_standin/accounts",
                json={
                    "channel": "stripe",
                    "credentials": {"api_key": STRIPE_KEY, "webhook_secret": STRIPE_SECRET},
                    "webhook_url": f"{s.gateway_url}/webhooks/stripe/{STRIPE}",
                },
            )
            registered.raise_for_status()
        yield s


# ------------------------------------------------------------------------------- helpers


async def customer_writes(stack: ServiceStack, message: dict) -> None:
    body = webhook([message], [(WA_ID, "Lupita")])
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{stack.gateway_url}/webhooks/whatsapp/{WHATSAPP}",
            content=body,
            headers=signed_headers(body),
        )
    assert response.status_code == 200, response.text


def cart(wamid: str, items: list[tuple[str, int, str]]) -> dict:
    return {
        "from": WA_ID,
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "order",
        "order": {
            "catalog_id": "o2c-catalog",
            "text": "para hoy",
            "product_items": [
                {
                    "product_retailer_id": sku,
                    "quantity": str(quantity),
                    "item_price": price,
                    "currency": "MXN",
                }
                for sku, quantity, price in items
            ],
        },
    }


async def whatsapp_texts(standin, contains: str, count: int = 1) -> list[str]:
    """Texts the WhatsApp stand-in accepted that contain `contains` (waits for `count`)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{standin.url}/_standin/requests",
            params={
                "channel": "whatsapp",
                "contains": contains,
                "accepted": "true",
                "min_count": count,
                "timeout": 60,
            },
            timeout=70,
        )
    requests = response.json()["requests"]
    return [json.dumps(r.get("body", r)) for r in requests]


async def customer_id(stack: ServiceStack) -> str:
    async def probe() -> str | None:
        async with stack.channel("conversation") as channel:
            listed = await conv_grpc.ConversationServiceStub(channel).ListConversations(
                conv_pb.ListConversationsRequest(), metadata=stack.metadata()
            )
        return listed.conversations[0].customer_id if listed.conversations else None

    return await eventually(probe, what="the customer's conversation")


async def _purchases_when_paid(
    stack: ServiceStack, customer: str
) -> profile_pb.PurchaseSummary | None:
    async with stack.channel("profile") as channel:
        found = await profile_grpc.ProfileServiceStub(channel).GetCustomer(
            profile_pb.GetCustomerRequest(customer_id=customer), metadata=stack.metadata()
        )
    purchases = found.customer.purchases
    return purchases if purchases.lifetime_value else None


async def orders_of(stack: ServiceStack, customer: str) -> list[orders_pb.Order]:
    async with stack.channel("orders") as channel:
        reply = await orders_grpc.OrdersServiceStub(channel).ListOrders(
            orders_pb.ListOrdersRequest(customer_id=customer), metadata=stack.metadata()
        )
    return list(reply.orders)


async def order(stack: ServiceStack, order_id: str) -> orders_pb.Order:
    async with stack.channel("orders") as channel:
        reply = await orders_grpc.OrdersServiceStub(channel).GetOrder(
            orders_pb.GetOrderRequest(order_id=order_id), metadata=stack.metadata()
        )
    return reply.order


async def order_in(stack: ServiceStack, order_id: str, status: str) -> orders_pb.Order:
    async def probe():
        o = await order(stack, order_id)
        return o if o.status == status else None

    return await eventually(probe, what=f"order {order_id} {status}")


async def payments_of(stack: ServiceStack, order_id: str) -> list[pay_pb.Payment]:
    async with stack.channel("payments") as channel:
        reply = await pay_grpc.PaymentsServiceStub(channel).ListPayments(
            pay_pb.ListPaymentsRequest(order_id=order_id), metadata=stack.metadata()
        )
    return list(reply.payments)


async def stored_events(stack: ServiceStack, service: str, event_type: str) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM {stack.services[service].schema}.events "
                "WHERE event_type = $1",
                event_type,
            )
        )
    finally:
        await conn.close()


def stripe_event(event_type: str, session: dict) -> bytes:
    """A Stripe event in Stripe's documented shape around a checkout.session object."""
    event = {
        "id": f"evt_test_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event, separators=(",", ":")).encode()


def stripe_signature(body: bytes, secret: str = STRIPE_SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


async def post_stripe(stack: ServiceStack, body: bytes, signature: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{stack.gateway_url}/webhooks/stripe/{STRIPE}",
            content=body,
            headers={"content-type": "application/json", "stripe-signature": signature},
        )


async def standin_events(standin, session_id: str) -> list[dict]:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{standin.url}/_standin/stripe/events", params={"session": session_id}
        )
    response.raise_for_status()
    return response.json()["events"]


# ------------------------------------------------------------------------------- the test


async def upsert_catalog(stack: ServiceStack) -> None:
    async with stack.channel("orders") as channel:
        catalog = orders_grpc.OrdersServiceStub(channel)
        for sku, name, price in (("TACO-1", "Tacos al pastor", 4990), ("AGUA-1", "Agua", 2500)):
            await catalog.UpsertProduct(
                orders_pb.UpsertProductRequest(
                    product=orders_pb.Product(
                        sku=sku, name=name, price_minor=price, currency="MXN", available=True
                    )
                ),
                metadata=stack.metadata(),
            )


async def test_cart_to_paid_order_through_whatsapp_and_stripe(stack, standin) -> None:
    await upsert_catalog(stack)

    # 1. The cart becomes an order priced as the customer saw it: 2 x 49.90 + 1 x 25.00.
    await customer_writes(
        stack, cart("wamid.o2c.cart1", [("TACO-1", 2, "49.90"), ("AGUA-1", 1, "25.00")])
    )
    customer = await customer_id(stack)
    [placed] = await eventually(lambda: orders_of(stack, customer), what="the order")
    assert (placed.total_minor, placed.currency, placed.source) == (12480, "MXN", "whatsapp_cart")
    lines = sorted((i.sku, i.quantity, i.unit_price_minor, i.issue) for i in placed.items)
    assert lines == [("AGUA-1", 1, 2500, ""), ("TACO-1", 2, 4990, "")]
    assert not placed.issues

    # 2. The customer gets the summary and confirms with "OK".
    [summary] = await whatsapp_texts(standin, "Reply OK to confirm")
    assert "124.80" in summary and "Tacos al pastor" in summary
    await customer_writes(stack, text_message("wamid.o2c.ok1", WA_ID, "OK"))
    await order_in(stack, placed.order_id, "awaiting_payment")

    # 3. The payment link reaches the customer; payments holds the Stripe session for exactly
    # the order's total.
    [link_message] = await whatsapp_texts(standin, "/stripe/pay/cs_")
    session_id = re.search(r"/stripe/pay/(cs_[A-Za-z0-9_]+)", link_message).group(1)
    [payment] = await payments_of(stack, placed.order_id)
    assert (payment.status, payment.amount_minor, payment.currency, payment.method) == (
        "link_created",
        12480,
        "MXN",
        "payment_link",
    )
    assert payment.provider_session_id == session_id
    assert payment.checkout_url.endswith(f"/stripe/pay/{session_id}")

    # 4. Forged, stale and unknown-session events are refused; nothing changes.
    session = {
        "id": session_id,
        "object": "checkout.session",
        "amount_total": 12480,
        "currency": "mxn",
        "client_reference_id": placed.order_id,
        "metadata": {"order_id": placed.order_id},
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": "pi_test_forged",
        "mode": "payment",
        "livemode": False,
    }
    forged = stripe_event("checkout.session.completed", session)
    response = await post_stripe(stack, forged, stripe_signature(forged, secret="whsec_wrong"))
    assert response.status_code in (400, 401, 403), response.text
    stale = stripe_event("checkout.session.completed", session)
    at = int(time.time()) - 301
    response = await post_stripe(stack, stale, stripe_signature(stale, at=at))
    assert response.status_code in (400, 401, 403), response.text
    unknown = stripe_event(
        "checkout.session.completed", {**session, "id": "cs_test_never_created_by_payments"}
    )
    response = await post_stripe(stack, unknown, stripe_signature(unknown))
    assert response.status_code == 200, response.text  # authentic: stored, then refused
    await eventually(
        lambda: stored_events(stack, "payments", "parlay.payments.v1.ProviderEventRejected"),
        what="payments refusing the unknown session",
    )
    assert (await order(stack, placed.order_id)).status == "awaiting_payment"
    assert [p.status for p in await payments_of(stack, placed.order_id)] == ["link_created"]

    # 5. The customer pays: the signed webhooks come back through the gateway; paid and told.
    async with httpx.AsyncClient() as client:
        paid = await client.post(f"{standin.url}/_standin/stripe/sessions/{session_id}/pay")
    assert paid.status_code == 200, paid.text
    done = await order_in(stack, placed.order_id, "paid")
    assert (done.paid_minor, done.payment_id) == (12480, payment.payment_id)
    [captured] = await payments_of(stack, placed.order_id)
    assert (captured.status, captured.captured_minor) == ("captured", 12480)
    await whatsapp_texts(standin, "We received your payment")
    # The profile keeps the customer's purchase summary from orders' and payments' events.
    purchases = await eventually(
        lambda: _purchases_when_paid(stack, customer), what="the profile's purchase summary"
    )
    assert purchases.order_count == 1
    assert [(m.currency, m.amount_minor) for m in purchases.lifetime_value] == [("MXN", 12480)]

    # 6. The same Stripe events three times, and in reverse order: nothing more happens.
    events = await standin_events(standin, session_id)
    assert {e["type"] for e in events} >= {"checkout.session.completed"}
    version = done.version
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            for event in reversed(events):
                resent = await client.post(
                    f"{standin.url}/_standin/stripe/events/{event['id']}/resend"
                )
                assert resent.status_code == 200, resent.text
    # Redeliveries are stored once at the gateway (deduplicated by Stripe event id), so no new
    # event reaches payments: the order and the payment are as they were.
    assert await stored_events(stack, "payments", "parlay.payments.v1.PaymentCaptured") == 1
    assert (await order(stack, placed.order_id)).version == version
    assert [p.status for p in await payments_of(stack, placed.order_id)] == ["captured"]
    assert len(await whatsapp_texts(standin, "We received your payment")) == 1

    # 7. A second order paid with the wrong amount is flagged, not paid.
    await customer_writes(stack, cart("wamid.o2c.cart2", [("AGUA-1", 2, "25.00")]))
    second = await eventually(
        lambda: _other_order(stack, customer, placed.order_id), what="the second order"
    )
    await whatsapp_texts(standin, "Reply OK to confirm", count=2)
    await customer_writes(stack, text_message("wamid.o2c.ok2", WA_ID, "sí"))
    await order_in(stack, second.order_id, "awaiting_payment")
    [pending] = await eventually(
        lambda: _with_session(stack, second.order_id), what="the second payment link"
    )
    async with httpx.AsyncClient() as client:
        short = await client.post(
            f"{standin.url}/_standin/stripe/sessions/{pending.provider_session_id}/pay",
            json={"amount_minor": 100},
        )
    assert short.status_code == 200, short.text
    [flagged] = await eventually(
        lambda: _in_status(stack, second.order_id, "flagged"), what="the flagged payment"
    )
    assert flagged.flag_reason
    still = await order(stack, second.order_id)
    assert still.status == "awaiting_payment" and still.paid_minor == 0


async def test_an_expired_link_is_renewed_once_then_the_order_is_cancelled(stack, standin) -> None:
    """The saga's compensation: the first expiry sends a new link (the reminder), the second
    cancels the order, and the customer hears both."""
    await upsert_catalog(stack)
    await customer_writes(stack, cart("wamid.o2c.cart3", [("TACO-1", 1, "49.90")]))
    customer = await customer_id(stack)

    async def third():  # the other test's orders total 124.80 and 50.00
        return next((o for o in await orders_of(stack, customer) if o.total_minor == 4990), None)

    placed = await eventually(third, what="the third order")
    await customer_writes(stack, text_message("wamid.o2c.ok3", WA_ID, "ok"))
    sessions: list[str] = []
    for attempt in (1, 2):

        async def link(attempt: int = attempt):
            payments = await payments_of(stack, placed.order_id)
            mine = [p for p in payments if p.attempt == attempt and p.provider_session_id]
            return mine[0] if mine else None

        payment = await eventually(link, what=f"payment link {attempt}")
        sessions.append(payment.provider_session_id)
        await whatsapp_texts(standin, payment.provider_session_id)  # the customer got it
        async with httpx.AsyncClient() as client:
            expired = await client.post(
                f"{standin.url}/_standin/stripe/sessions/{payment.provider_session_id}/expire"
            )
        assert expired.status_code == 200, expired.text
    assert len(set(sessions)) == 2
    cancelled = await order_in(stack, placed.order_id, "cancelled")
    assert cancelled.cancel_reason == "payment_expired" and cancelled.payment_attempt == 2
    assert {p.status for p in await payments_of(stack, placed.order_id)} == {"expired"}
    await whatsapp_texts(standin, f"Your order {placed.order_id} was cancelled")


async def _other_order(stack, customer, first_id):
    return next((o for o in await orders_of(stack, customer) if o.order_id != first_id), None)


async def _with_session(stack, order_id):
    payments = await payments_of(stack, order_id)
    return payments if payments and payments[0].provider_session_id else None


async def _in_status(stack, order_id, status):
    payments = await payments_of(stack, order_id)
    return payments if payments and payments[0].status == status else None
