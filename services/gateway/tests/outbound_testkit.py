"""Helpers of the outbound tests: request events, producing them, waiting on the ledger and on
the projector's stored offsets, channel-account credentials for the stand-ins."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, encode, new_event_id, utcnow

#: Credentials and settings per channel that the stand-ins accept.
CREDENTIALS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "whatsapp": (
        {"app_secret": "wa-secret", "verify_token": "wa-verify", "access_token": "wa-token"},
        {"phone_number_id": "106540352242922"},
    ),
    "messenger": (
        {"app_secret": "fb-secret", "verify_token": "fb-verify", "access_token": "fb-page-token"},
        {"page_id": "1234567890"},
    ),
    "instagram": (
        {"app_secret": "ig-secret", "verify_token": "ig-verify", "access_token": "ig-page-token"},
        {"instagram_account_id": "17841400000000000"},
    ),
    "telegram": (
        {
            "bot_token": "7000000001:AAHstandinTOKENxxxxxxxxxxxxxxxxxxxx",
            "secret_token": "tg-secret",
        },
        {},
    ),
    "twilio": (
        {"account_sid": "AC" + "0" * 31 + "1", "auth_token": "twilio-auth-token"},
        {"from": "+15005550006", "whatsapp_from": "+14155238886"},
    ),
    "wechat": (
        {"token": "wx-token", "app_id": "wx1234567890abcdef", "app_secret": "wx-app-secret"},
        {},
    ),
    "line": ({"channel_secret": "line-secret", "access_token": "line-channel-access-token"}, {}),
    "viber": (
        {"auth_token": "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"},
        {"sender_name": "Parlay Shop"},
    ),
}

RECIPIENTS = {
    "whatsapp": "16315551181",
    "messenger": "6945827164281937",
    "instagram": "17841412345678901",
    "telegram": "123456789",
    "twilio": "+14155552671",
    "wechat": "oABCD1234567890abcdefghijkl",
    "line": "U4af4980629aaaaaaaaaaaaaaaaaaaaaa",
    "viber": "01234567890A=",
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def text(body: str) -> gw.OutboundContent:
    return gw.OutboundContent(text=gw.TextContent(body=body))


def request_event(
    *,
    tenant_id: str,
    channel: str,
    channel_account_id: str,
    recipient: str,
    content: gw.OutboundContent,
    message_id: str | None = None,
    event_id: str | None = None,
) -> NewEvent:
    conversation_id = str(uuid.uuid4())
    message_id = message_id or str(uuid.uuid4())
    payload = ce.OutboundMessageRequested(
        conversation_id=conversation_id,
        message_id=message_id,
        customer_id=str(uuid.uuid4()),
        channel=channel,
        channel_account_id=channel_account_id,
        recipient_address=recipient,
        text=content.text.body if content.HasField("text") else "",
        purpose="transactional",
        sender="agent:test",
    )
    payload.content.CopyFrom(content)
    return NewEvent(
        event_id=event_id or new_event_id(),
        tenant_id=tenant_id,
        aggregate_type="conversation",
        aggregate_id=conversation_id,
        payload=payload,
        occurred_at=utcnow(),
        topic=topics.CONVERSATION,
        aggregate_version=1,
    )


class Producer:
    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def start(self) -> Producer:
        await self.producer.start()
        return self

    async def stop(self) -> None:
        await self.producer.stop()

    async def produce(self, event: NewEvent) -> tuple[int, int]:
        """Publish as the conversation service's relay would; returns (partition, offset)."""
        envelope = event.to_envelope("conversation", event.aggregate_version or 1, utcnow())
        meta = await self.producer.send_and_wait(
            event.topic,
            value=encode(envelope),
            key=event.aggregate_id.encode(),
            headers=[("ce_id", event.event_id.encode()), ("ce_type", event.event_type.encode())],
        )
        return meta.partition, meta.offset


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


async def ledger_row(pool: asyncpg.Pool, schema: str, message_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT * FROM {schema}.outbound_deliveries WHERE message_id = $1", message_id
    )


async def wait_state(
    pool: asyncpg.Pool, schema: str, message_id: str, states: tuple[str, ...], timeout: float = 30.0
) -> asyncpg.Record:
    async def reached() -> asyncpg.Record | None:
        row = await ledger_row(pool, schema, message_id)
        return row if row is not None and row["state"] in states else None

    return await wait_for(reached, timeout, f"delivery {message_id} in {states}")


async def wait_consumed(
    pool: asyncpg.Pool, schema: str, partition: int, offset: int, timeout: float = 60.0
) -> None:
    """The outbound projector has committed past `offset` of the conversation topic."""

    async def past() -> bool:
        value = await pool.fetchval(
            f"""SELECT next_offset FROM {schema}.consumer_offsets
                WHERE consumer = 'outbound' AND topic = $1 AND partition = $2""",
            topics.CONVERSATION,
            partition,
        )
        return value is not None and value > offset

    await wait_for(past, timeout, f"outbound consumer past offset {offset}")


async def outcome_events(pool: asyncpg.Pool, schema: str, message_id: str) -> list[Any]:
    """OutboundMessageSent/Failed payloads in the gateway's store for the message."""
    from parlay_kit.envelope import decode, unpack

    rows = await pool.fetch(
        f"""SELECT envelope FROM {schema}.events
            WHERE event_type IN ('parlay.gateway.v1.OutboundMessageSent',
                                 'parlay.gateway.v1.OutboundMessageFailed')
            ORDER BY position"""
    )
    out = []
    for row in rows:
        envelope = decode(bytes(row["envelope"]))
        payload = unpack(envelope)
        if payload.message_id == message_id:  # type: ignore[attr-defined]
            out.append((envelope, payload))
    return out
