"""Stripe webhooks: documented Event payloads signed as Stripe signs them, through the running
gateway (HTTP -> raw store -> normalizer -> PaymentProviderEventReceived), the negative cases
(nothing stored), and the pure normalizer for each event type."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import stripe_kit as sk
from channel_kit import WEBHOOK, compact, create_account, post, wait_normalized
from gateway_testkit import read_topic, run_gateway, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.channels.base import MalformedPayload
from parlay_gateway.channels.stripe import normalize_event
from parlay_gateway.ingest import webhook_event_id
from parlay_kit import envelope, topics
from parlay_kit.envelope import deterministic_event_id, from_timestamp

TENANT = "acme"


async def stripe_account(gateway, secret: str = sk.WEBHOOK_SECRET) -> str:
    account_id = f"stripe-{uuid.uuid4().hex[:10]}"
    await gateway.gateway.accounts.create(
        TENANT, account_id, "stripe", {**sk.CREDENTIALS, "webhook_secret": secret}, {}
    )
    return account_id


async def provider_events(gateway, account_id: str) -> dict[str, pb.PaymentProviderEventReceived]:
    rows = await gateway.events(sk.PROVIDER_EVENT, f"stripe:{account_id}")
    out = {}
    for row in rows:
        env = envelope.decode(bytes(row["envelope"]))
        payload = envelope.unpack(env)
        assert isinstance(payload, pb.PaymentProviderEventReceived)
        assert row["event_id"] == deterministic_event_id(
            "stripe", account_id, payload.provider_event_id
        )
        assert env.aggregate_id == f"stripe:{account_id}"
        assert env.tenant_id == TENANT
        out[payload.event_type] = payload
    return out


def documented_events() -> list[dict]:
    return [
        sk.event(
            "checkout.session.completed",
            sk.checkout_session(
                "cs_test_completed1",
                metadata={"order_id": "order-1", "payment_id": "pay-1", "tenant_id": TENANT},
            ),
        ),
        sk.event(
            "checkout.session.expired",
            sk.checkout_session(
                "cs_test_expired1", status="expired", payment_status="unpaid", payment_intent=None
            ),
        ),
        sk.event("payment_intent.succeeded", sk.payment_intent()),
        sk.event(
            "payment_intent.payment_failed",
            sk.payment_intent(
                "pi_failed1", amount=1500, amount_received=0, status="requires_payment_method"
            ),
        ),
        sk.event("charge.refunded", sk.charge(amount_refunded=1000)),
    ]


async def test_signed_events_are_stored_once_and_normalized(gateway) -> None:
    account_id = await stripe_account(gateway)
    events = documented_events()
    for item in events:
        body = sk.body_of(item)
        response = await post(gateway, "stripe", account_id, body, sk.headers(body))
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True}
    # Stripe redelivers the same event with a fresh signature (new timestamp) and may
    # re-serialize it: one event id, stored once.
    again = compact(events[0])
    response = await post(
        gateway, "stripe", account_id, again, sk.headers(again, timestamp=int(time.time()) - 60)
    )
    assert response.status_code == 200
    assert len(await gateway.events(WEBHOOK, account_id)) == len(events)
    await wait_normalized(gateway, account_id, len(events))

    got = await provider_events(gateway, account_id)
    assert set(got) == {e["type"] for e in events}
    completed = got["checkout.session.completed"]
    assert completed.provider == "stripe"
    assert completed.channel_account_id == account_id
    assert completed.provider_event_id == events[0]["id"]
    assert completed.object_type == "checkout.session"
    assert completed.object_id == completed.checkout_session_id == "cs_test_completed1"
    assert completed.payment_intent_id == "pi_3PVwcnR8QWoDuPnP0abc"
    assert completed.client_reference_id == "order-1"
    assert dict(completed.metadata) == {
        "order_id": "order-1",
        "payment_id": "pay-1",
        "tenant_id": TENANT,
    }
    assert (completed.amount_minor, completed.currency, completed.status) == (2599, "EUR", "paid")
    assert from_timestamp(completed.created_at).timestamp() == 1719411304
    assert completed.livemode is False
    raw = await gateway.events(WEBHOOK, account_id)
    assert completed.webhook_event_id == raw[0]["event_id"]

    expired = got["checkout.session.expired"]
    assert (expired.checkout_session_id, expired.status, expired.payment_intent_id) == (
        "cs_test_expired1",
        "unpaid",
        "",
    )
    succeeded = got["payment_intent.succeeded"]
    assert (succeeded.object_type, succeeded.payment_intent_id, succeeded.charge_id) == (
        "payment_intent",
        "pi_3PVwcnR8QWoDuPnP0abc",
        "ch_3PVwcnR8QWoDuPnP0xyz",
    )
    assert (succeeded.amount_minor, succeeded.status) == (2599, "succeeded")
    failed = got["payment_intent.payment_failed"]
    # Nothing received: the intent's amount is what was asked for.
    assert (failed.amount_minor, failed.status) == (1500, "requires_payment_method")
    refunded = got["charge.refunded"]
    assert (refunded.object_type, refunded.charge_id, refunded.payment_intent_id) == (
        "charge",
        "ch_3PVwcnR8QWoDuPnP0xyz",
        "pi_3PVwcnR8QWoDuPnP0abc",
    )
    assert (refunded.amount_minor, refunded.amount_refunded_minor) == (2599, 1000)


async def test_refused_deliveries_store_nothing(gateway) -> None:
    account_id = await stripe_account(gateway)
    item = sk.event("checkout.session.completed", sk.checkout_session())
    body = sk.body_of(item)
    good = sk.headers(body)
    content_type = {"Content-Type": "application/json"}
    now = int(time.time())
    valid_sig = sk.sign(body)
    ts = valid_sig.split(",")[0]
    cases = {
        "missing header": (body, content_type, 401),
        "empty header": (body, {**content_type, "Stripe-Signature": ""}, 401),
        "forged (other secret)": (body, sk.headers(body, "whsec_not_the_secret"), 403),
        "stale (> 300 s)": (body, sk.headers(body, timestamp=now - 301), 403),
        "re-serialized body": (compact(item), good, 403),
        "tampered body": (body.replace(b"2599", b"2598"), good, 403),
        "v0 only": (body, {"Stripe-Signature": valid_sig.replace("v1=", "v0=")}, 403),
        "no timestamp": (body, {"Stripe-Signature": valid_sig.split(",")[1]}, 403),
        "signature for another timestamp": (
            body,
            {"Stripe-Signature": f"t={now - 5}," + valid_sig.split(",")[1]},
            403,
        ),
        "garbage header": (body, {"Stripe-Signature": "t=abc,v1=xyz"}, 403),
        "non-ASCII header": (body, {"Stripe-Signature": b"t=1,v1=\xe9"}, 403),
        "signed non-JSON": (b"{not json", sk.headers(b"{not json"), 400),
        "signed non-event": (
            b'{"id":"cs_1","type":"x"}',
            sk.headers(b'{"id":"cs_1","type":"x"}'),
            400,
        ),
        "signed, no type": (b'{"id":"evt_1"}', sk.headers(b'{"id":"evt_1"}'), 400),
    }
    assert ts.startswith("t=")
    results = {}
    for name, (data, hdrs, _expected) in cases.items():
        response = await post(gateway, "stripe", account_id, data, hdrs)
        results[name] = response.status_code
        assert sk.WEBHOOK_SECRET not in response.text and sk.API_KEY not in response.text
    assert results == {name: expected for name, (_, _, expected) in cases.items()}
    assert await gateway.events(WEBHOOK, account_id) == [], "a refused webhook was stored"

    # Any matching v1 is accepted (Stripe sends several while a secret is rolled).
    rolled = f"{valid_sig},v1={'0' * 64}"
    response = await post(gateway, "stripe", account_id, body, {"Stripe-Signature": rolled})
    assert response.status_code == 200
    # Unknown account, or an account of another channel: 404, nothing stored.
    assert (await post(gateway, "stripe", "no-such-account", body, good)).status_code == 404
    other = await create_account(gateway, "line")
    assert (await post(gateway, "stripe", other, body, good)).status_code == 404
    assert await gateway.events(WEBHOOK, other) == []
    assert len(await gateway.events(WEBHOOK, account_id)) == 1


# -------------------------------------------------------------------------------- pure


def _normalize(item: dict | bytes) -> list:
    body = item if isinstance(item, bytes) else sk.body_of(item)
    return normalize_event(body, account_id="acc1", tenant_id=TENANT, webhook_event_id="wh-1")


def test_normalization_of_each_type_is_deterministic() -> None:
    for item in documented_events():
        [first] = _normalize(item)
        [again] = _normalize(compact(item))
        assert (
            first.event_id == again.event_id == deterministic_event_id("stripe", "acc1", item["id"])
        )
        assert first.payload == again.payload
        assert first.aggregate_id == "stripe:acc1"
        assert first.topic == topics.INBOUND
        assert first.payload.event_type == item["type"]
        assert first.payload.currency == item["data"]["object"]["currency"].upper()
        assert first.occurred_at.timestamp() == item["created"]


def test_expanded_ids_unknown_types_and_zero_amounts() -> None:
    session = sk.checkout_session(payment_intent=None)
    session["payment_intent"] = {"id": "pi_expanded", "object": "payment_intent"}
    [event] = _normalize(sk.event("checkout.session.completed", session))
    assert event.payload.payment_intent_id == "pi_expanded"
    refund = {
        "id": "re_1",
        "object": "refund",
        "amount": 500,
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"refund_id": "r1"},
    }
    [event] = _normalize(sk.event("refund.created", refund))
    p = event.payload
    assert (p.object_type, p.object_id, p.charge_id, p.payment_intent_id) == (
        "refund",
        "re_1",
        "ch_1",
        "pi_1",
    )
    assert (p.amount_minor, p.currency, p.status, dict(p.metadata)) == (
        500,
        "USD",
        "succeeded",
        {"refund_id": "r1"},
    )
    # amount_received 0 (nothing captured yet): the intent's amount.
    [event] = _normalize(
        sk.event("payment_intent.created", sk.payment_intent(amount=700, amount_received=0))
    )
    assert event.payload.amount_minor == 700


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("data"),
        lambda e: e["data"].pop("object"),
        lambda e: e["data"].update(object="cs_1"),
        lambda e: e["data"]["object"].pop("object"),
        lambda e: e["data"]["object"].update(amount_total="lots"),
        lambda e: e["data"]["object"].update(amount_total=2**70),
        lambda e: e["data"]["object"].update(metadata=["x"]),
        lambda e: e["data"]["object"].update(metadata={"k": {"nested": 1}}),
        lambda e: e["data"]["object"].update(payment_intent=12),
        lambda e: e.update(created="yesterday"),
        lambda e: e.update(livemode="no"),
        lambda e: e.update(id="cs_not_an_event"),
    ],
)
def test_malformed_events_raise(mutate) -> None:
    item = sk.event("checkout.session.completed", sk.checkout_session())
    mutate(item)
    with pytest.raises(MalformedPayload):
        _normalize(item)


async def test_malformed_event_is_dead_lettered(private_kafka: str, gw_database_url: str) -> None:
    async with run_gateway(private_kafka, gw_database_url) as gateway:
        account_id = await stripe_account(gateway)
        # Signed and shaped like an event (so accepted and stored), but no data.object.
        poison_event = {
            "id": sk.evt_id(),
            "object": "event",
            "type": "charge.refunded",
            "created": 1,
        }
        poison = sk.body_of(poison_event)
        good_event = sk.event("payment_intent.succeeded", sk.payment_intent())
        for body in (poison, sk.body_of(good_event)):
            response = await post(gateway, "stripe", account_id, body, sk.headers(body))
            assert response.status_code == 200, response.text
        poison_id = webhook_event_id("stripe", account_id, f"event:{poison_event['id']}")
        [dead] = await read_topic(
            private_kafka, topics.dead_letter_topic("gateway"), {poison_id}, timeout=60
        )
        headers = {k: v.decode() for k, v in dead.headers}
        assert headers["dlq_consumer"] == "normalizer"
        assert "body.data" in headers["dlq_reason"]
        # The log keeps flowing: the good event after it is normalized.
        good_id = deterministic_event_id("stripe", account_id, good_event["id"])
        await read_topic(private_kafka, topics.INBOUND, {good_id}, timeout=60)
        await wait_for(lambda: provider_events(gateway, account_id), 10, "stored")


def test_signature_helper_matches_the_official_library() -> None:
    """Our test signing is Stripe's documented scheme: the library accepts it."""
    import stripe

    body = json.dumps({"id": "evt_1"}).encode()
    assert stripe.WebhookSignature.verify_header(body, sk.sign(body), sk.WEBHOOK_SECRET, 300)


_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    ["object", "id", "amount", "amount_total", "amount_received", "amount_refunded", "currency",
     "metadata", "payment_intent", "latest_charge", "charge", "status", "payment_status",
     "client_reference_id"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=8), _values)
def test_arbitrary_objects_give_events_or_malformed(obj: dict, created: object) -> None:
    """Whatever Stripe (or a forger with the secret) sends, the normalizer returns the event or
    raises MalformedPayload (dead-lettered with the reason); nothing else escapes."""
    item = sk.event("charge.refunded", {"object": "charge", **obj})
    for variant in (item, {**item, "created": created}):
        try:
            body = json.dumps(variant, allow_nan=True).encode()
            _normalize(body)
        except MalformedPayload:
            pass
