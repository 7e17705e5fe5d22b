"""The Stripe stand-in driven by the official `stripe` library over real HTTP: Checkout Sessions,
Stripe-style idempotency, the customer paying, signed event webhooks, refunds and auth."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest
import stripe

from parlay_standins import StandinServer
from parlay_standins.stripe import store_of

WHSEC = "whsec_standin_test_secret"
#: stripe-python's HTTPXClient posts bytes as data=; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def standin():
    async with StandinServer() as server:
        yield server


@pytest.fixture
async def http(standin):
    async with httpx.AsyncClient(base_url=standin.url, timeout=20) as client:
        yield client


def client_for(
    standin: StandinServer, api_key: str, *, timeout: float = 10.0, retries: int = 0
) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": f"{standin.url}/stripe"},
        http_client=stripe.HTTPXClient(timeout=timeout),
        max_network_retries=retries,
    )


async def register(http: httpx.AsyncClient, standin: StandinServer, sink: str = "") -> str:
    """A stripe account whose webhooks go to the stand-in's own sink; returns its API key."""
    api_key = "sk_test_" + secrets.token_hex(12)
    await http.post(
        "/_standin/accounts",
        json={
            "channel": "stripe",
            "credentials": {"api_key": api_key, "webhook_secret": WHSEC},
            "webhook_url": f"{standin.url}/_standin/sink/{sink}" if sink else "",
        },
    )
    return api_key


def session_params(order_id: str = "", amount: int = 2500, **extra: Any) -> Any:
    order_id = order_id or "order-" + secrets.token_hex(4)
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "EUR",
                    "unit_amount": amount,
                    "product_data": {"name": f"Order {order_id}"},
                },
                "quantity": 1,
            }
        ],
        "client_reference_id": order_id,
        "metadata": {"order_id": order_id, "payment_id": "pay-1", "tenant_id": "t1"},
        "payment_intent_data": {"metadata": {"order_id": order_id, "payment_id": "pay-1"}},
        "success_url": "https://example.com/ok?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://example.com/cancelled",
        **extra,
    }


async def received(http: httpx.AsyncClient, sink: str, count: int) -> list[dict[str, Any]]:
    """Wait (long-poll, no sleeping) until the sink got `count` webhooks; their records."""
    found = (
        await http.get(
            "/_standin/requests",
            params={
                "family": "sink",
                "path_contains": f"/sink/{sink}",
                "min_count": count,
                "timeout": 15,
            },
        )
    ).json()["requests"]
    assert len(found) >= count, found
    return found


def verified(record: dict[str, Any]) -> dict[str, Any]:
    """The webhook as a receiver checks it: Stripe's own signature verification."""
    raw = record["raw"]  # the exact bytes received, not a re-serialization
    header = record["headers"]["stripe-signature"]
    assert stripe.WebhookSignature.verify_header(raw, header, WHSEC, tolerance=300)
    parsed = stripe.Webhook.construct_event(raw, header, WHSEC)  # the library reads it too
    event: dict[str, Any] = json.loads(raw)
    assert (parsed.id, parsed.type) == (event["id"], event["type"])
    assert parsed.data.object.id == event["data"]["object"]["id"]
    return event


async def raw_webhooks(standin: StandinServer, sink: str) -> list[dict[str, Any]]:
    return [
        {"raw": r.raw_body, "headers": r.headers, "body": r.body, "status": r.status}
        for r in standin.state.query(family="sink", path_contains=f"/sink/{sink}")
    ]


async def test_create_retrieve_list_and_expire(http, standin) -> None:
    api_key = await register(http, standin, "created")
    client = client_for(standin, api_key)
    created = await client.v1.checkout.sessions.create_async(params=session_params("o-1"))
    assert created.id.startswith("cs_test_") and created.object == "checkout.session"
    assert (created.amount_total, created.amount_subtotal, created.currency) == (2500, 2500, "eur")
    assert created.client_reference_id == "o-1"
    assert created.to_dict()["metadata"]["order_id"] == "o-1"
    assert (created.status, created.payment_status, created.mode) == ("open", "unpaid", "payment")
    assert created.payment_intent is None and created.livemode is False
    assert created.url == f"{standin.url}/stripe/pay/{created.id}"
    assert 24 * 3600 - 5 <= created.expires_at - created.created <= 24 * 3600

    got = await client.v1.checkout.sessions.retrieve_async(created.id)
    assert got.to_dict() == created.to_dict()
    items = await client.v1.checkout.sessions.line_items.list_async(created.id)
    assert [(i.quantity, i.amount_total, i.description) for i in items.data] == [
        (1, 2500, "Order o-1")
    ]
    with_items = await client.v1.checkout.sessions.retrieve_async(
        created.id, params={"expand": ["line_items"]}
    )
    assert with_items.line_items is not None
    assert [i.id for i in with_items.line_items.data] == [i.id for i in items.data]

    second = await client.v1.checkout.sessions.create_async(params=session_params("o-2"))
    page = await client.v1.checkout.sessions.list_async(params={"limit": 1})
    assert [s.id for s in page.data] == [second.id] and page.has_more
    rest = await client.v1.checkout.sessions.list_async(
        params={"limit": 10, "starting_after": second.id}
    )
    assert [s.id for s in rest.data] == [created.id] and not rest.has_more

    expired = await client.v1.checkout.sessions.expire_async(
        created.id, options={"idempotency_key": "expire-1"}
    )
    assert expired.status == "expired" and expired.url is None
    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.checkout.sessions.expire_async(created.id)
    assert again.value.http_status == 400 and "open" in str(again.value.user_message)

    await received(http, "created", 1)
    [hook] = await raw_webhooks(standin, "created")
    event = verified(hook)
    assert event["type"] == "checkout.session.expired" and event["object"] == "event"
    assert event["id"].startswith("evt_") and event["livemode"] is False
    assert event["data"]["object"]["id"] == created.id
    assert event["data"]["object"]["status"] == "expired"
    assert event["request"]["idempotency_key"] == "expire-1"
    assert event["request"]["id"].startswith("req_")
    assert event["pending_webhooks"] == 1 and event["api_version"]


async def test_invalid_params_are_refused_like_stripe(standin) -> None:
    client = client_for(standin, "sk_test_anything")
    sessions = client.v1.checkout.sessions

    async def refused(params: dict[str, Any]) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            await sessions.create_async(params=params)  # type: ignore[arg-type]
        assert caught.value.http_status in (400, 404)
        return caught.value

    no_url = await refused({k: v for k, v in session_params().items() if k != "success_url"})
    assert no_url.param == "success_url" and no_url.code == "parameter_missing"
    no_mode = await refused({k: v for k, v in session_params().items() if k != "mode"})
    assert no_mode.param == "mode"
    bad_amount = session_params()
    bad_amount["line_items"][0]["price_data"]["unit_amount"] = "12.5"
    assert (await refused(bad_amount)).param == "line_items[0][price_data][unit_amount]"
    no_name = session_params()
    no_name["line_items"][0]["price_data"]["product_data"] = {"description": "x"}
    assert (await refused(no_name)).param == "line_items[0][price_data][product_data][name]"
    no_quantity = session_params()
    del no_quantity["line_items"][0]["quantity"]
    assert (await refused(no_quantity)).param == "line_items[0][quantity]"
    unknown = await refused({**session_params(), "colour": "red"})
    assert unknown.code == "parameter_unknown" and unknown.param == "colour"
    price = session_params()
    price["line_items"][0] = {"price": "price_123", "quantity": 1}
    assert (await refused(price)).code == "resource_missing"
    assert (await refused({**session_params(), "success_url": "not a url"})).code == "url_invalid"
    too_late = await refused({**session_params(), "expires_at": 2**40})
    assert too_late.param == "expires_at"
    # nothing was created by any of them
    assert (await sessions.list_async()).data == []


async def test_idempotent_replay_and_conflicting_reuse(http, standin) -> None:
    key_a = await register(http, standin)
    key_b = await register(http, standin)
    client = client_for(standin, key_a)
    params = session_params("o-idem")
    first = await client.v1.checkout.sessions.create_async(
        params=params, options={"idempotency_key": "o-idem:attempt:1"}
    )
    replay = await client.v1.checkout.sessions.create_async(
        params=params, options={"idempotency_key": "o-idem:attempt:1"}
    )
    assert replay.id == first.id
    assert replay.last_response is not None
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"

    with pytest.raises(stripe.IdempotencyError) as conflict:
        await client.v1.checkout.sessions.create_async(
            params=session_params("o-other"), options={"idempotency_key": "o-idem:attempt:1"}
        )
    assert conflict.value.http_status == 400
    assert conflict.value.error is not None and conflict.value.error.type == "idempotency_error"

    # keys are per API key: another account's identical key is a new request
    other = await client_for(standin, key_b).v1.checkout.sessions.create_async(
        params=params, options={"idempotency_key": "o-idem:attempt:1"}
    )
    assert other.id != first.id
    assert len((await client.v1.checkout.sessions.list_async()).data) == 1


async def test_timeout_then_retry_gets_the_same_session(http, standin) -> None:
    api_key = await register(http, standin)
    # The stand-in creates the session, then answers only after 2 s: the client gives up at
    # 0.5 s and the stripe library retries with the same (generated) idempotency key.
    await http.post(
        "/_standin/fail", json={"family": "stripe", "match": "o-slow", "delay": 2.0, "times": 1}
    )
    client = client_for(standin, api_key, timeout=0.5, retries=2)
    session = await client.v1.checkout.sessions.create_async(params=session_params("o-slow"))
    assert session.last_response is not None
    assert session.last_response.headers["Idempotent-Replayed"] == "true"
    listed = await client.v1.checkout.sessions.list_async()
    assert [s.id for s in listed.data] == [session.id]
    records = standin.state.query(family="stripe", path_contains="/v1/checkout/sessions")
    creates = [r for r in records if r.method == "POST"]
    assert len(creates) == 2 and len({r.idempotency_key for r in creates}) == 1
    assert [r.replayed for r in creates] == [False, True]

    # The same with the caller's own key and no library retries (the gateway's way).
    await http.post(
        "/_standin/fail",
        json={
            "family": "stripe",
            "match": "metadata[order_id]=o-slow2",  # form bodies match decoded too
            "delay": 2.0,
            "times": 1,
        },
    )
    no_retry = client_for(standin, api_key, timeout=0.5)
    with pytest.raises(stripe.APIConnectionError):
        await no_retry.v1.checkout.sessions.create_async(
            params=session_params("o-slow2"), options={"idempotency_key": "o-slow2:attempt:1"}
        )
    retried = await no_retry.v1.checkout.sessions.create_async(
        params=session_params("o-slow2"), options={"idempotency_key": "o-slow2:attempt:1"}
    )
    listed = await client.v1.checkout.sessions.list_async()
    assert [s.id for s in listed.data] == [retried.id, session.id]


async def test_server_errors_leave_the_key_free(http, standin) -> None:
    api_key = await register(http, standin)
    await http.post(
        "/_standin/fail", json={"family": "stripe", "match": "o-500", "error": "server_error"}
    )
    client = client_for(standin, api_key)
    with pytest.raises(stripe.APIError) as failed:
        await client.v1.checkout.sessions.create_async(
            params=session_params("o-500"), options={"idempotency_key": "k-500"}
        )
    assert failed.value.http_status == 500
    ok = await client.v1.checkout.sessions.create_async(
        params=session_params("o-500"), options={"idempotency_key": "k-500"}
    )
    assert ok.status == "open" and ok.last_response is not None
    assert "Idempotent-Replayed" not in ok.last_response.headers


async def test_paying_sends_signed_webhooks(http, standin) -> None:
    api_key = await register(http, standin, "paid")
    client = client_for(standin, api_key)
    session = await client.v1.checkout.sessions.create_async(params=session_params("o-pay"))
    paid = await http.post(f"/_standin/stripe/sessions/{session.id}/pay", json={})
    assert paid.status_code == 200, paid.text
    assert [e["type"] for e in paid.json()["events"]] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
    ]
    await received(http, "paid", 3)
    hooks = await raw_webhooks(standin, "paid")
    events = [verified(h) for h in hooks]
    assert [e["type"] for e in events] == [e["type"] for e in paid.json()["events"]]
    completed, succeeded, charged = (e["data"]["object"] for e in events)
    assert completed["id"] == session.id and completed["status"] == "complete"
    assert completed["payment_status"] == "paid" and completed["amount_total"] == 2500
    assert completed["payment_intent"] == succeeded["id"] and succeeded["id"].startswith("pi_")
    assert (succeeded["amount"], succeeded["currency"], succeeded["status"]) == (
        2500,
        "eur",
        "succeeded",
    )
    assert succeeded["metadata"] == {"order_id": "o-pay", "payment_id": "pay-1"}
    assert charged["id"].startswith("ch_") and charged["payment_intent"] == succeeded["id"]
    assert events[0]["request"] == {"id": None, "idempotency_key": None}

    # what a receiver would reject: a tampered body, a wrong secret
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            hooks[0]["raw"].replace("2500", "9999"), hooks[0]["headers"]["stripe-signature"], WHSEC
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            hooks[0]["raw"], hooks[0]["headers"]["stripe-signature"], "whsec_other"
        )

    # the API agrees with the webhooks
    intent = await client.v1.payment_intents.retrieve_async(succeeded["id"])
    assert intent.latest_charge == charged["id"] and intent.amount_received == 2500
    again = await client.v1.checkout.sessions.retrieve_async(
        session.id, params={"expand": ["payment_intent"]}
    )
    assert again.status == "complete" and again.payment_intent.id == intent.id  # type: ignore[union-attr]

    # the events API serves the same events
    fetched = await client.v1.events.retrieve_async(events[1]["id"])
    assert fetched.type == "payment_intent.succeeded" and fetched.data.object.id == intent.id
    listed = await client.v1.events.list_async(params={"type": "charge.succeeded"})
    assert [e.id for e in listed.data] == [events[2]["id"]]

    # paying twice is refused; the control log serves the exact bodies for redelivery
    twice = await http.post(f"/_standin/stripe/sessions/{session.id}/pay", json={})
    assert twice.status_code == 400
    logged = (
        await http.get(
            "/_standin/stripe/events",
            params={"session": session.id, "type": "checkout.session.completed"},
        )
    ).json()
    [entry] = logged["events"]
    assert entry["body"] == hooks[0]["raw"]
    assert entry["deliveries"][0]["status_code"] == 200
    assert (
        entry["deliveries"][0]["headers"]["Stripe-Signature"]
        == hooks[0]["headers"]["stripe-signature"]
    )
    stripe.WebhookSignature.verify_header(
        entry["body"], entry["headers"]["Stripe-Signature"], WHSEC
    )
    resent = await http.post(f"/_standin/stripe/events/{entry['id']}/resend")
    assert resent.json()["deliveries"][0]["status_code"] == 200
    hooks = await raw_webhooks(standin, "paid")
    assert len(hooks) == 4 and json.loads(hooks[-1]["raw"])["id"] == entry["id"]
    verified(hooks[-1])


async def test_amount_override_and_undelivered_events(http, standin) -> None:
    api_key = await register(http, standin, "override")
    client = client_for(standin, api_key)
    session = await client.v1.checkout.sessions.create_async(params=session_params("o-mis"))
    paid = await http.post(
        f"/_standin/stripe/sessions/{session.id}/pay",
        json={"amount_minor": 1999, "currency": "usd", "deliver": False},
    )
    assert paid.status_code == 200, paid.text
    logged = (await http.get("/_standin/stripe/events", params={"session": session.id})).json()
    assert logged["count"] == 3 and all(e["deliveries"] == [] for e in logged["events"])
    for entry in logged["events"]:
        obj = json.loads(entry["body"])["data"]["object"]
        amount = obj.get("amount_total", obj.get("amount"))
        assert (amount, obj["currency"]) == (1999, "usd")
        stripe.WebhookSignature.verify_header(
            entry["body"], entry["headers"]["Stripe-Signature"], WHSEC
        )
    assert standin.state.query(family="sink", path_contains="/sink/override") == []


async def test_failed_deliveries_are_retried(http, standin) -> None:
    api_key = await register(http, standin, "flaky")
    store_of(standin.state).retry_delays = (0.05, 0.05)
    rule = await http.post(
        "/_standin/fail", json={"family": "sink", "match": "flaky", "status": 500}
    )
    assert rule.status_code == 200, rule.text
    client = client_for(standin, api_key)
    session = await client.v1.checkout.sessions.create_async(params=session_params("o-flaky"))
    await http.post(f"/_standin/stripe/sessions/{session.id}/expire")
    found = await received(http, "flaky", 2)
    assert [r["status"] for r in found[:2]] == [500, 200]
    [entry] = (await http.get("/_standin/stripe/events", params={"session": session.id})).json()[
        "events"
    ]
    assert [d["status_code"] for d in entry["deliveries"]] == [500, 200]
    assert entry["type"] == "checkout.session.expired"


async def test_refunds_partial_full_and_over(http, standin) -> None:
    api_key = await register(http, standin, "refunds")
    client = client_for(standin, api_key)
    session = await client.v1.checkout.sessions.create_async(params=session_params("o-ref"))
    paid = await http.post(f"/_standin/stripe/sessions/{session.id}/pay", json={"wait": True})
    intent = paid.json()["payment_intent"]

    partial = await client.v1.refunds.create_async(
        params={"payment_intent": intent["id"], "amount": 1000, "metadata": {"refund_id": "r1"}},
        options={"idempotency_key": "refund-1"},
    )
    assert partial.id.startswith("re_") and partial.status == "succeeded"
    assert (partial.amount, partial.charge, partial.to_dict()["metadata"]["refund_id"]) == (
        1000,
        intent["latest_charge"],
        "r1",
    )
    replay = await client.v1.refunds.create_async(
        params={"payment_intent": intent["id"], "amount": 1000, "metadata": {"refund_id": "r1"}},
        options={"idempotency_key": "refund-1"},
    )
    assert replay.id == partial.id
    rest = await client.v1.refunds.create_async(params={"charge": intent["latest_charge"]})
    assert rest.amount == 1500
    with pytest.raises(stripe.InvalidRequestError) as over:
        await client.v1.refunds.create_async(params={"payment_intent": intent["id"], "amount": 1})
    assert over.value.code == "charge_already_refunded"
    fetched = await client.v1.refunds.retrieve_async(partial.id)
    assert fetched.amount == 1000

    await received(http, "refunds", 7)  # 3 for the payment, 2 per refund
    events = [verified(h) for h in await raw_webhooks(standin, "refunds")]
    refunded = [e["data"] for e in events if e["type"] == "charge.refunded"]
    assert [(d["object"]["amount_refunded"], d["object"]["refunded"]) for d in refunded] == [
        (1000, False),
        (2500, True),
    ]
    assert refunded[1]["previous_attributes"] == {"amount_refunded": 1000, "refunded": False}
    created = [e for e in events if e["type"] == "refund.created"]
    assert [e["data"]["object"]["id"] for e in created] == [partial.id, rest.id]
    assert created[0]["request"]["idempotency_key"] == "refund-1"


async def test_over_refund_of_a_partial_remainder(http, standin) -> None:
    api_key = await register(http, standin)
    client = client_for(standin, api_key)
    session = await client.v1.checkout.sessions.create_async(params=session_params("o-over"))
    paid = await http.post(f"/_standin/stripe/sessions/{session.id}/pay", json={})
    intent = paid.json()["payment_intent"]["id"]
    await client.v1.refunds.create_async(params={"payment_intent": intent, "amount": 2000})
    with pytest.raises(stripe.InvalidRequestError) as over:
        await client.v1.refunds.create_async(params={"payment_intent": intent, "amount": 501})
    assert over.value.code == "amount_too_large" and over.value.param == "amount"
    charge = await client.v1.charges.retrieve_async(paid.json()["payment_intent"]["latest_charge"])
    assert (charge.amount_refunded, charge.refunded) == (2000, False)


async def test_auth_is_strict_once_accounts_are_registered(http, standin) -> None:
    api_key = await register(http, standin)
    with pytest.raises(stripe.AuthenticationError) as refused:
        await client_for(standin, "sk_test_unknown_key_1234").v1.checkout.sessions.create_async(
            params=session_params()
        )
    assert refused.value.http_status == 401
    assert "Invalid API Key provided" in str(refused.value.user_message)
    no_key = await http.post("/stripe/v1/checkout/sessions", data={"mode": "payment"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "invalid_request_error"

    # objects belong to the account (API key) that created them
    other_key = await register(http, standin)
    session = await client_for(standin, api_key).v1.checkout.sessions.create_async(
        params=session_params()
    )
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client_for(standin, other_key).v1.checkout.sessions.retrieve_async(session.id)
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"


async def test_checkout_page_pays_and_redirects(http, standin) -> None:
    api_key = await register(http, standin)
    session = await client_for(standin, api_key).v1.checkout.sessions.create_async(
        params=session_params("o-page")
    )
    page = await http.get(f"/stripe/pay/{session.id}")
    assert page.status_code == 200 and "25.00 EUR" in page.text and "Order o-page" in page.text
    clicked = await http.post(f"/_standin/stripe/sessions/{session.id}/pay", data={"redirect": "1"})
    assert clicked.status_code == 303
    assert clicked.headers["location"] == f"https://example.com/ok?session_id={session.id}"
    assert "complete" in (await http.get(f"/stripe/pay/{session.id}")).text
