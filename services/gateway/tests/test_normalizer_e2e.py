"""Webhook -> raw event -> relay -> broker -> normalizer -> inbound topic, all real: uvicorn,
Postgres, the Tansu broker, the kit's relay and projector. Read back with a plain consumer."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter

from gateway_testkit import (
    WHATSAPP_CREDENTIALS,
    body_of,
    change,
    contact,
    payload,
    read_topic,
    run_gateway,
    signed_headers,
    status,
    text_message,
    unique,
    wait_for,
    wamid,
)

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.ingest import webhook_event_id
from parlay_kit import envelope, topics
from parlay_kit.envelope import deterministic_event_id


async def whatsapp_account(gateway) -> str:
    account_id = unique("wa")
    await gateway.gateway.accounts.create("acme", account_id, "whatsapp", WHATSAPP_CREDENTIALS, {})
    return account_id


async def test_batched_webhook_lands_on_inbound_topic_once_per_item(gateway, gw_kafka) -> None:
    account_id = await whatsapp_account(gateway)
    m1, m2, m3, out = wamid(), wamid(), wamid(), wamid()
    data = payload(
        [
            change(
                contacts=[contact("111", "Ann"), contact("222", "Bob")],
                messages=[text_message(m1, "111", "one"), text_message(m2, "222", "two")],
            ),
            change(statuses=[status(out, "sent", "111"), status(out, "delivered", "111")]),
        ],
        [change(contacts=[contact("333", "Cy")], messages=[text_message(m3, "333", "three")])],
    )
    body = body_of(data)
    trace_id = uuid.uuid4().hex
    headers = {**signed_headers(body), "traceparent": f"00-{trace_id}-{'2' * 16}-01"}
    for _ in range(2):  # a provider retry changes nothing
        response = await gateway.http.post(
            f"/webhooks/whatsapp/{account_id}", content=body, headers=headers
        )
        assert response.status_code == 200

    expected = {
        deterministic_event_id("whatsapp", account_id, m, "received"): f"{account_id}:{s}"
        for m, s in ((m1, "111"), (m2, "222"), (m3, "333"))
    }
    expected[deterministic_event_id("whatsapp", account_id, out, "status", "sent")] = (
        f"{account_id}:111"
    )
    expected[deterministic_event_id("whatsapp", account_id, out, "status", "delivered")] = (
        f"{account_id}:111"
    )

    records = await read_topic(gw_kafka, topics.INBOUND, set(expected), timeout=60)
    ids = Counter(dict(r.headers)["ce_id"].decode() for r in records)
    assert ids == Counter(set(expected)), "every message and status exactly once"
    raw_id = webhook_event_id("whatsapp", account_id, hashlib.sha256(body).hexdigest())
    by_type: Counter[str] = Counter()
    for record in records:
        env = envelope.decode(record.value)
        event = envelope.unpack(env)
        by_type[type(event).__name__] += 1
        assert record.key.decode() == expected[env.event_id] == env.aggregate_id
        assert env.tenant_id == "acme"
        assert env.aggregate_type == "contact"
        assert env.source == "gateway"
        assert env.causation_id == raw_id
        assert event.webhook_event_id == raw_id
        # One trace from the webhook request to the normalized record.
        assert dict(record.headers)["traceparent"].decode().split("-")[1] == trace_id
        if isinstance(event, pb.MessageReceived):
            assert event.sender_display_name in ("Ann", "Bob", "Cy")
            assert env.occurred_at == event.sent_at
    assert by_type == {"MessageReceived": 3, "MessageStatusUpdated": 2}


async def test_unparseable_webhook_is_dead_lettered_and_the_log_keeps_flowing(
    private_kafka: str, gw_database_url: str
) -> None:
    async with run_gateway(private_kafka, gw_database_url) as gateway:
        account_id = await whatsapp_account(gateway)
        # Valid JSON (so it is accepted and stored) but not a WhatsApp payload.
        poison = body_of({"object": "page", "entry": []})
        good_id = wamid()
        good = body_of(
            payload(
                [
                    change(
                        contacts=[contact("444", "Di")],
                        messages=[text_message(good_id, "444", "hi")],
                    )
                ]
            )
        )
        for body in (poison, good):
            response = await gateway.http.post(
                f"/webhooks/whatsapp/{account_id}", content=body, headers=signed_headers(body)
            )
            assert response.status_code == 200

        poison_id = webhook_event_id("whatsapp", account_id, hashlib.sha256(poison).hexdigest())
        [dead] = await read_topic(
            private_kafka, topics.dead_letter_topic("gateway"), {poison_id}, timeout=60
        )
        headers = {k: v.decode() for k, v in dead.headers}
        assert headers["dlq_source_topic"] == topics.WEBHOOKS
        assert headers["dlq_consumer"] == "normalizer"
        assert "body.object" in headers["dlq_reason"]
        assert envelope.decode(dead.value).event_id == poison_id

        received = deterministic_event_id("whatsapp", account_id, good_id, "received")
        await read_topic(private_kafka, topics.INBOUND, {received}, timeout=60)
        await wait_for(
            lambda: gateway.events("parlay.gateway.v1.MessageReceived", account_id), 10, "stored"
        )
