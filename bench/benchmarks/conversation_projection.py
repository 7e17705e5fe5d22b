"""Conversation projection throughput: events/s the conversation read models absorb.

Two projections, each run by the kit's `Projector` exactly as the service runs it (batches from a
Kafka consumer group, one Postgres transaction per batch with the read-model writes, the
processed-event ids and the offsets):

- rebuild: `TimelineProjection` over parlay.conversation.v1 — the read models as a function of
  the log (the same `domain.apply_event` the live writers use), set-based per batch. The event
  mix is a busy inbox's: per conversation, opened, 8 inbound messages, an assignment, labels,
  3 agent replies (OutboundMessageRequested) and their sent + delivered statuses.
  Target >= 20,000 events/s.
- timeline: the live `Timeline` projector over parlay.gateway.inbound.v1 + parlay.profile.v1 —
  IdentityLinked then MessageReceived for known identities: open/append decisions, the emitted
  events appended to the outbox, the read models updated (informational, no target).

Setup (not timed): a fresh Tansu broker, the events produced, a fresh schema per projection.
Timed: from the consumer's partition assignment (Tansu's ~5 s group join is not the
projection's cost) until the projector has applied every event. Runs in this process; nothing
else runs meanwhile. Schemas are dropped afterwards unless --keep.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.core import Context, Result, register
from bench.procs import CpuWindow
from bench.projections import produce
from bench.stack import drop_schemas, start_broker

TITLE = "Conversation projection throughput (batched, real projector)"
EVENTS = 200_000
PER_CONVERSATION = 20
TIMELINE_MESSAGES = 60_000
TARGET = 20_000


def _u(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "bench-conv-" + "-".join(map(str, parts))))


def conversation_events(n: int) -> list[tuple[bytes, bytes]]:
    """(key, envelope) of n conversation events, per conversation in stream order."""
    from google.protobuf.message import Message

    from parlay.conversation.v1 import conversation_events_pb2 as ce
    from parlay.gateway.v1 import gateway_events_pb2 as ge
    from parlay_kit.envelope import NewEvent, encode, to_timestamp

    out: list[tuple[bytes, bytes]] = []
    t0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    for c in range(-(-n // PER_CONVERSATION)):
        cid = _u("conversation", c)
        channel = ("whatsapp", "messenger", "sms")[c % 3]
        account = f"acc-{channel}"
        payloads: list[Message] = [
            ce.ConversationOpened(
                conversation_id=cid,
                customer_id=_u("customer", c),
                channel=channel,
                channel_account_id=account,
            )
        ]
        for i in range(8):
            text = f"message {i} of conversation {c}: do you ship to Lisbon?"
            m = ce.MessageAppended(
                conversation_id=cid,
                message_id=_u("in", c, i),
                direction=ce.MESSAGE_DIRECTION_INBOUND,
                channel=channel,
                channel_account_id=account,
                provider_message_id=f"pm.{c}.{i}",
                content=ge.MessageContent(text=ge.TextContent(body=text)),
                text=text,
                source_event_id=_u("src", c, i),
                address=f"1650{c:07d}",
            )
            m.sent_at.CopyFrom(to_timestamp(t0 + timedelta(minutes=c % 1440, seconds=i)))
            payloads.append(m)
        payloads.append(
            ce.ConversationAssigned(
                conversation_id=cid,
                agent_id=f"agent-{c % 7}",
                team_id="support",
                reason="round_robin",
                actor="system",
            )
        )
        payloads.append(ce.LabelsChanged(conversation_id=cid, labels=["shipping", "lisbon"]))
        for r in range(3):
            body = f"Reply {r}: yes, we ship to Lisbon in 3 days."
            payloads.append(
                ce.OutboundMessageRequested(
                    conversation_id=cid,
                    message_id=_u("out", c, r),
                    customer_id=_u("customer", c),
                    channel=channel,
                    channel_account_id=account,
                    recipient_address=f"1650{c:07d}",
                    content=ge.OutboundContent(text=ge.TextContent(body=body)),
                    text=body,
                    purpose="transactional",
                    sender="agent:ana",
                )
            )
        for r in range(3):
            for status in ("sent", "delivered"):
                payloads.append(
                    ce.OutboundMessageStatusChanged(
                        conversation_id=cid,
                        message_id=_u("out", c, r),
                        status=status,
                        provider_message_id=f"wamid.out.{c}.{r}",
                        source_event_id=_u(status, c, r),
                    )
                )
        for version, payload in enumerate(payloads, start=1):
            if len(out) >= n:
                return out
            at = t0 + timedelta(minutes=c % 1440, seconds=version)
            event = NewEvent(
                event_id=_u("event", c, version),
                tenant_id="bench",
                aggregate_type="conversation",
                aggregate_id=cid,
                payload=payload,
                occurred_at=at,
                topic="",
                aggregate_version=version,
            )
            out.append((cid.encode(), encode(event.to_envelope("conversation", version, at))))
    return out


def timeline_inputs(n: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(profile records, inbound records): an IdentityLinked per customer, then n messages."""
    from parlay.gateway.v1 import gateway_events_pb2 as ge
    from parlay.profile.v1 import profile_events_pb2 as pe
    from parlay_kit.envelope import NewEvent, encode

    t0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    customers = n // 10
    profile, inbound = [], []
    for c in range(customers):
        event = NewEvent(
            event_id=_u("link", c),
            tenant_id="bench",
            aggregate_type="customer",
            aggregate_id=_u("customer", c),
            payload=pe.IdentityLinked(
                customer_id=_u("customer", c),
                identity=pe.Identity(channel="whatsapp", address=f"1650{c:07d}"),
                evidence=pe.Evidence(rule="first_contact", actor="system"),
            ),
            occurred_at=t0,
            topic="",
            aggregate_version=2,
        )
        profile.append((event.aggregate_id.encode(), encode(event.to_envelope("profile", 2, t0))))
    for i in range(n):
        c = i % customers
        at = t0 + timedelta(seconds=i)
        msg = ge.MessageReceived(
            channel="whatsapp",
            channel_account_id="acc-1",
            provider_message_id=f"wamid.{i}",
            sender=ge.ChannelAddress(channel="whatsapp", address=f"1650{c:07d}"),
            content=ge.MessageContent(text=ge.TextContent(body=f"hello {i}, where is my cake?")),
        )
        msg.sent_at.FromDatetime(at.replace(tzinfo=None))
        event = NewEvent(
            event_id=_u("received", i),
            tenant_id="bench",
            aggregate_type="contact",
            aggregate_id=f"acc-1:1650{c:07d}",
            payload=msg,
            occurred_at=at,
            topic="",
        )
        inbound.append((event.aggregate_id.encode(), encode(event.to_envelope("gateway", 1, at))))
    return profile, inbound


async def run_projector(
    ctx: Context, bootstrap: str, schema: str, topics: list[str], handler_for: Any, expected: int
) -> dict[str, Any]:
    """Run one projector from the start of its topics until it applied `expected` events."""
    from parlay_conversation.readmodel import MIGRATIONS, ConversationReadModel
    from parlay_conversation.settings import ConversationSettings
    from parlay_kit.runtime import ServiceRuntime
    from parlay_kit.settings import KafkaSettings

    settings = ConversationSettings(
        database_url=ctx.options.database_url,
        db_schema=schema,
        kafka=KafkaSettings(bootstrap=bootstrap),
    )
    runtime = ServiceRuntime(settings, migrations=MIGRATIONS)
    await runtime.open()
    projector = runtime.add_projector("bench", topics, handler_for(ConversationReadModel(schema)))
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        deadline = time.monotonic() + 60
        while projector._consumer is None or not projector._consumer.assignment():
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise RuntimeError("the projector got no partitions in 60 s")
            await asyncio.sleep(0.002)
        window = CpuWindow({"bench": os.getpid()})
        window.start()
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while projector.stats.applied + projector.stats.duplicates < expected:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise RuntimeError(f"applied {projector.stats.applied} of {expected} in 600 s")
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - started
        cpu = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in window.stop().items()}
        return {
            "seconds": seconds,
            "rate": expected / seconds,
            "batches": projector.stats.batches,
            "dead_lettered": projector.stats.dead_lettered,
            "cpu": cpu,
        }
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await runtime.stop()


async def count(database_url: str, schema: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}"))
    finally:
        await conn.close()


@register("conversation-projection", TITLE, order=40)
async def run(ctx: Context) -> Result:
    from parlay_conversation.projections import Timeline, TimelineProjection
    from parlay_kit import topics

    result = Result("conversation-projection", TITLE)
    broker = await start_broker(ctx, "conv-projection")
    rebuild_schema = f"bench_{ctx.run_id}_conv_rebuild"
    timeline_schema = f"bench_{ctx.run_id}_conv_timeline"
    try:
        ctx.console.print(f"  producing {EVENTS:,} conversation events")
        records = await asyncio.to_thread(conversation_events, EVENTS)
        await produce(broker.bootstrap, topics.CONVERSATION, records)
        rebuild = await run_projector(
            ctx,
            broker.bootstrap,
            rebuild_schema,
            [topics.CONVERSATION],
            TimelineProjection,
            EVENTS,
        )
        messages = await count(ctx.options.database_url, rebuild_schema, "conversation_messages")
        expected_messages = (EVENTS // PER_CONVERSATION) * 11
        if messages != expected_messages or rebuild["dead_lettered"]:
            raise RuntimeError(
                f"rebuilt {messages} timeline rows (expected {expected_messages}), "
                f"{rebuild['dead_lettered']} dead-lettered"
            )
        result.add(
            "rebuild",
            "TimelineProjection (conversation topic -> read models)",
            round(rebuild["rate"]),
            "events/s",
            target=f">= {TARGET:,}",
            ok=rebuild["rate"] >= TARGET,
        )

        ctx.console.print(f"  producing {TIMELINE_MESSAGES:,} inbound messages (+ identity links)")
        profile, inbound = await asyncio.to_thread(timeline_inputs, TIMELINE_MESSAGES)
        await produce(broker.bootstrap, topics.PROFILE, profile)
        await produce(broker.bootstrap, topics.INBOUND, inbound)
        live = await run_projector(
            ctx,
            broker.bootstrap,
            timeline_schema,
            [topics.INBOUND, topics.PROFILE],
            lambda rm: Timeline(rm, topic=topics.CONVERSATION),
            len(profile) + len(inbound),
        )
        appended = await count(ctx.options.database_url, timeline_schema, "conversation_messages")
        if appended != TIMELINE_MESSAGES:
            raise RuntimeError(f"timeline appended {appended} of {TIMELINE_MESSAGES} messages")
        result.add(
            "timeline",
            "live Timeline (inbound + profile -> decisions, outbox, read models)",
            round(live["rate"]),
            "events/s",
        )
        result.details.update(
            {
                "rebuild": {k: v for k, v in rebuild.items() if k != "rate"}
                | {"events": EVENTS, "timeline_rows": messages},
                "timeline": {k: v for k, v in live.items() if k != "rate"}
                | {"events": len(profile) + len(inbound)},
            }
        )
    finally:
        if not ctx.options.keep:
            await drop_schemas(ctx.options.database_url, [rebuild_schema, timeline_schema])
    return result
