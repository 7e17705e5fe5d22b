"""Outbound delivery end to end, all real: OutboundMessageRequested produced on the conversation
topic (Tansu) -> the gateway's outbound projector -> the delivery ledger (Postgres) -> the sender
-> the provider stand-in over HTTP -> OutboundMessageSent/Failed in the store -> the relay ->
parlay.gateway.inbound.v1. One gateway and one stand-in for the whole module."""

from __future__ import annotations

import base64
import itertools
import os
import uuid

import pytest
from gateway_testkit import read_topic, run_gateway
from outbound_testkit import (
    CREDENTIALS,
    RECIPIENTS,
    Producer,
    outcome_events,
    request_event,
    text,
    unique,
    wait_consumed,
    wait_for,
    wait_state,
)

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay_kit import topics
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import decode, unpack
from parlay_kit.errors import InvalidArgument, NotFound
from parlay_standins import FAMILY_OF_CHANNEL, StandinServer, env_for
from parlay_standins.state import FailureRule

TENANT = f"out-{uuid.uuid4().hex[:8]}"
TIMEOUT = 3.0


@pytest.fixture(scope="module")
async def standin():
    async with StandinServer() as server:
        yield server


@pytest.fixture(scope="module")
async def env(gw_kafka, gw_database_url, standin):
    await ensure_topics(gw_kafka, [topics.CONVERSATION], partitions=3)
    # run_gateway assembles with OutboundSettings() from the environment, as the process does.
    overrides = {
        **env_for(standin.url),
        "PARLAY_OUTBOUND_BACKOFF_BASE_SECONDS": "0.2",
        "PARLAY_OUTBOUND_TIMEOUT_SECONDS": str(TIMEOUT),
        "PARLAY_OUTBOUND_CONNECT_TIMEOUT_SECONDS": "1",
        "PARLAY_OUTBOUND_POLL_SECONDS": "0.5",
        "PARLAY_OUTBOUND_RECOVERY_SECONDS": "0.5",
        "PARLAY_OUTBOUND_MAX_ATTEMPTS": "4",
    }
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    producer = await Producer(gw_kafka).start()
    try:
        async with run_gateway(gw_kafka, gw_database_url) as running:
            settings = running.gateway.outbound.settings
            assert settings.outbound_timeout_seconds == TIMEOUT
            assert settings.whatsapp_api_base_url == f"{standin.url}/meta"
            yield Env(running, producer, standin)
    finally:
        await producer.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Env:
    def __init__(self, running, producer: Producer, standin: StandinServer) -> None:
        self.running = running
        self.gateway = running.gateway
        self.pool = running.pool
        self.schema = running.schema
        self.producer = producer
        self.standin = standin

    async def account(self, channel: str, tenant: str = TENANT, **settings: str) -> str:
        account_id = unique(channel)
        credentials, base = CREDENTIALS[channel]
        await self.gateway.accounts.create(
            tenant, account_id, channel, credentials, {**base, **settings}
        )
        return account_id

    async def request(self, channel: str, account_id: str, recipient: str = "", content=None, **kw):
        event = request_event(
            tenant_id=kw.pop("tenant_id", TENANT),
            channel=channel,
            channel_account_id=account_id,
            recipient=recipient or f"{RECIPIENTS[channel]}",
            content=content or text(f"hello {uuid.uuid4().hex[:6]}"),
            **kw,
        )
        partition, offset = await self.producer.produce(event)
        return event, partition, offset

    def sends(self, message_id: str):
        return [r for r in self.standin.state.records if r.idempotency_key == message_id]


async def test_request_is_sent_once_and_reported(env: Env, gw_kafka: str) -> None:
    account_id = await env.account("whatsapp")
    event, partition, offset = await env.request("whatsapp", account_id)
    message_id = event.payload.message_id
    row = await wait_state(env.pool, env.schema, message_id, ("sent",), 60)
    sends = env.sends(message_id)
    assert len(sends) == 1 and sends[0].accepted
    assert row["provider_message_id"] == sends[0].provider_message_id
    assert row["attempts"] == 1

    [(envelope, sent)] = await outcome_events(env.pool, env.schema, message_id)
    assert isinstance(sent, gw.OutboundMessageSent)
    assert sent.provider_message_id == sends[0].provider_message_id
    assert sent.request_event_id == event.event_id and sent.attempts == 1
    assert sent.recipient.address == RECIPIENTS["whatsapp"]
    assert envelope.aggregate_type == "contact"
    assert envelope.aggregate_id == f"{account_id}:{RECIPIENTS['whatsapp']}"
    assert envelope.tenant_id == TENANT and envelope.causation_id == event.event_id
    records = await read_topic(gw_kafka, topics.INBOUND, {envelope.event_id})
    # Other gateways of this test session share the broker and see the same request topic (they
    # report it failed for want of the account, under the same deterministic event id).
    published = [unpack(decode(r.value)) for r in records]
    assert any(
        isinstance(p, gw.OutboundMessageSent) and p.provider_message_id == sent.provider_message_id
        for p in published
    )

    # Redelivery: the same event again, and another request event with the same message id.
    _, p1, o1 = await env.request(
        "whatsapp", account_id, event_id=event.event_id, message_id=message_id
    )
    _, p2, o2 = await env.request("whatsapp", account_id, message_id=message_id)
    await wait_consumed(env.pool, env.schema, p1, o1)
    await wait_consumed(env.pool, env.schema, p2, o2)
    await env.gateway.outbound.dispatcher.running.wait()
    assert len(env.sends(message_id)) == 1
    assert len(await outcome_events(env.pool, env.schema, message_id)) == 1


async def test_every_channel_end_to_end(env: Env) -> None:
    channels = (
        "whatsapp",
        "messenger",
        "instagram",
        "telegram",
        "twilio",
        "wechat",
        "line",
        "viber",
    )
    message_ids = {}
    for channel in channels:
        account_id = await env.account(channel)
        event, _, _ = await env.request(channel, account_id)
        message_ids[channel] = event.payload.message_id
    for channel, message_id in message_ids.items():
        row = await wait_state(env.pool, env.schema, message_id, ("sent", "failed"), 60)
        assert row["state"] == "sent", (channel, row["error_code"], row["last_error"])
        sends = env.sends(message_id)
        assert len(sends) == 1 and sends[0].family == FAMILY_OF_CHANNEL[channel]
        assert row["provider_message_id"] == sends[0].provider_message_id


async def test_429_with_retry_after_is_retried_after_the_delay(env: Env) -> None:
    account_id = await env.account("whatsapp")
    recipient = f"1555{uuid.uuid4().int % 10**7:07d}"
    env.standin.state.rules.append(
        FailureRule(
            id=unique("r"), family="meta", match=recipient, error="rate_limited", retry_after=1
        )
    )
    event, _, _ = await env.request("whatsapp", account_id, recipient)
    message_id = event.payload.message_id
    row = await wait_state(env.pool, env.schema, message_id, ("sent", "failed"), 60)
    assert row["state"] == "sent" and row["attempts"] == 2
    first, second = env.sends(message_id)
    assert first.status == 429 and second.status == 200
    assert second.received_at - first.responded_at >= 0.95
    [(_, sent)] = await outcome_events(env.pool, env.schema, message_id)
    assert sent.attempts == 2
    attempts = await env.pool.fetch(
        f"SELECT outcome, http_status, error_code FROM {env.schema}.outbound_attempts WHERE message_id = $1 ORDER BY attempt",
        message_id,
    )
    assert [(a["outcome"], a["http_status"], a["error_code"]) for a in attempts] == [
        ("retry", 429, "130429"),
        ("sent", 200, ""),
    ]


async def test_500_is_retried_then_succeeds(env: Env) -> None:
    account_id = await env.account("telegram")
    chat = str(uuid.uuid4().int % 10**9)
    env.standin.state.rules.append(
        FailureRule(id=unique("r"), family="telegram", match=chat, error="server_error", times=2)
    )
    event, _, _ = await env.request("telegram", account_id, chat)
    row = await wait_state(env.pool, env.schema, event.payload.message_id, ("sent", "failed"), 60)
    assert row["state"] == "sent" and row["attempts"] == 3
    assert [r.status for r in env.sends(event.payload.message_id)] == [500, 500, 200]


async def test_400_fails_with_the_provider_error(env: Env) -> None:
    account_id = await env.account("whatsapp")
    recipient = f"1666{uuid.uuid4().int % 10**7:07d}"
    env.standin.state.rules.append(
        FailureRule(id=unique("r"), family="meta", match=recipient, error="bad_request")
    )
    event, _, _ = await env.request("whatsapp", account_id, recipient)
    message_id = event.payload.message_id
    row = await wait_state(env.pool, env.schema, message_id, ("sent", "failed"), 60)
    assert row["state"] == "failed" and row["attempts"] == 1
    assert len(env.sends(message_id)) == 1
    [(envelope, failed)] = await outcome_events(env.pool, env.schema, message_id)
    assert isinstance(failed, gw.OutboundMessageFailed)
    assert failed.error_code == "131009"
    assert "Parameter value is not valid" in failed.error_message
    assert envelope.aggregate_id == f"{account_id}:{recipient}"


async def test_retries_end_when_attempts_are_spent(env: Env) -> None:
    account_id = await env.account("line")
    user = "U" + uuid.uuid4().hex
    env.standin.state.rules.append(
        FailureRule(id=unique("r"), family="line", match=user, error="server_error", times=0)
    )
    event, _, _ = await env.request("line", account_id, user)
    row = await wait_state(env.pool, env.schema, event.payload.message_id, ("sent", "failed"), 60)
    assert row["state"] == "failed" and row["attempts"] == 4
    assert "gave up after 4 attempts" in row["last_error"]
    assert len(env.sends(event.payload.message_id)) == 4


async def test_per_account_rate_limit_spreads_sends(env: Env) -> None:
    account_id = await env.account("viber", rate_limit_per_second="4", rate_limit_burst="1")
    events = [(await env.request("viber", account_id))[0] for _ in range(5)]
    for event in events:
        row = await wait_state(
            env.pool, env.schema, event.payload.message_id, ("sent", "failed"), 60
        )
        assert row["state"] == "sent"
    assert all(len(env.sends(e.payload.message_id)) == 1 for e in events)
    # Sends start at least 1/rate = 0.25 s apart (burst 1). Timed when the sender starts each
    # attempt, right after the claim that took its token: the stand-in's receipt times also
    # hold the first request's connection set-up (0.2 s was seen on a slow machine). Every
    # pair i < j is held to (j - i) * 0.25 s, less 0.05 s for scheduling.
    started = await env.pool.fetch(
        f"""SELECT min(started_at) AS at FROM {env.schema}.outbound_attempts
            WHERE message_id = ANY($1::text[]) GROUP BY message_id ORDER BY 1""",
        [e.payload.message_id for e in events],
    )
    times = [r["at"].timestamp() for r in started]
    assert len(times) == len(events)
    jitter = 0.05
    for i, j in itertools.combinations(range(len(times)), 2):
        assert times[j] - times[i] >= (j - i) * 0.25 - jitter, (i, j, times)


async def test_unknown_or_foreign_account_fails_without_a_send(env: Env) -> None:
    foreign = await env.account("whatsapp", tenant="someone-else")
    missing, _, _ = await env.request("whatsapp", unique("nope"))
    other, _, _ = await env.request("whatsapp", foreign)
    for event in (missing, other):
        row = await wait_state(
            env.pool, env.schema, event.payload.message_id, ("sent", "failed"), 60
        )
        assert row["state"] == "failed" and row["error_code"] == "channel_account_not_found"
        assert env.sends(event.payload.message_id) == []


async def test_lost_answer_is_resent_with_the_key_or_reported_unknown(env: Env) -> None:
    """A provider that answers after our timeout: the request may have been sent. WhatsApp (set
    up as idempotent-resend, which the stand-in honours) is re-sent with the same key and the
    stand-in replays its answer; Telegram (no key) becomes outcome_unknown. One send each."""
    wa = await env.account("whatsapp", idempotent_resend="true")
    tg = await env.account("telegram")
    wa_to = f"1777{uuid.uuid4().int % 10**7:07d}"
    tg_chat = str(uuid.uuid4().int % 10**9)
    for family, match in (("meta", wa_to), ("telegram", tg_chat)):
        env.standin.state.rules.append(
            FailureRule(id=unique("r"), family=family, match=match, delay=TIMEOUT + 1.5)
        )
    wa_event, _, _ = await env.request("whatsapp", wa, wa_to)
    tg_event, _, _ = await env.request("telegram", tg, tg_chat)
    wa_row = await wait_state(
        env.pool, env.schema, wa_event.payload.message_id, ("sent", "failed", "unknown"), 60
    )
    tg_row = await wait_state(
        env.pool, env.schema, tg_event.payload.message_id, ("sent", "failed", "unknown"), 60
    )
    assert wa_row["state"] == "sent" and wa_row["attempts"] == 2
    wa_sends = env.sends(wa_event.payload.message_id)
    assert [r.accepted for r in wa_sends] == [True, False] and wa_sends[1].replayed
    assert wa_row["provider_message_id"] == wa_sends[0].provider_message_id
    assert tg_row["state"] == "unknown" and tg_row["error_code"] == "outcome_unknown"
    assert len(env.sends(tg_event.payload.message_id)) == 1
    [(_, failed)] = await outcome_events(env.pool, env.schema, tg_event.payload.message_id)
    assert failed.error_code == "outcome_unknown"


async def test_status_webhook_from_the_standin_reaches_the_gateway(env: Env) -> None:
    account_id = await env.account("whatsapp")
    credentials, settings = CREDENTIALS["whatsapp"]
    env.standin.state.accounts.clear()
    from parlay_standins.state import Account

    env.standin.state.accounts.append(
        Account(
            "whatsapp", credentials, settings, f"{env.running.url}/webhooks/whatsapp/{account_id}"
        )
    )
    try:
        event, _, _ = await env.request("whatsapp", account_id)
        row = await wait_state(env.pool, env.schema, event.payload.message_id, ("sent",), 60)
        async with __import__("httpx").AsyncClient(base_url=env.standin.url) as http:
            for status in ("delivered", "read"):
                response = await http.post(
                    "/_standin/status",
                    json={"provider_message_id": row["provider_message_id"], "status": status},
                )
                assert response.status_code == 200, response.text
                assert response.json()["status_code"] == 200
    finally:
        env.standin.state.accounts.clear()

    async def statuses() -> set[str]:
        rows = await env.running.events("parlay.gateway.v1.MessageStatusUpdated", account_id)
        from parlay_kit.envelope import decode, unpack

        found = set()
        for r in rows:
            payload = unpack(decode(bytes(r["envelope"])))
            if payload.provider_message_id == row["provider_message_id"]:
                found.add(gw.DeliveryStatus.Name(payload.status))
        return found if found >= {"DELIVERY_STATUS_DELIVERED", "DELIVERY_STATUS_READ"} else set()

    await wait_for(statuses, 60, "MessageStatusUpdated delivered+read")


async def test_get_media_from_every_channel(env: Env) -> None:
    media = env.gateway.outbound.media
    state = env.standin.state
    png = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes
    for channel in ("whatsapp", "telegram", "wechat", "line"):
        account_id = await env.account(channel)
        item = state.add_media(channel, png, "image/png", "photo.png")
        got = await media.resolve(TENANT, account_id, item.media_id)
        assert got.data == png and got.mime_type == "image/png", channel
    for channel in ("messenger", "instagram", "viber", "twilio"):
        account_id = await env.account(channel)
        async with __import__("httpx").AsyncClient(base_url=env.standin.url) as http:
            body = {
                "channel": channel,
                "data_base64": base64.b64encode(png).decode(),
                "mime_type": "image/jpeg",
            }
            if channel == "twilio":
                body["account_sid"] = CREDENTIALS["twilio"][0]["account_sid"]
            added = (await http.post("/_standin/media", json=body)).json()
        got = await media.resolve(TENANT, account_id, added["url"])
        assert got.data == png and got.mime_type == "image/jpeg", channel
        assert got.sha256 == added["sha256"]
    wa = await env.account("whatsapp")
    with pytest.raises(NotFound):
        await media.resolve(TENANT, wa, "999999")
    with pytest.raises(NotFound):
        await media.resolve("another-tenant", wa, "999999")
    viber = await env.account("viber")
    with pytest.raises(InvalidArgument):
        await media.resolve(TENANT, viber, "http://169.254.169.254/latest/meta-data/")


async def test_webchat_requests_go_to_the_local_webchat_sender(env: Env) -> None:
    """webchat has a local sender (no HTTP): its requests are recorded like any channel's; an
    unknown account fails at once. The delivery itself: test_webchat_socket.py."""
    event, _, _ = await env.request("webchat", unique("wc"), "visitor:visitor-1")
    row = await wait_state(env.pool, env.schema, event.payload.message_id, ("failed",), 60)
    assert row["error_code"] == "channel_account_not_found"
    assert env.sends(event.payload.message_id) == []


@pytest.mark.parametrize(
    ("channel", "status", "expected"),
    [
        ("messenger", "delivered", "DELIVERY_STATUS_DELIVERED"),
        ("viber", "read", "DELIVERY_STATUS_READ"),
    ],
)
async def test_other_channels_status_webhooks_round_trip(
    env: Env, channel: str, status: str, expected: str
) -> None:
    """The stand-in's signed Messenger / Viber status webhooks pass the gateway's inbound
    adapters (signature and format) and become MessageStatusUpdated for the sent message."""
    import httpx

    from parlay_kit.envelope import decode, unpack
    from parlay_standins.state import Account

    if env.gateway.registry.get(channel) is None:
        pytest.skip(f"no inbound adapter for {channel} yet")
    account_id = await env.account(channel)
    credentials, settings = CREDENTIALS[channel]
    account = Account(
        channel, credentials, settings, f"{env.running.url}/webhooks/{channel}/{account_id}"
    )
    env.standin.state.accounts.append(account)
    try:
        event, _, _ = await env.request(channel, account_id)
        row = await wait_state(env.pool, env.schema, event.payload.message_id, ("sent",), 60)
        async with httpx.AsyncClient(base_url=env.standin.url) as http:
            response = await http.post(
                "/_standin/status",
                json={"provider_message_id": row["provider_message_id"], "status": status},
            )
        assert response.status_code == 200, response.text
        assert response.json()["status_code"] == 200, response.json()
    finally:
        env.standin.state.accounts.remove(account)

    async def found() -> bool:
        rows = await env.running.events("parlay.gateway.v1.MessageStatusUpdated", account_id)
        for r in rows:
            payload = unpack(decode(bytes(r["envelope"])))
            if gw.DeliveryStatus.Name(payload.status) == expected and (
                payload.provider_message_id in (row["provider_message_id"], "")
            ):
                return True
        return False

    await wait_for(found, 60, f"{channel} MessageStatusUpdated {expected}")
