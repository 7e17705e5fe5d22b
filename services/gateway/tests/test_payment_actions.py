"""Payment actions over real HTTP: payments events produced on parlay.payments.v1 (Tansu) -> the
gateway's payment-action projectors -> the Stripe / Telegram stand-ins -> the recorded
ChannelPaymentActionCompleted in the gateway's store."""

from __future__ import annotations

import json
import uuid

import pytest
import stripe_kit as sk
from gateway_testkit import wait_for
from payments_testkit import PROVIDER_TOKEN, payment_requested, payments_event, unique

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay.payments.v1 import payments_events_pb2 as pay
from parlay_gateway.payments import ACTIONS
from parlay_gateway.payments import actions as a
from parlay_kit import envelope
from parlay_kit.envelope import from_timestamp

# The stripe library posts its form with httpx's deprecated data=<str>; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def create_session_for(payments, tenant: str, amount: int = 2599, currency: str = "EUR"):
    request = payment_requested(tenant, amount_minor=amount, currency=currency)
    await payments.produce(request)
    outcome = await payments.outcome(request.event_id, a.CREATE_CHECKOUT_SESSION)
    assert outcome.ok, outcome
    return request, outcome


async def test_checkout_session_is_exactly_the_order(payments) -> None:
    tenant = unique("t")
    older, _older_key = await payments.stripe_account(tenant)
    default, api_key = await payments.stripe_account(tenant, default="true")
    request = payment_requested(tenant, amount_minor=2599, currency="EUR", description="2 pizzas")
    await payments.produce(request)
    outcome = await payments.outcome(request.event_id, a.CREATE_CHECKOUT_SESSION)
    p = request.payload
    assert isinstance(p, pay.PaymentRequested)

    # The account marked default is used, not the older one.
    assert (outcome.channel, outcome.channel_account_id) == ("stripe", default)
    assert outcome.ok and not outcome.permanent and outcome.attempts == 1
    assert outcome.provider_object_id.startswith("cs_")
    assert outcome.checkout_url.endswith(outcome.provider_object_id)
    assert (outcome.amount_minor, outcome.currency) == (2599, "EUR")
    assert (outcome.payment_id, outcome.request_event_id) == (p.payment_id, request.event_id)
    assert outcome.idempotency_key == p.idempotency_key == f"{p.order_id}:attempt:1"
    assert from_timestamp(outcome.expires_at) > from_timestamp(outcome.completed_at)

    # The session at Stripe: exactly the amount, currency, reference and metadata.
    session = await payments.stripe_get(
        api_key, f"/v1/checkout/sessions/{outcome.provider_object_id}"
    )
    metadata = {"order_id": p.order_id, "payment_id": p.payment_id, "tenant_id": tenant}
    assert session["mode"] == "payment"
    assert (session["amount_total"], session["currency"]) == (2599, "eur")
    assert session["client_reference_id"] == p.order_id
    assert session["metadata"] == metadata
    items = await payments.stripe_get(
        api_key, f"/v1/checkout/sessions/{outcome.provider_object_id}/line_items"
    )
    assert [(i["quantity"], i["amount_total"], i["description"]) for i in items["data"]] == [
        (1, 2599, "2 pizzas")
    ]
    [sent] = [
        r
        for r in await payments.requests(family="stripe", contains=p.order_id)
        if r["method"] == "POST" and r["path"] == "/stripe/v1/checkout/sessions"
    ]
    assert sent["idempotency_key"] == p.idempotency_key
    body = sent["body"]  # form-encoded as the stripe library sends it: a[b][c] keys
    assert {k: body[f"payment_intent_data[metadata][{k}]"] for k in metadata} == metadata
    assert body["line_items[0][price_data][unit_amount]"] == "2599"
    assert body["line_items[0][quantity]"] == "1"
    assert body["success_url"].startswith("https://example.com/")
    assert sent["headers"]["authorization"] == f"Bearer {api_key}"
    assert await payments.requests(family="stripe", contains=_older_key) == []

    # The customer pays: Stripe's signed webhook comes back through the gateway, normalized.
    paid = await payments.http.post(
        f"/_standin/stripe/sessions/{outcome.provider_object_id}/pay", json={"wait": True}
    )
    assert paid.status_code == 200, paid.text

    async def completed() -> gw.PaymentProviderEventReceived | None:
        rows = await payments.running.events(sk.PROVIDER_EVENT, f"stripe:{default}")
        for row in rows:
            event = envelope.unpack(envelope.decode(bytes(row["envelope"])))
            if event.event_type == "checkout.session.completed":
                return event
        return None

    event = await wait_for(completed, 30, "checkout.session.completed normalized")
    assert event.checkout_session_id == outcome.provider_object_id
    assert (event.amount_minor, event.currency, event.status) == (2599, "EUR", "paid")
    assert event.client_reference_id == p.order_id
    assert dict(event.metadata) == metadata
    assert event.payment_intent_id == paid.json()["payment_intent"]["id"]


async def test_refusals_are_recorded_not_retried(payments) -> None:
    tenant = unique("t")
    # No Stripe account for the tenant: refused before any call.
    nobody = payment_requested(tenant)
    await payments.produce(nobody)
    outcome = await payments.outcome(nobody.event_id, a.CREATE_CHECKOUT_SESSION)
    assert (outcome.ok, outcome.permanent, outcome.error_code) == (False, True, "no_stripe_account")
    assert outcome.attempts == 0 and outcome.channel_account_id == ""

    account, api_key = await payments.stripe_account(tenant)
    # Stripe refuses (4xx): permanent at once, one attempt.
    too_much = payment_requested(tenant, amount_minor=100_000_000_000)
    await payments.produce(too_much)
    outcome = await payments.outcome(too_much.event_id, a.CREATE_CHECKOUT_SESSION)
    assert (outcome.ok, outcome.permanent, outcome.attempts) == (False, True, 1)
    assert outcome.channel_account_id == account and outcome.error_message
    # A server error is retried with the same key until it goes through.
    flaky = payment_requested(tenant)
    order_id = flaky.payload.order_id
    rule = await payments.http.post(
        "/_standin/fail",
        json={"family": "stripe", "match": order_id, "error": "server_error", "times": 2},
    )
    assert rule.status_code == 200
    await payments.produce(flaky)
    outcome = await payments.outcome(flaky.event_id, a.CREATE_CHECKOUT_SESSION)
    assert (outcome.ok, outcome.attempts) == (True, 3)
    tries = await payments.requests(family="stripe", contains=order_id)
    assert [t["status"] for t in tries] == [500, 500, 200]
    assert {t["idempotency_key"] for t in tries} == {f"{order_id}:attempt:1"}
    assert len(await payments.all_sessions(api_key)) == 1

    # Cash on delivery needs no provider call: nothing is recorded.
    cash = payment_requested(tenant, method="cash_on_delivery")
    partition, offset = await payments.produce(cash)
    await payments.wait_consumed(ACTIONS, partition, offset)
    assert await payments.outcomes_of(cash.event_id) == []


async def test_refund_and_expire(payments) -> None:
    tenant = unique("t")
    account, api_key = await payments.stripe_account(tenant)
    request, created = await create_session_for(payments, tenant, amount=5000)
    session_id = created.provider_object_id
    paid = await payments.http.post(f"/_standin/stripe/sessions/{session_id}/pay", json={})
    assert paid.status_code == 200, paid.text
    intent = paid.json()["payment_intent"]["id"]

    refund_id = str(uuid.uuid4())
    refund = payments_event(
        tenant,
        created.payment_id,
        pay.RefundRequested(
            payment_id=created.payment_id,
            order_id=request.payload.order_id,
            refund_id=refund_id,
            amount_minor=2000,
            currency="EUR",
            idempotency_key="api-key-1",
            provider_account_id=account,
            provider_payment_id=intent,
        ),
        version=2,
    )
    await payments.produce(refund)
    outcome = await payments.outcome(refund.event_id, a.CREATE_REFUND)
    assert outcome.ok, outcome
    assert outcome.provider_object_id.startswith("re_")
    assert (outcome.refund_id, outcome.amount_minor, outcome.currency) == (refund_id, 2000, "EUR")
    assert outcome.idempotency_key == f"refund:{refund_id}"
    at_stripe = await payments.stripe_get(api_key, f"/v1/refunds/{outcome.provider_object_id}")
    assert (at_stripe["amount"], at_stripe["payment_intent"]) == (2000, intent)
    assert at_stripe["metadata"] == {"refund_id": refund_id, "payment_id": created.payment_id}
    # More than what is left: refused by Stripe, permanent.
    too_much = payments_event(
        tenant,
        created.payment_id,
        pay.RefundRequested(
            payment_id=created.payment_id,
            refund_id=str(uuid.uuid4()),
            amount_minor=4000,
            currency="EUR",
            provider_account_id=account,
            provider_payment_id=intent,
        ),
        version=3,
    )
    await payments.produce(too_much)
    outcome = await payments.outcome(too_much.event_id, a.CREATE_REFUND)
    assert (outcome.ok, outcome.permanent) == (False, True)
    assert "greater than unrefunded" in outcome.error_message

    # Cancelling an open session expires it at Stripe.
    _, open_one = await create_session_for(payments, tenant)
    cancel = payments_event(
        tenant,
        open_one.payment_id,
        pay.PaymentCancelled(
            payment_id=open_one.payment_id,
            reason="order_cancelled",
            provider_session_id=open_one.provider_object_id,
            provider_account_id=account,
        ),
        version=2,
    )
    await payments.produce(cancel)
    outcome = await payments.outcome(cancel.event_id, a.EXPIRE_CHECKOUT_SESSION)
    assert outcome.ok and outcome.provider_object_id == open_one.provider_object_id
    session = await payments.stripe_get(
        api_key, f"/v1/checkout/sessions/{open_one.provider_object_id}"
    )
    assert session["status"] == "expired"
    # A session that is already complete cannot be expired: permanent, with Stripe's message.
    cancel_paid = payments_event(
        tenant,
        created.payment_id,
        pay.PaymentCancelled(
            payment_id=created.payment_id,
            provider_session_id=session_id,
            provider_account_id=account,
        ),
        version=4,
    )
    await payments.produce(cancel_paid)
    outcome = await payments.outcome(cancel_paid.event_id, a.EXPIRE_CHECKOUT_SESSION)
    assert (outcome.ok, outcome.permanent) == (False, True)
    assert '"complete"' in outcome.error_message
    # Another tenant's account is never used.
    other_tenant = payments_event(
        unique("t"),
        created.payment_id,
        pay.PaymentCancelled(
            payment_id=created.payment_id,
            provider_session_id=session_id,
            provider_account_id=account,
        ),
    )
    await payments.produce(other_tenant)
    outcome = await payments.outcome(other_tenant.event_id, a.EXPIRE_CHECKOUT_SESSION)
    assert (outcome.ok, outcome.error_code) == (False, "no_stripe_account")


async def test_telegram_invoice_and_pre_checkout_answers(payments) -> None:
    tenant = unique("t")
    account = await payments.telegram_account(tenant)
    payment_id = str(uuid.uuid4())
    invoice = payments_event(
        tenant,
        payment_id,
        pay.TelegramInvoiceRequested(
            payment_id=payment_id,
            order_id="order-7",
            channel_account_id=account,
            chat_id="123456789",
            title="Order 7",
            description="2 pizzas, 1 lemonade",
            payload=f"pay:{payment_id}",
            currency="EUR",
            amount_minor=2599,
        ),
    )
    stars = payments_event(
        tenant,
        payment_id,
        pay.TelegramInvoiceRequested(
            payment_id=payment_id,
            channel_account_id=account,
            chat_id="123456789",
            title="Order 8",
            payload=f"pay:{payment_id}:stars",
            currency="XTR",
            amount_minor=50,
        ),
        version=2,
    )
    answers = [
        payments_event(
            tenant,
            payment_id,
            pay.PreCheckoutQueryAnswered(
                payment_id=payment_id,
                channel_account_id=account,
                pre_checkout_query_id=f"pcq-{payment_id}-{ok}",
                ok=ok,
                error_message="" if ok else "The amount has changed; please reopen the order.",
            ),
            version=3 + n,
        )
        for n, ok in enumerate((True, False))
    ]
    for event in (invoice, stars, *answers):
        await payments.produce(event)

    sent = await payments.outcome(invoice.event_id, a.SEND_INVOICE)
    assert sent.ok and sent.provider_message_id and sent.attempts == 1
    assert (sent.channel, sent.channel_account_id, sent.amount_minor, sent.currency) == (
        "telegram",
        account,
        2599,
        "EUR",
    )
    [call] = await payments.requests(family="telegram", contains=f'pay:{payment_id}"')
    assert call["path"].endswith("/sendInvoice")
    assert call["body"] == {
        "chat_id": "123456789",
        "title": "Order 7",
        "description": "2 pizzas, 1 lemonade",
        "payload": f"pay:{payment_id}",
        "provider_token": PROVIDER_TOKEN,
        "currency": "EUR",
        "prices": [{"label": "Order 7", "amount": 2599}],
    }
    assert call["response"]["result"]["invoice"]["total_amount"] == 2599
    star = await payments.outcome(stars.event_id, a.SEND_INVOICE)
    assert star.ok, star
    [star_call] = await payments.requests(family="telegram", contains=":stars")
    assert star_call["body"]["provider_token"] == ""

    for answer in answers:
        outcome = await payments.outcome(answer.event_id, a.ANSWER_PRE_CHECKOUT_QUERY)
        assert outcome.ok and outcome.attempts == 1, outcome
        assert outcome.payment_id == payment_id
    calls = await payments.requests(family="telegram", path_contains="answerPreCheckoutQuery")
    mine = {
        c["body"]["pre_checkout_query_id"]: c["body"]
        for c in calls
        if payment_id in json.dumps(c["body"])
    }
    assert mine == {
        f"pcq-{payment_id}-True": {"pre_checkout_query_id": f"pcq-{payment_id}-True", "ok": True},
        f"pcq-{payment_id}-False": {
            "pre_checkout_query_id": f"pcq-{payment_id}-False",
            "ok": False,
            "error_message": "The amount has changed; please reopen the order.",
        },
    }

    # An invoice on an account of another tenant: refused, nothing sent.
    foreign = payments_event(
        unique("t"),
        payment_id,
        pay.TelegramInvoiceRequested(
            payment_id=payment_id,
            channel_account_id=account,
            chat_id="1",
            title="x",
            payload="foreign",
            currency="EUR",
            amount_minor=1,
        ),
    )
    await payments.produce(foreign)
    outcome = await payments.outcome(foreign.event_id, a.SEND_INVOICE)
    assert (outcome.ok, outcome.permanent, outcome.error_code) == (
        False,
        True,
        "no_telegram_account",
    )
    assert await payments.requests(family="telegram", contains="foreign") == []


async def test_pre_checkout_answers_stay_within_telegram_deadline(payments) -> None:
    tenant = unique("t")
    account = await payments.telegram_account(tenant)
    payment_id = str(uuid.uuid4())

    def answer(query_id: str, version: int):
        return payments_event(
            tenant,
            payment_id,
            pay.PreCheckoutQueryAnswered(
                payment_id=payment_id,
                channel_account_id=account,
                pre_checkout_query_id=query_id,
                ok=True,
            ),
            version=version,
        )

    flaky, slow = f"pcq-flaky-{payment_id}", f"pcq-slow-{payment_id}"
    for rule in (
        {"family": "telegram", "match": flaky, "error": "server_error", "times": 2},
        {"family": "telegram", "match": slow, "delay": 30, "times": 1},
    ):
        assert (await payments.http.post("/_standin/fail", json=rule)).status_code == 200
    # A Telegram hiccup is retried at once (short pauses, no long backoff).
    first = answer(flaky, 1)
    await payments.produce(first)
    outcome = await payments.outcome(first.event_id, a.ANSWER_PRE_CHECKOUT_QUERY)
    assert (outcome.ok, outcome.attempts) == (True, 3)
    tries = await payments.requests(family="telegram", contains=flaky)
    assert [t["status"] for t in tries] == [500, 500, 200]
    assert tries[-1]["responded_at"] - tries[0]["received_at"] < 2.0
    # Telegram not answering: given up within the budget (4 s in these tests), reported as a
    # failure that was not permanent, instead of waiting past Telegram's 10 s.
    second = answer(slow, 2)
    await payments.produce(second)
    outcome = await payments.outcome(second.event_id, a.ANSWER_PRE_CHECKOUT_QUERY)
    assert (outcome.ok, outcome.permanent, outcome.error_code) == (False, False, "timeout")
    [first_try, *_] = await payments.requests(family="telegram", contains=slow)
    given_up = from_timestamp(outcome.completed_at).timestamp()
    assert 2.0 <= given_up - first_try["received_at"] < 5.0


async def test_request_without_idempotency_key_is_dead_lettered(
    private_kafka: str, gw_database_url: str
) -> None:
    """A request that cannot be carried out exactly once is refused loudly (DLQ with the
    reason), and the requests after it are still carried out."""
    from aiokafka import AIOKafkaProducer
    from gateway_testkit import read_topic, run_gateway

    from parlay_kit import topics
    from parlay_kit.envelope import encode, utcnow

    tenant = unique("t")
    poison = payment_requested(tenant)
    poison.payload.idempotency_key = ""
    good = payment_requested(tenant)
    producer = AIOKafkaProducer(bootstrap_servers=private_kafka, acks="all")
    await producer.start()
    try:
        async with run_gateway(private_kafka, gw_database_url) as running:
            for event in (poison, good):
                await producer.send_and_wait(
                    event.topic,
                    value=encode(event.to_envelope("payments", 1, utcnow())),
                    key=event.aggregate_id.encode(),
                    headers=[("ce_id", event.event_id.encode())],
                )
            [dead] = await read_topic(
                private_kafka, topics.dead_letter_topic("gateway"), {poison.event_id}, timeout=60
            )
            headers = {k: v.decode() for k, v in dead.headers}
            assert headers["dlq_consumer"] == ACTIONS
            assert "idempotency_key is required" in headers["dlq_reason"]
            outcome_id = a.outcome_event_id(good.event_id, a.CREATE_CHECKOUT_SESSION)

            async def recorded() -> bool:
                rows = await running.pool.fetch(
                    f"SELECT 1 FROM {running.schema}.events WHERE event_id = $1::uuid", outcome_id
                )
                return bool(rows)

            await wait_for(recorded, 30, "the good request's outcome")
            assert (
                await running.pool.fetchval(
                    f"""SELECT count(*) FROM {running.schema}.events
                    WHERE event_type = 'parlay.gateway.v1.ChannelPaymentActionCompleted'"""
                )
                == 1
            )
    finally:
        await producer.stop()
