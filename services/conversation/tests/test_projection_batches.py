"""TimelineProjection gives the same read models however the log is cut into batches: one event
at a time (every status an UPDATE of its message's row), small batches (a message and its
statuses sometimes together, sometimes not) and one batch of everything (rows streamed to
Postgres a group of conversations at a time, statuses written with their rows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from google.protobuf.message import Message

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation.projections import TimelineProjection
from parlay_conversation.readmodel import ConversationReadModel
from parlay_kit.envelope import NewEvent, deterministic_event_id
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_kit.testbus import create_schema, drop_schema

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
TABLES = {
    "conversations": "conversation_id",
    "conversation_messages": "message_id",
    "conversation_notes": "note_id",
    "scheduled_messages": "schedule_id",
}


def _id(*parts: object) -> str:
    return deterministic_event_id("test-batches", *map(str, parts))


def conversation_log(conversations: int) -> list[ConsumedEvent]:
    """Per conversation: opened, inbound messages, replies with statuses (one failing, one
    going back in rank), a note, labels, a status reported again, in stream order."""
    out: list[ConsumedEvent] = []
    for c in range(conversations):
        cid = _id("conversation", c)
        channel = ("whatsapp", "telegram")[c % 2]
        payloads: list[Message] = [
            ce.ConversationOpened(
                conversation_id=cid,
                customer_id=_id("customer", c),
                channel=channel,
                channel_account_id="acc",
            )
        ]
        for i in range(4):
            m = ce.MessageAppended(
                conversation_id=cid,
                message_id=_id("in", c, i),
                direction=ce.MESSAGE_DIRECTION_INBOUND,
                channel=channel,
                channel_account_id="acc" if i % 2 else "acc-2",
                provider_message_id=f"pm.{c}.{i}",
                content=ge.MessageContent(text=ge.TextContent(body=f"hi {i}")),
                text=f"hi {i} from {c}",
                source_event_id=_id("src", c, i),
                address=f"1650{c:07d}",
            )
            m.sent_at.FromDatetime(T0 + timedelta(minutes=c, seconds=10 - i))  # out of order
            payloads.append(m)
        for r in range(3):
            payloads.append(
                ce.OutboundMessageRequested(
                    conversation_id=cid,
                    message_id=_id("out", c, r),
                    customer_id=_id("customer", c),
                    channel=channel,
                    channel_account_id="acc",
                    content=ge.OutboundContent(text=ge.TextContent(body=f"reply {r}")),
                    text=f"reply {r}",
                    sender="agent:ana",
                )
            )
        statuses = [
            (0, "sent", "", ""),
            (1, "sent", "", ""),
            (0, "delivered", "", ""),
            (1, "failed", "131047", "window closed"),
            (0, "sent", "", ""),  # late: never moves the message back
            (2, "read", "", ""),
            (1, "delivered", "", ""),
        ]
        for n, (r, status, code, error) in enumerate(statuses):
            u = ce.OutboundMessageStatusChanged(
                conversation_id=cid,
                message_id=_id("out", c, r),
                status=status,
                provider_message_id=f"wamid.{c}.{r}" if status == "sent" else "",
                error_code=code,
                error_message=error,
                source_event_id=_id("status", c, n),
            )
            u.status_at.FromDatetime(T0 + timedelta(minutes=c, seconds=30 + n))
            payloads.append(u)
        payloads.append(ce.NoteAdded(conversation_id=cid, note_id=_id("note", c), text="vip"))
        payloads.append(ce.LabelsChanged(conversation_id=cid, labels=["b", "a"]))
        for version, payload in enumerate(payloads, start=1):
            at = T0 + timedelta(minutes=c, seconds=version)
            envelope = NewEvent(
                event_id=_id("event", c, version),
                tenant_id="t-batches",
                aggregate_type="conversation",
                aggregate_id=cid,
                payload=payload,
                occurred_at=at,
                topic="",
                aggregate_version=version,
            ).to_envelope("conversation", version, at)
            out.append(ConsumedEvent(envelope, payload, "conversation", 0, len(out), ""))
    return out


async def rebuild(database_url: str, schema: str, events: list[ConsumedEvent], size: int) -> dict:
    from parlay_conversation.readmodel import MIGRATIONS
    from parlay_conversation.settings import ConversationSettings
    from parlay_kit.runtime import ServiceRuntime

    runtime = ServiceRuntime(
        ConversationSettings(database_url=database_url, db_schema=schema), migrations=MIGRATIONS
    )
    await runtime.open()
    try:
        projection = TimelineProjection(ConversationReadModel(schema))
        for i in range(0, len(events), size):
            async with runtime.pool.acquire() as conn, conn.transaction():
                await projection.handle_batch(UnitOfWork(conn), events[i : i + size])
        # Twice: an already applied prefix changes nothing.
        async with runtime.pool.acquire() as conn, conn.transaction():
            await projection.handle_batch(UnitOfWork(conn), events[: len(events) // 2])
    finally:
        await runtime.stop()
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: [
                tuple(r) for r in await conn.fetch(f"SELECT * FROM {schema}.{table} ORDER BY {key}")
            ]
            for table, key in TABLES.items()
        }
    finally:
        await conn.close()


async def test_the_read_models_do_not_depend_on_the_batches(database_url: str) -> None:
    # 40 conversations of 23 events: one batch of everything streams several row groups.
    events = conversation_log(40)
    results = []
    for size in (1, 7, 23, len(events)):
        schema = await create_schema(database_url)
        try:
            results.append(await rebuild(database_url, schema, events, size))
        finally:
            await drop_schema(database_url, schema)
    one_at_a_time = results[0]
    assert len(one_at_a_time["conversation_messages"]) == 40 * 7
    statuses = {r[0]: r for r in one_at_a_time["conversation_messages"]}
    out0 = statuses[_id("out", 0, 0)]
    assert "delivered" in out0 and "wamid.0.0" in out0  # the late "sent" did not win
    out1 = statuses[_id("out", 0, 1)]
    assert "delivered" in out1  # a delivery receipt wins over a failure
    for other in results[1:]:
        assert other == one_at_a_time
