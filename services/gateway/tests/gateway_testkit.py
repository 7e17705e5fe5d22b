"""Test helpers: WhatsApp Cloud API payloads in Meta's documented shape, signing, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx

from parlay_gateway.main import Gateway, assemble
from parlay_gateway.settings import GatewaySettings
from parlay_kit.settings import KafkaSettings

APP_SECRET = "test-app-secret-0123456789"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
WHATSAPP_CREDENTIALS = {
    "app_secret": APP_SECRET,
    "verify_token": VERIFY_TOKEN,
    "access_token": ACCESS_TOKEN,
}
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE = "15550783881"
TS = "1717430400"  # 2024-06-03T16:00:00Z


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wamid() -> str:
    return "wamid.HBgL" + uuid.uuid4().hex.upper()


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


def contact(wa_id: str, name: str) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id}


def text_message(msg_id: str, sender: str, body: str, ts: str = TS, **extra: Any) -> dict[str, Any]:
    return {
        "from": sender,
        "id": msg_id,
        "timestamp": ts,
        "type": "text",
        "text": {"body": body},
        **extra,
    }


def status(
    msg_id: str,
    state: str,
    recipient: str,
    ts: str = TS,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": msg_id,
        "status": state,
        "timestamp": ts,
        "recipient_id": recipient,
    }
    if state in ("sent", "delivered", "read"):
        item["conversation"] = {
            "id": "CONVERSATION_ID",
            "origin": {"type": "service"},
        }
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    if errors:
        item["errors"] = errors
    return item


def change(
    *,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_PHONE, "phone_number_id": phone_number_id},
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {"value": value, "field": "messages"}


def payload(
    *changes_per_entry: list[dict[str, Any]], waba_id: str = "102290129340398"
) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": list(changes)} for changes in changes_per_entry],
    }


def body_of(data: dict[str, Any]) -> bytes:
    """Compact, as Meta sends it (json.loads + json.dumps with defaults gives other bytes)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def single_text(
    msg_id: str, sender: str = "16315551181", text: str = "Hello", name: str = "Kerry Fisher"
) -> dict[str, Any]:
    return payload(
        [change(contacts=[contact(sender, name)], messages=[text_message(msg_id, sender, text)])]
    )


async def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll `condition` (sync or async) until truthy; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.02)


async def read_topic(
    bootstrap: str, topic: str, wanted_ids: set[str], timeout: float = 30.0
) -> list[Any]:
    """Records of `topic` whose ce_id header is in `wanted_ids`, read with a plain consumer (no
    group) from the beginning until every wanted id was seen and the log end reached."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Any] = []
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=200)
            for records in batch.values():
                for record in records:
                    ce_id = dict(record.headers or ()).get("ce_id", b"").decode()
                    if ce_id in wanted_ids:
                        found.append(record)
            seen = {dict(r.headers)["ce_id"].decode() for r in found}
            if seen >= wanted_ids:
                ends = await consumer.end_offsets(tps)
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: saw {len(seen)} of {len(wanted_ids)} wanted events in {timeout}s"
                )
    finally:
        await consumer.stop()


def gateway_settings(bootstrap: str, database_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "db_schema": f"gw_{uuid.uuid4().hex[:12]}",
        "http_port": 0,
        "grpc_port": 0,
        "max_event_attempts": 2,
        "kafka": KafkaSettings(bootstrap=bootstrap),
        **overrides,
    }
    return GatewaySettings(**values)


class RunningGateway:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.schema = gateway.runtime.schema
        self.url = f"http://127.0.0.1:{gateway.http.port}"
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10.0)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.gateway.runtime.pool is not None
        return self.gateway.runtime.pool

    async def events(self, event_type: str, aggregate_prefix: str = "") -> list[asyncpg.Record]:
        return await self.pool.fetch(
            f"""SELECT event_id::text, aggregate_id, envelope, traceparent FROM {self.schema}.events
                WHERE event_type = $1 AND aggregate_id LIKE $2 ORDER BY position""",
            event_type,
            aggregate_prefix + "%",
        )


@contextlib.asynccontextmanager
async def run_gateway(
    bootstrap: str, database_url: str, outbound_settings: Any = None, **overrides: Any
) -> AsyncIterator[RunningGateway]:
    """A fully started gateway (HTTP, relay, normalizer; no gRPC server) in a fresh schema."""
    settings = gateway_settings(bootstrap, database_url, **overrides)
    try:
        gateway = await assemble(settings, with_grpc=False, outbound_settings=outbound_settings)
        await gateway.runtime.start()
        running = RunningGateway(gateway)
        try:
            await wait_for(lambda: gateway.http.started, 10, "HTTP server started")
            yield running
        finally:
            await running.http.aclose()
            await gateway.runtime.stop()
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {settings.store_schema} CASCADE")
        finally:
            await conn.close()
