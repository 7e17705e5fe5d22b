"""Exactly-once under a crash: `python -m parlay_gateway` is SIGKILLed while its sends are in
flight (the stand-in delays its answers), restarted, and the requests are redelivered. The
stand-in saw exactly one send per message:

* LINE (real idempotency key X-Line-Retry-Key): re-sent with the same key -> 409 + the original
  sentMessages -> OutboundMessageSent with the original id;
* WhatsApp, configured as idempotent-resend (the stand-in honours Idempotency-Key): re-sent with
  the same key -> the original answer replayed -> OutboundMessageSent;
* Telegram (no key): not re-sent -> OutboundMessageFailed(outcome_unknown).

The same process then serves GatewayService.GetMedia over gRPC with a real API key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import asyncpg
import grpc
from outbound_testkit import (
    CREDENTIALS,
    Producer,
    outcome_events,
    request_event,
    text,
    unique,
    wait_consumed,
    wait_state,
)

from parlay.gateway.v1 import gateway_service_pb2 as pb
from parlay.gateway.v1 import gateway_service_pb2_grpc
from parlay_kit import tenancy, topics
from parlay_kit.broker import ensure_topics, free_port
from parlay_kit.grpc_server import create_channel, wait_until_serving
from parlay_standins import StandinServer, env_for
from parlay_standins.state import FailureRule

DELAY = 8.0


async def test_kill_mid_send_and_redeliver_sends_once(
    gw_kafka: str, gw_database_url: str, tmp_path
) -> None:
    await ensure_topics(gw_kafka, [topics.CONVERSATION], partitions=3)
    tenant_id = f"crash-{uuid.uuid4().hex[:8]}"
    schema = f"gwc_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(gw_database_url)
    await tenancy.migrate(conn)
    await tenancy.create_tenant(conn, "Outbound crash test", tenant_id)
    api_key = (await tenancy.create_api_key(conn, tenant_id)).key
    producer = await Producer(gw_kafka).start()
    standin = await StandinServer().start()
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        **env_for(standin.url),
        "PARLAY_DATABASE_URL": gw_database_url,
        "PARLAY_DB_SCHEMA": schema,
        "PARLAY_HTTP_PORT": str(http_port),
        "PARLAY_GRPC_PORT": str(grpc_port),
        "PARLAY_KAFKA_BOOTSTRAP": gw_kafka,
        "PARLAY_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "PARLAY_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "PARLAY_OUTBOUND_TIMEOUT_SECONDS": "20",
        "PARLAY_OUTBOUND_RECOVERY_SECONDS": "0.5",
        "PARLAY_OUTBOUND_IDEMPOTENT_RESEND_CHANNELS": "whatsapp",
    }
    procs: list[asyncio.subprocess.Process] = []
    logs = []

    async def start(n: int) -> asyncio.subprocess.Process:
        log_path = tmp_path / f"gateway-{n}.log"
        log_file = open(log_path, "wb")  # noqa: ASYNC230, SIM115 - the child writes it
        logs.append((log_path, log_file))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parlay_gateway",
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    channel = create_channel(f"127.0.0.1:{grpc_port}", api_key=api_key)
    stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
    try:
        first = await start(1)
        await wait_until_serving(channel, "parlay.gateway.v1.GatewayService", timeout=60)
        accounts = {}
        for ch in ("line", "whatsapp", "telegram"):
            credentials, settings = CREDENTIALS[ch]
            accounts[ch] = unique(ch)
            await stub.CreateChannelAccount(
                pb.CreateChannelAccountRequest(
                    channel_account_id=accounts[ch],
                    channel=ch,
                    credentials=credentials,
                    settings=settings,
                )
            )
        recipients = {
            "line": "U" + uuid.uuid4().hex,
            "whatsapp": f"1888{uuid.uuid4().int % 10**7:07d}",
            "telegram": str(uuid.uuid4().int % 10**9),
        }
        family = {"line": "line", "whatsapp": "meta", "telegram": "telegram"}
        for ch, to in recipients.items():
            standin.state.rules.append(
                FailureRule(id=unique("slow"), family=family[ch], match=to, delay=DELAY)
            )
        events = {
            ch: request_event(
                tenant_id=tenant_id,
                channel=ch,
                channel_account_id=accounts[ch],
                recipient=recipients[ch],
                content=text(f"order {ch} shipped"),
            )
            for ch in recipients
        }
        for event in events.values():
            await producer.produce(event)

        # All three requests reached the provider, none has been answered yet: kill.
        def arrived() -> list:
            return [
                r
                for e in events.values()
                for r in standin.state.records
                if r.idempotency_key == e.payload.message_id and r.responded_at is None
            ]

        found = await standin.state.wait_for(arrived, 3, 60)
        assert len(found) == 3, [r.to_json() for r in standin.state.records]
        first.send_signal(signal.SIGKILL)
        await first.wait()

        await start(2)
        # Redeliver every request (same event ids), as a broker or a relay re-run would.
        offsets = [await producer.produce(e) for e in events.values()]

        pool = await asyncpg.create_pool(gw_database_url, min_size=1, max_size=2)
        try:
            rows = {
                ch: await wait_state(
                    pool, schema, e.payload.message_id, ("sent", "failed", "unknown"), 90
                )
                for ch, e in events.items()
            }
            for partition, offset in offsets:
                await wait_consumed(pool, schema, partition, offset, 90)
            for ch, e in events.items():
                accepted = [
                    r
                    for r in standin.state.records
                    if r.idempotency_key == e.payload.message_id and r.accepted
                ]
                assert len(accepted) == 1, (ch, [r.to_json() for r in standin.state.records])
                outcomes = await outcome_events(pool, schema, e.payload.message_id)
                assert len(outcomes) == 1, ch
            assert rows["line"]["state"] == "sent"
            assert rows["whatsapp"]["state"] == "sent"
            for ch in ("line", "whatsapp"):
                original = next(
                    r
                    for r in standin.state.records
                    if r.idempotency_key == events[ch].payload.message_id and r.accepted
                )
                assert rows[ch]["provider_message_id"] == original.provider_message_id
            line_requests = [
                r
                for r in standin.state.records
                if r.idempotency_key == events["line"].payload.message_id
            ]
            assert [r.status for r in line_requests] == [200, 409]
            assert rows["telegram"]["state"] == "unknown"
            assert rows["telegram"]["error_code"] == "outcome_unknown"
            [(_, failed)] = await outcome_events(
                pool, schema, events["telegram"].payload.message_id
            )
            assert failed.error_code == "outcome_unknown"
        finally:
            await pool.close()

        # GetMedia over gRPC, tenant-scoped by the API key.
        photo = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes * 64
        item = standin.state.add_media("whatsapp", photo, "image/jpeg")
        got = await stub.GetMedia(
            pb.GetMediaRequest(
                channel_account_id=accounts["whatsapp"], provider_media_id=item.media_id
            )
        )
        assert got.data == photo and got.mime_type == "image/jpeg" and got.sha256 == item.sha256
        try:
            await stub.GetMedia(
                pb.GetMediaRequest(
                    channel_account_id=accounts["whatsapp"], provider_media_id="404404"
                )
            )
            raise AssertionError("expected NOT_FOUND")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND

        second = procs[-1]
        second.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(second.wait(), 40)
        output = logs[-1][0].read_text()
        assert code == 0, output
        assert "Traceback" not in output, output
        assert "outcome unknown" in output or "outcome_unknown" in output
    finally:
        await channel.close()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for _, fh in logs:
            fh.close()
        await standin.stop()
        await producer.stop()
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute("DELETE FROM tenancy.api_keys WHERE tenant_id = $1", tenant_id)
        await conn.execute("DELETE FROM tenancy.tenants WHERE tenant_id = $1", tenant_id)
        await conn.close()
