"""Web chat over a real socket against a real gateway (Tansu + Postgres): visitor message ->
WebhookReceived -> MessageReceived on parlay.gateway.inbound.v1; agent reply
(OutboundMessageRequested on parlay.conversation.v1) -> the socket; delivered receipt ->
MessageStatusUpdated; history on reconnect; identity and origin refusals."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from gateway_testkit import read_topic, run_gateway, wait_for
from outbound_testkit import Producer, outcome_events, request_event, text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.channels import webchat as wc
from parlay_kit import topics
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import decode, deterministic_event_id, unpack

TENANT = f"wc-{uuid.uuid4().hex[:8]}"
SECRET = "wc-secret-" + uuid.uuid4().hex[:8]
ORIGIN = "http://shop.example"
RECEIVED = "parlay.gateway.v1.MessageReceived"


class Env:
    def __init__(self, running: Any, producer: Producer) -> None:
        self.running = running
        self.producer = producer
        self.ws_url = running.url.replace("http://", "ws://")

    async def account(self, **settings: str) -> str:
        account_id = f"web-{uuid.uuid4().hex[:10]}"
        await self.running.gateway.accounts.create(
            TENANT,
            account_id,
            "webchat",
            {"identity_secret": SECRET},
            {"allowed_origins": ORIGIN, **settings},
        )
        return account_id

    def socket(self, account_id: str, origin: str = ORIGIN) -> Any:
        return connect(f"{self.ws_url}/webchat/{account_id}/socket", origin=origin, open_timeout=10)

    async def payloads(self, event_type: str, prefix: str) -> list[Any]:
        rows = await self.running.events(event_type, prefix)
        return [unpack(decode(bytes(r["envelope"]))) for r in rows]


@pytest.fixture(scope="module")
async def env(gw_kafka: str, gw_database_url: str):
    await ensure_topics(gw_kafka, [topics.CONVERSATION], partitions=3)
    producer = await Producer(gw_kafka).start()
    try:
        async with run_gateway(gw_kafka, gw_database_url) as running:
            await wait_for(lambda: running.gateway.webchat.listening.is_set(), 10, "LISTEN")
            yield Env(running, producer)
    finally:
        await producer.stop()


async def recv(ws: ClientConnection, wanted: str, timeout: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == wanted:
                return frame


async def hello(ws: ClientConnection, visitor_id: str, **identity: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", "visitor_id": visitor_id, **identity}))
    return await recv(ws, "ready")


async def closed_with(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as exc:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    assert exc.value.rcvd is not None
    return exc.value.rcvd.code


async def test_message_reply_delivered_and_history(env: Env, gw_kafka: str) -> None:
    account_id = await env.account()
    visitor_id = uuid.uuid4().hex
    address = f"visitor:{visitor_id}"
    async with env.socket(account_id) as ws:
        ready = await hello(ws, visitor_id)
        assert ready["visitor"] == address and ready["history"] == []
        await ws.send(json.dumps({"type": "message", "id": "c1", "text": "Where is my order?"}))
        assert (await recv(ws, "ack"))["id"] == "c1"
        # a retried frame (same client id) is acknowledged and stored once
        await ws.send(json.dumps({"type": "message", "id": "c1", "text": "Where is my order?"}))
        assert (await recv(ws, "ack"))["id"] == "c1"

        expected_id = deterministic_event_id("webchat", account_id, address, "c1", "received")
        [record] = await read_topic(gw_kafka, topics.INBOUND, {expected_id})
        received = unpack(decode(record.value))
        assert isinstance(received, pb.MessageReceived)
        assert received.content.text.body == "Where is my order?"
        assert received.sender.address == address and received.channel == "webchat"
        webhooks = await env.running.events("parlay.gateway.v1.WebhookReceived", account_id)
        assert len(webhooks) == 1

        # the agent answers: OutboundMessageRequested on the conversation topic
        request = request_event(
            tenant_id=TENANT,
            channel="webchat",
            channel_account_id=account_id,
            recipient=address,
            content=text("It ships today."),
        )
        await env.producer.produce(request)
        message_id = request.payload.message_id
        pushed = await recv(ws, "message")
        while pushed["direction"] != "out":  # our own message may be echoed to other tabs
            pushed = await recv(ws, "message")
        assert pushed["id"] == message_id and pushed["text"] == "It ships today."

        [(_, sent)] = await wait_for(
            lambda: outcome_events(env.running.pool, env.running.schema, message_id),
            30,
            "OutboundMessageSent",
        )
        assert isinstance(sent, pb.OutboundMessageSent)
        assert sent.provider_message_id == message_id

        await ws.send(json.dumps({"type": "delivered", "id": message_id}))
        statuses = await wait_for(
            lambda: env.payloads("parlay.gateway.v1.MessageStatusUpdated", account_id),
            30,
            "delivered status",
        )
        assert [(s.provider_message_id, s.status) for s in statuses] == [
            (message_id, pb.DELIVERY_STATUS_DELIVERED)
        ]

    # reconnect (another tab / page reload): history has both directions, in order
    async with env.socket(account_id) as ws:
        ready = await hello(ws, visitor_id)
        assert [(m["direction"], m["id"], m["text"]) for m in ready["history"]] == [
            ("in", "c1", "Where is my order?"),
            ("out", message_id, "It ships today."),
        ]
        await ws.send(json.dumps({"type": "ping"}))
        await recv(ws, "pong")


async def test_signed_visitor_yields_verified_email(env: Env) -> None:
    account_id = await env.account()
    sig = wc.identity_signature(SECRET, "u-7", "ann@example.com")
    async with env.socket(account_id) as ws:
        ready = await hello(
            ws, uuid.uuid4().hex, user_id="u-7", email="ann@example.com", signature=sig
        )
        assert ready["visitor"] == "user:u-7" and ready["verified"] is True
    evidence = await wait_for(
        lambda: env.payloads("parlay.gateway.v1.IdentityEvidenceObserved", account_id),
        30,
        "evidence",
    )
    assert [(e.evidence_kind, e.email, e.subject.address) for e in evidence] == [
        ("verified_email", "ann@example.com", "user:u-7")
    ]


async def test_refusals_store_nothing(env: Env) -> None:
    account_id = await env.account()
    # bad signature: refused with 4401 before anything is stored
    async with env.socket(account_id) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "visitor_id": uuid.uuid4().hex,
                    "user_id": "u-7",
                    "email": "eve@example.com",
                    "signature": wc.identity_signature(SECRET, "u-7", "ann@example.com"),
                }
            )
        )
        assert await closed_with(ws) == wc.CLOSE_UNAUTHENTICATED
    # malformed hello
    async with env.socket(account_id) as ws:
        await ws.send("{not json")
        assert await closed_with(ws) == wc.CLOSE_BAD_FRAME
    # origin not allowed
    async with env.socket(account_id, origin="https://evil.example") as ws:
        assert await closed_with(ws) == wc.CLOSE_FORBIDDEN_ORIGIN
    # unknown account, and an account of another channel
    async with env.socket("no-such-account") as ws:
        assert await closed_with(ws) == wc.CLOSE_UNKNOWN_ACCOUNT
    # a malformed frame after hello: an error frame, nothing stored, the socket stays usable
    async with env.socket(account_id) as ws:
        await hello(ws, uuid.uuid4().hex)
        await ws.send(json.dumps({"type": "message", "id": "bad id!", "text": "x"}))
        assert (await recv(ws, "error"))["code"] == "bad_frame"
        await ws.send(json.dumps({"type": "ping"}))
        await recv(ws, "pong")
    assert await env.running.events("parlay.gateway.v1.WebhookReceived", account_id) == []
    # the webhook route is not a way in either
    response = await env.running.http.post(f"/webhooks/webchat/{account_id}", content=b"{}")
    assert response.status_code == 405


async def test_widget_is_served(env: Env) -> None:
    response = await env.running.http.get("/webchat/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert b"/webchat/" in response.content and b"hello" in response.content
