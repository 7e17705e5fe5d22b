"""The Telegram invoice flow, end to end: five service processes, a real broker and Postgres,
the Telegram Bot API stand-in over HTTP.

A customer writes to the bot; an agent builds the order (CreateOrder, payment method telegram)
and confirms it; payments asks for an invoice and the gateway sends it (sendInvoice). When the
customer taps Pay, Telegram sends a `pre_checkout_query` that must be answered within 10 seconds:
it goes through the gateway to payments and back to the gateway's answerPreCheckoutQuery — timed
here. Telegram's `successful_payment` then captures the payment and the order is paid. A
pre-checkout query for an amount the order does not have is answered "no".
"""

from __future__ import annotations

import json
import time
import uuid

import grpc
import httpx
import pytest

from parlay.conversation.v1 import conversation_service_pb2 as conv_pb
from parlay.conversation.v1 import conversation_service_pb2_grpc as conv_grpc
from parlay.orders.v1 import orders_service_pb2 as orders_pb
from parlay.orders.v1 import orders_service_pb2_grpc as orders_grpc

from .stack import ServiceStack, eventually, running_stack

pytestmark = pytest.mark.slow

SUFFIX = uuid.uuid4().hex[:6]
TELEGRAM = f"tg-pay-{SUFFIX}"
SECRET = f"tg-secret-{SUFFIX}"
CHAT = "700123456"
#: Telegram allows 10 seconds to answer a pre-checkout query.
PRE_CHECKOUT_BUDGET = 10.0


def telegram_account(tenant_id: str) -> dict:
    return {
        "tenant_id": tenant_id,
        "channel_account_id": TELEGRAM,
        "channel": "telegram",
        "credentials": {"bot_token": f"123456:{SUFFIX}", "secret_token": SECRET},
        "settings": {"payment_provider_token": "284685063:TEST:parlay"},
    }


@pytest.fixture(scope="module")
async def stack(database_url, tmp_path_factory, standin):
    from parlay_standins import env_for

    async with running_stack(
        database_url,
        tmp_path_factory.mktemp("tg-pay-stack"),
        lambda tenant: [telegram_account(tenant)],
        extra_env=env_for(standin.url),
    ) as s:
        yield s


class Updates:
    """Telegram updates as the Bot API posts them to the webhook (with the secret token)."""

    def __init__(self, stack: ServiceStack) -> None:
        self.stack = stack
        self.next_id = 500_000

    async def post(self, update: dict) -> None:
        self.next_id += 1
        body = json.dumps({"update_id": self.next_id, **update}).encode()
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.stack.gateway_url}/webhooks/telegram/{TELEGRAM}",
                content=body,
                headers={
                    "content-type": "application/json",
                    "x-telegram-bot-api-secret-token": SECRET,
                },
            )
        assert response.status_code == 200, response.text

    def sender(self) -> dict:
        return {"id": int(CHAT), "is_bot": False, "first_name": "Dmitri", "language_code": "es"}

    async def text(self, text: str) -> None:
        await self.post(
            {
                "message": {
                    "message_id": self.next_id,
                    "from": self.sender(),
                    "chat": {"id": int(CHAT), "type": "private", "first_name": "Dmitri"},
                    "date": int(time.time()),
                    "text": text,
                }
            }
        )

    async def pre_checkout(self, query_id: str, payload: str, amount: int) -> None:
        await self.post(
            {
                "pre_checkout_query": {
                    "id": query_id,
                    "from": self.sender(),
                    "currency": "MXN",
                    "total_amount": amount,
                    "invoice_payload": payload,
                }
            }
        )

    async def paid(self, payload: str, amount: int, charge: str) -> None:
        await self.post(
            {
                "message": {
                    "message_id": self.next_id,
                    "from": self.sender(),
                    "chat": {"id": int(CHAT), "type": "private", "first_name": "Dmitri"},
                    "date": int(time.time()),
                    "successful_payment": {
                        "currency": "MXN",
                        "total_amount": amount,
                        "invoice_payload": payload,
                        "telegram_payment_charge_id": charge,
                        "provider_payment_charge_id": f"prov-{charge}",
                    },
                }
            }
        )


async def telegram_calls(standin, method: str, contains: str = "", count: int = 1) -> list[dict]:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{standin.url}/_standin/requests",
            params={
                "family": "telegram",
                "path_contains": method,
                "contains": contains,
                "min_count": count,
                "timeout": 30,
            },
            timeout=40,
        )
    return response.json()["requests"]


async def the_conversation(stack: ServiceStack) -> conv_pb.Conversation:
    async def probe():
        async with stack.channel("conversation") as channel:
            listed = await conv_grpc.ConversationServiceStub(channel).ListConversations(
                conv_pb.ListConversationsRequest(), metadata=stack.metadata()
            )
        return listed.conversations[0] if listed.conversations else None

    return await eventually(probe, what="the customer's conversation")


async def order_status(stack: ServiceStack, order_id: str, status: str):
    async def probe():
        async with stack.channel("orders") as channel:
            reply = await orders_grpc.OrdersServiceStub(channel).GetOrder(
                orders_pb.GetOrderRequest(order_id=order_id), metadata=stack.metadata()
            )
        return reply.order if reply.order.status == status else None

    return await eventually(probe, what=f"order {status}")


async def test_invoice_pre_checkout_in_time_and_payment(stack, standin) -> None:
    updates = Updates(stack)
    await updates.text("hola, quiero pedir")
    conversation = await the_conversation(stack)

    async with stack.channel("orders") as channel:
        orders = orders_grpc.OrdersServiceStub(channel)
        await orders.UpsertProduct(
            orders_pb.UpsertProductRequest(
                product=orders_pb.Product(
                    sku="PIZZA-1", name="Pizza", price_minor=18900, currency="MXN", available=True
                )
            ),
            metadata=stack.metadata(),
        )
        request = orders_pb.CreateOrderRequest(
            customer_id=conversation.customer_id,
            conversation_id=conversation.conversation_id,
            items=[orders_pb.CreateOrderItem(sku="PIZZA-1", quantity=2)],
            idempotency_key=f"tg-{SUFFIX}",
            payment_method="telegram",
        )

        async def create() -> orders_pb.Order | None:
            # As an integrator would: UNAVAILABLE until orders has seen the conversation.
            try:
                created = await orders.CreateOrder(request, metadata=stack.metadata())
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return None
            return created.order

        order = await eventually(create, what="CreateOrder past UNAVAILABLE")
        assert (order.total_minor, order.payment_method) == (37800, "telegram")
        await orders.ConfirmOrder(
            orders_pb.ConfirmOrderRequest(order_id=order.order_id), metadata=stack.metadata()
        )
    await order_status(stack, order.order_id, "awaiting_payment")

    # payments asked for the invoice; the gateway sent it to the customer's chat.
    [invoice] = await telegram_calls(standin, "sendInvoice")
    body = invoice["body"]
    assert (str(body["chat_id"]), body["currency"]) == (CHAT, "MXN")
    assert sum(p["amount"] for p in body["prices"]) == 37800
    payload = body["payload"]

    # A query for another amount is refused...
    await updates.pre_checkout(f"pcq-wrong-{SUFFIX}", payload, 100)
    [refused] = await telegram_calls(standin, "answerPreCheckoutQuery", f"pcq-wrong-{SUFFIX}")
    assert refused["body"]["ok"] is False and refused["body"]["error_message"]

    # ... the right one is accepted, within Telegram's 10 seconds.
    started = time.monotonic()
    await updates.pre_checkout(f"pcq-ok-{SUFFIX}", payload, 37800)
    [answer] = await telegram_calls(standin, "answerPreCheckoutQuery", f"pcq-ok-{SUFFIX}")
    answered_in = time.monotonic() - started
    assert answer["body"]["ok"] is True
    assert answered_in < PRE_CHECKOUT_BUDGET, f"answered after {answered_in:.1f}s"
    print(f"pre-checkout query answered in {answered_in:.2f} s")

    await updates.paid(payload, 37800, f"charge-{SUFFIX}")
    paid = await order_status(stack, order.order_id, "paid")
    assert paid.paid_minor == 37800
