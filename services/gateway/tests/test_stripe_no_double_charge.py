"""No double charge: 1,000 order attempts asking for a payment link while the Stripe stand-in is
slower than the gateway's client timeout, so first tries time out AFTER Stripe created the
session and are retried. Some requests are delivered twice (the same event again, as after a
projector restart) and some are asked for twice (a second request event for the same order
attempt). Afterwards Stripe holds exactly one checkout session per order attempt, and every
recorded outcome names that session.

All real: PaymentRequested produced on parlay.payments.v1 (Tansu) -> the gateway's
payment-actions projector -> the official stripe library over HTTP -> the stand-in, which keeps
the outcome of a request that ran under its Idempotency-Key even when the client gave up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from gateway_testkit import wait_for
from payments_testkit import STRIPE_TIMEOUT, payment_requested, unique

from parlay_gateway.payments import actions as a
from parlay_kit.envelope import decode, encode, new_event_id, unpack, utcnow

# The stripe library posts its form with httpx's deprecated data=<str>; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

ORDERS = 1000
REDELIVERED = 50  # the very same event twice
ASKED_TWICE = 20  # a second request event for the same order attempt (same idempotency key)
DELAY = STRIPE_TIMEOUT * 2  # every delayed answer comes after the client gave up


async def test_one_session_per_order_attempt_despite_timeouts(payments) -> None:
    started = time.monotonic()
    tenant = unique("charge")
    account, api_key = await payments.stripe_account(tenant)
    requests = [
        payment_requested(tenant, amount_minor=100 + n, currency="EUR") for n in range(ORDERS)
    ]
    # The first try of every order attempt is answered only after the client gave up (the
    # session is created all the same): one failure rule per order, matching its id once. (A
    # single rule with times=ORDERS would also catch retries, however the requests are batched.)
    rules = await asyncio.gather(
        *(
            payments.http.post(
                "/_standin/fail",
                json={"family": "stripe", "match": r.payload.order_id, "delay": DELAY, "times": 1},
            )
            for r in requests
        )
    )
    assert {r.status_code for r in rules} == {200}
    again = [
        replace(r, event_id=new_event_id(), occurred_at=utcnow()) for r in requests[:ASKED_TWICE]
    ]
    # Redeliveries of the same event, interleaved with the rest.
    stream = [*requests, *requests[-REDELIVERED:], *again]
    for event in stream:
        envelope = event.to_envelope("payments", 1, utcnow())
        await payments.producer.send(
            event.topic,
            value=encode(envelope),
            key=event.aggregate_id.encode(),
            headers=[("ce_id", event.event_id.encode()), ("ce_type", event.event_type.encode())],
        )
    await payments.producer.flush()

    distinct_requests = {e.event_id: e for e in stream}
    assert len(distinct_requests) == ORDERS + ASKED_TWICE

    async def outcomes() -> dict[str, object] | None:
        rows = await payments.pool.fetch(
            f"""SELECT envelope FROM {payments.schema}.events
                WHERE event_type = 'parlay.gateway.v1.ChannelPaymentActionCompleted'
                  AND tenant_id = $1""",
            tenant,
        )
        if len(rows) < len(distinct_requests):
            return None
        return {p.request_event_id: p for p in (unpack(decode(bytes(r["envelope"]))) for r in rows)}

    recorded = await wait_for(outcomes, 120, f"{len(distinct_requests)} outcomes")
    # One outcome per request event (the redelivered ones recorded once), all successful.
    assert len(recorded) == len(distinct_requests) == ORDERS + ASKED_TWICE
    assert set(recorded) == set(distinct_requests)
    failed = [o for o in recorded.values() if not o.ok]
    assert failed == [], failed[:3]

    # Stripe holds exactly one session per order attempt.
    sessions = await payments.all_sessions(api_key)
    by_order: dict[str, list[dict]] = {}
    for session in sessions:
        by_order.setdefault(session["client_reference_id"], []).append(session)
    doubles = {k: [s["id"] for s in v] for k, v in by_order.items() if len(v) > 1}
    assert doubles == {}, f"{len(doubles)} orders charged twice"
    assert len(sessions) == ORDERS
    assert set(by_order) == {r.payload.order_id for r in requests}

    # Every outcome names its order attempt's session, for exactly its amount.
    for event_id, outcome in recorded.items():
        request = distinct_requests[event_id].payload
        [session] = by_order[request.order_id]
        assert outcome.provider_object_id == session["id"]
        assert outcome.action == a.CREATE_CHECKOUT_SESSION
        assert outcome.channel_account_id == account
        assert outcome.idempotency_key == request.idempotency_key
        assert (outcome.amount_minor, session["amount_total"]) == (request.amount_minor,) * 2
        assert session["metadata"]["payment_id"] == request.payment_id

    # The timeouts really happened: tries answered late, retried with the same key, and
    # Stripe replayed the session it had created for the timed-out try.
    records = await payments.requests(family="stripe", path_contains="/v1/checkout/sessions")
    creates = [
        r
        for r in records
        if r["method"] == "POST" and r["headers"].get("authorization") == f"Bearer {api_key}"
    ]
    delayed = [r for r in creates if r["injected"]]
    replayed = [r for r in creates if r["replayed"]]
    assert len(delayed) == ORDERS
    # Each delayed create ran at Stripe; the retry after it got that very session back.
    assert len(replayed) >= ORDERS + ASKED_TWICE
    retried = {o.idempotency_key for o in recorded.values() if o.attempts > 1}
    assert len(retried) == ORDERS
    elapsed = time.monotonic() - started
    print(f"{len(creates)} creates, {len(replayed)} replays, {elapsed:.1f}s")
    await payments.http.delete("/_standin/fail")
