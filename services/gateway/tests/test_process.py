"""`python -m parlay_gateway` as a real process: accounts file loaded at start, webhooks over HTTP,
GatewayService over gRPC with a real API key (kit tenancy), clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import asyncpg
import grpc
import httpx
from gateway_testkit import (
    WHATSAPP_CREDENTIALS,
    body_of,
    signed_headers,
    single_text,
    unique,
    wait_for,
    wamid,
)

from parlay.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from parlay_kit import tenancy
from parlay_kit.broker import free_port
from parlay_kit.grpc_server import create_channel, wait_until_serving


async def test_gateway_process(private_kafka: str, gw_database_url: str, tmp_path) -> None:
    tenant_id = f"gwt-{uuid.uuid4().hex[:10]}"
    schema = f"gwp_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(gw_database_url)
    await tenancy.migrate(conn)
    await tenancy.create_tenant(conn, "Gateway test", tenant_id)
    api_key = (await tenancy.create_api_key(conn, tenant_id)).key

    filed = unique("filed")
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(
        json.dumps(
            {
                "channel_accounts": [
                    {
                        "tenant_id": tenant_id,
                        "channel_account_id": filed,
                        "channel": "whatsapp",
                        "credentials": {**WHATSAPP_CREDENTIALS, "app_secret": "${TEST_WA_SECRET}"},
                        "settings": {"phone_number_id": "106540352242922"},
                    }
                ]
            }
        )
    )
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PARLAY_DATABASE_URL": gw_database_url,
        "PARLAY_DB_SCHEMA": schema,
        "PARLAY_HTTP_PORT": str(http_port),
        "PARLAY_GRPC_PORT": str(grpc_port),
        "PARLAY_KAFKA_BOOTSTRAP": private_kafka,
        "PARLAY_CHANNEL_ACCOUNTS_FILE": str(accounts_file),
        "TEST_WA_SECRET": WHATSAPP_CREDENTIALS["app_secret"],
    }
    log_path = tmp_path / "gateway.log"
    log_file = open(log_path, "wb")  # noqa: ASYNC230, SIM115 - the child writes it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parlay_gateway", env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    channel = create_channel(f"127.0.0.1:{grpc_port}", api_key=api_key)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:

            async def healthy() -> bool:
                assert proc.returncode is None, log_path.read_text()
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, 30, "gateway /healthz")
            body = body_of(single_text(wamid()))
            response = await http.post(
                f"/webhooks/whatsapp/{filed}", content=body, headers=signed_headers(body)
            )
            assert response.status_code == 200

        await wait_until_serving(channel, "parlay.gateway.v1.GatewayService", timeout=10)
        stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
        listed = await stub.ListChannelAccounts(gateway_service_pb2.ListChannelAccountsRequest())
        assert [a.channel_account_id for a in listed.channel_accounts] == [filed]
        created = await stub.CreateChannelAccount(
            gateway_service_pb2.CreateChannelAccountRequest(
                channel_account_id=unique("grpc"), channel="webchat"
            )
        )
        assert created.channel_account.tenant_id == tenant_id
        try:
            await stub.GetChannelAccount(
                gateway_service_pb2.GetChannelAccountRequest(channel_account_id="nope"),
                metadata=[("authorization", "Bearer wrong-key")],
            )
            raise AssertionError("expected UNAUTHENTICATED")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 40)
        output = log_path.read_text()
        assert code == 0, output
        assert "Traceback" not in output, output
        assert WHATSAPP_CREDENTIALS["app_secret"] not in output
    finally:
        await channel.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log_file.close()
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute("DELETE FROM tenancy.api_keys WHERE tenant_id = $1", tenant_id)
        await conn.execute("DELETE FROM tenancy.tenants WHERE tenant_id = $1", tenant_id)
        await conn.close()
