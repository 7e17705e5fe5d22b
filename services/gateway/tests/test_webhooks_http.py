"""The webhook HTTP entry point through a real uvicorn server, with httpx, against real Postgres
(and the real broker the running gateway's relay and normalizer use)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from gateway_testkit import (
    APP_SECRET,
    VERIFY_TOKEN,
    WHATSAPP_CREDENTIALS,
    body_of,
    sign,
    signed_headers,
    single_text,
    unique,
    wait_for,
    wamid,
)

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.account_store import AccountRepository
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.registry import default_registry
from parlay_gateway.http_app import create_app
from parlay_gateway.http_server import HttpServer
from parlay_gateway.ingest import webhook_event_id
from parlay_kit import envelope
from parlay_kit.db import create_pool
from parlay_kit.envelope import utcnow
from parlay_kit.eventstore import EventStore, GroupCommitter

WEBHOOK = "parlay.gateway.v1.WebhookReceived"
RECEIVED = "parlay.gateway.v1.MessageReceived"


async def whatsapp_account(gateway, tenant: str = "acme") -> str:
    account_id = unique("wa")
    await gateway.gateway.accounts.create(tenant, account_id, "whatsapp", WHATSAPP_CREDENTIALS, {})
    return account_id


async def post(
    gateway, account_id: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await gateway.http.post(
        f"/webhooks/whatsapp/{account_id}",
        content=body,
        headers=signed_headers(body) if headers is None else headers,
    )


async def test_health_and_metrics(gateway) -> None:
    assert (await gateway.http.get("/healthz")).json() == {"status": "ok"}
    metrics = await gateway.http.get("/metrics")
    assert metrics.status_code == 200
    assert "parlay_gateway_webhook_requests" in metrics.text


async def test_signed_webhook_is_stored_then_acknowledged(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    body = body_of(single_text(wamid()))
    trace_id = uuid.uuid4().hex
    headers = {**signed_headers(body), "traceparent": f"00-{trace_id}-{'1' * 16}-01"}
    response = await post(gateway, account_id, body, headers)
    assert response.status_code == 200
    # 200 means durable: the event is in the store when the response arrives.
    [row] = await gateway.events(WEBHOOK, account_id)
    env = envelope.decode(bytes(row["envelope"]))
    webhook = envelope.unpack(env)
    assert isinstance(webhook, pb.WebhookReceived)
    assert webhook.body == body
    assert webhook.channel == "whatsapp"
    assert webhook.channel_account_id == account_id
    assert webhook.http_method == "POST"
    assert webhook.path == f"/webhooks/whatsapp/{account_id}"
    assert webhook.headers["x-hub-signature-256"] == sign(body)
    assert webhook.headers["content-type"] == "application/json"
    assert webhook.received_at.seconds > 0
    assert (env.tenant_id, env.aggregate_type, env.aggregate_id) == (
        "acme",
        "channel_account",
        account_id,
    )
    import hashlib

    assert row["event_id"] == webhook_event_id(
        "whatsapp", account_id, hashlib.sha256(body).hexdigest()
    )
    # The request's trace continues in the stored event (the relay puts it on the record).
    assert row["traceparent"].split("-")[1] == trace_id


async def test_missing_signature_is_401_and_nothing_stored(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    body = body_of(single_text(wamid()))
    response = await post(gateway, account_id, body, {"Content-Type": "application/json"})
    assert response.status_code == 401
    assert await gateway.events(WEBHOOK, account_id) == []


async def test_bad_signature_is_403(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    body = body_of(single_text(wamid()))
    response = await post(gateway, account_id, body, signed_headers(body, "not-the-secret"))
    assert response.status_code == 403
    assert APP_SECRET not in response.text
    assert await gateway.events(WEBHOOK, account_id) == []


async def test_reserialized_body_is_403(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    original = body_of(single_text(wamid(), text="Olá, ¿qué tal?"))
    reserialized = json.dumps(json.loads(original)).encode()
    assert reserialized != original
    response = await post(gateway, account_id, reserialized, signed_headers(original))
    assert response.status_code == 403
    assert await gateway.events(WEBHOOK, account_id) == []


async def test_unknown_account_or_channel_is_404(gateway) -> None:
    body = body_of(single_text(wamid()))
    assert (await post(gateway, "no-such-account", body)).status_code == 404
    account_id = await whatsapp_account(gateway)
    response = await gateway.http.post(
        f"/webhooks/telegram/{account_id}", content=body, headers=signed_headers(body)
    )
    assert response.status_code == 404
    response = await gateway.http.post(f"/webhooks/fax/{account_id}", content=body)
    assert response.status_code == 404


async def test_oversized_body_is_413(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    limit = gateway.gateway.settings.max_body_bytes
    big = b'{"pad":"' + b"x" * limit + b'"}'
    response = await post(gateway, account_id, big)
    assert response.status_code == 413

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    response = await gateway.http.post(
        f"/webhooks/whatsapp/{account_id}",
        content=chunks(),
        headers={"X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert response.status_code == 413
    assert await gateway.events(WEBHOOK, account_id) == []


async def test_malformed_json_is_400_and_not_stored(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    for body in (b"{not json", b"[]", b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000):
        response = await post(gateway, account_id, body)  # correctly signed
        assert response.status_code == 400, body
    assert await gateway.events(WEBHOOK, account_id) == []


async def test_verification_handshake(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    ok = await gateway.http.get(
        f"/webhooks/whatsapp/{account_id}",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = await gateway.http.get(
        f"/webhooks/whatsapp/{account_id}",
        params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403
    unknown = await gateway.http.get(
        "/webhooks/whatsapp/nobody",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
    )
    assert unknown.status_code == 404


async def test_duplicate_delivery_stores_one_webhook_and_one_message(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    message_id = wamid()
    body = body_of(single_text(message_id, sender="4915112345678"))
    responses = await asyncio.gather(*(post(gateway, account_id, body) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(await gateway.events(WEBHOOK, account_id)) == 1
    # The same message in a differently-batched delivery (other bytes): still one message.
    again = body_of(single_text(message_id, sender="4915112345678", name="Kerry F."))
    assert (await post(gateway, account_id, again)).status_code == 200
    assert len(await gateway.events(WEBHOOK, account_id)) == 2
    await wait_for(lambda: gateway.events(RECEIVED, account_id), 30, "MessageReceived normalized")
    # Both raw webhooks are normalized before we count.
    await wait_for(lambda: _normalized_count(gateway, account_id), 30, "both webhooks processed")
    rows = await gateway.events(RECEIVED, account_id)
    assert len(rows) == 1
    assert rows[0]["aggregate_id"] == f"{account_id}:4915112345678"


async def _normalized_count(gateway, account_id: str) -> bool:
    rows = await gateway.pool.fetch(
        f"""SELECT e.event_id FROM {gateway.schema}.events e
            JOIN {gateway.schema}.processed_events p ON p.event_id = e.event_id
            WHERE e.event_type = $1 AND e.aggregate_id = $2""",
        WEBHOOK,
        account_id,
    )
    return len(rows) == 2


async def test_concurrent_webhooks_share_commits(gateway) -> None:
    account_id = await whatsapp_account(gateway)
    bodies = [body_of(single_text(wamid(), sender=str(4917000000 + i))) for i in range(40)]
    responses = await asyncio.gather(*(post(gateway, account_id, b) for b in bodies))
    assert {r.status_code for r in responses} == {200}
    assert len(await gateway.events(WEBHOOK, account_id)) == 40


async def test_store_down_is_503(gw_database_url: str) -> None:
    schema = f"gwd_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(gw_database_url, schema, max_size=2)
    committer = GroupCommitter(pool, EventStore(schema, "gateway"))
    await committer.start()
    await pool.close()  # the store is gone; the committer's appends fail

    account = ChannelAccount(
        channel_account_id="down-wa",
        tenant_id="acme",
        channel="whatsapp",
        credentials=WHATSAPP_CREDENTIALS,
        settings={},
        created_at=utcnow(),
    )

    async def lookup(account_id: str) -> ChannelAccount | None:
        return account if account_id == account.channel_account_id else None

    async def failing_lookup(account_id: str) -> ChannelAccount | None:
        return await AccountRepository(schema).get(pool, account_id)

    stop = asyncio.Event()
    servers = [
        HttpServer(
            create_app(lookup_account=lookup, registry=default_registry(), appender=committer),
            "127.0.0.1",
            0,
        ),
        HttpServer(
            create_app(
                lookup_account=failing_lookup, registry=default_registry(), appender=committer
            ),
            "127.0.0.1",
            0,
        ),
    ]
    tasks = [asyncio.create_task(s.run(stop)) for s in servers]
    try:
        await wait_for(lambda: all(s.started for s in servers), 10, "servers started")
        body = body_of(single_text(wamid()))
        async with httpx.AsyncClient(timeout=10) as client:
            for server in servers:
                response = await client.post(
                    f"http://127.0.0.1:{server.port}/webhooks/whatsapp/down-wa",
                    content=body,
                    headers=signed_headers(body),
                )
                assert response.status_code == 503
                assert response.headers["retry-after"] == "5"
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await committer.close()


@pytest.mark.parametrize("path", ["/webhooks/whatsapp", "/webhooks"])
async def test_unrouted_paths_are_404(gateway, path: str) -> None:
    assert (await gateway.http.post(path, content=b"{}")).status_code in (404, 405)
