"""Analyst tools: projection rebuild rate and Parquet export rate, each next to the raw consume
rate of the same topic measured in the same run.

Setup (not timed): a fresh Tansu broker; `EVENTS` conversation events — conversations opened and
inbound messages appended, keyed by conversation as the conversation service writes them — are
produced to `parlay.conversation.v1`.

- raw consume: the whole topic read with `assign()` (no group), records counted, nothing decoded:
  the ceiling any reader of this broker has on this machine.
- replay: `parlay replay conversation.timeline` (`parlay_kit.replay.Replayer`, the code the CLI
  runs) from zero into a fresh schema: decode + upcast, the projection's batched `handle_batch`
  (set-based upserts of conversations and timeline rows), offsets stored in the same
  transaction. Target >= 50,000 events/s.
- export: `parlay events export` of the same topic to Parquet (`parlay_kit.analytics.export`):
  decode, payload to JSON, columnar write (zstd). Target >= 30,000 events/s.

All in this process, one after the other (nothing else runs), against the Postgres of
--database-url; schemas are dropped afterwards unless --keep.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.core import Context, Result, register
from bench.procs import CpuWindow
from bench.projections import produce
from bench.stack import drop_schemas, start_broker

EVENTS = 200_000
MESSAGES_PER_CONVERSATION = 20
REPLAY_TARGET = 50_000
EXPORT_TARGET = 30_000


def _conversation_events(n: int) -> list[tuple[bytes, bytes]]:
    """(key, encoded envelope) of n conversation events, as the conversation service emits."""
    from parlay.conversation.v1 import conversation_events_pb2 as ce
    from parlay.gateway.v1 import gateway_events_pb2 as ge
    from parlay_kit.envelope import NewEvent, encode

    out: list[tuple[bytes, bytes]] = []
    t0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    per = MESSAGES_PER_CONVERSATION + 1
    for c in range(-(-n // per)):
        conversation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-conversation-{c}"))
        customer_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-customer-{c}"))
        channel = ("whatsapp", "telegram", "messenger")[c % 3]
        for version in range(1, per + 1):
            if len(out) >= n:
                break
            at = t0 + timedelta(minutes=c % 1440, seconds=version)
            payload: Any
            if version == 1:
                payload = ce.ConversationOpened(
                    conversation_id=conversation_id,
                    customer_id=customer_id,
                    channel=channel,
                    channel_account_id=f"acc-{channel}",
                )
            else:
                source = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-msg-{c}-{version}"))
                text = f"message {version} of conversation {c}: do you ship to Lisbon?"
                payload = ce.MessageAppended(
                    conversation_id=conversation_id,
                    message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, source)),
                    direction=ce.MESSAGE_DIRECTION_INBOUND,
                    channel=channel,
                    channel_account_id=f"acc-{channel}",
                    provider_message_id=f"wamid.bench.{c}.{version}",
                    content=ge.MessageContent(text=ge.TextContent(body=text)),
                    text=text,
                    source_event_id=source,
                )
                payload.sent_at.FromDatetime(at.replace(tzinfo=None))
            event = NewEvent(
                event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-event-{c}-{version}")),
                tenant_id="bench",
                aggregate_type="conversation",
                aggregate_id=conversation_id,
                payload=payload,
                occurred_at=at,
                topic="",
                aggregate_version=version,
            )
            envelope = event.to_envelope("conversation", version, at)
            out.append((conversation_id.encode(), encode(envelope)))
    return out


async def raw_consume(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records and seconds to read the whole topic, decoding nothing."""
    from parlay_kit.analytics.logreader import (
        make_consumer,
        read_ranges,
        resolve_ranges,
        topic_partitions,
    )

    consumer = make_consumer(bootstrap)
    await consumer.start()
    try:
        ranges = await resolve_ranges(consumer, await topic_partitions(consumer, [topic]))
        started = time.perf_counter()
        n = 0
        async for batch in read_ranges(consumer, ranges):
            n += len(batch)
        return n, time.perf_counter() - started
    finally:
        await consumer.stop()


async def _dataset(ctx: Context, name: str) -> tuple[Any, str, int, dict[str, Any]]:
    from parlay_kit import topics

    broker = await start_broker(ctx, name)
    ctx.console.print(f"  producing {EVENTS:,} conversation events to {topics.CONVERSATION}")
    records = await asyncio.to_thread(_conversation_events, EVENTS)
    seconds = await produce(broker.bootstrap, topics.CONVERSATION, records)
    n, raw_seconds = await raw_consume(broker.bootstrap, topics.CONVERSATION)
    if n != EVENTS:
        raise RuntimeError(f"the topic holds {n} records, {EVENTS} were produced")
    details = {"events": EVENTS, "produce_seconds": round(seconds, 2)}
    return broker, topics.CONVERSATION, n, details | {"raw_seconds": round(raw_seconds, 3)}


class EventCounts:
    """The smallest real projection: per conversation, how many events and the last version —
    one set-based upsert per batch. Its rate is what the replay machinery itself (consume,
    decode, upcast, batch, store offsets in the same transaction) costs."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    async def handle(self, uow: Any, event: Any) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: Any, events: Any) -> None:
        counts: dict[str, list[int]] = {}
        for e in events:
            c = counts.setdefault(e.envelope.aggregate_id, [0, 0])
            c[0] += 1
            c[1] = max(c[1], e.envelope.aggregate_version)
        await uow.conn.execute(
            f"""INSERT INTO {self.schema}.event_counts (aggregate_id, events, last_version)
                SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                ON CONFLICT (aggregate_id) DO UPDATE
                SET events = event_counts.events + EXCLUDED.events,
                    last_version = greatest(event_counts.last_version, EXCLUDED.last_version)""",
            list(counts),
            [v[0] for v in counts.values()],
            [v[1] for v in counts.values()],
        )


def _counts_projection() -> Any:
    from parlay_kit import topics
    from parlay_kit.analytics.registry import Projection
    from parlay_kit.db import Migration

    return Projection(
        name="bench.event_counts",
        service="bench",
        topics=(topics.CONVERSATION,),
        handler=EventCounts,
        migrations=[
            Migration(
                "bench_0001",
                """CREATE TABLE {schema}.event_counts (aggregate_id text PRIMARY KEY,
                       events bigint NOT NULL, last_version bigint NOT NULL)""",
            )
        ],
        tables=("event_counts",),
    )


def _parquet_facts(files: list[str]) -> tuple[int, int]:
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return rows, sum(Path(f).stat().st_size for f in files)


def _cpu(window: CpuWindow) -> dict[str, Any]:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in window.stop().items()}


@register("replay", "Projection rebuild rate (parlay replay) vs raw consume", order=30)
async def run_replay(ctx: Context) -> Result:
    import os

    from parlay_kit.analytics.registry import discover
    from parlay_kit.replay import Replayer

    result = Result("replay", "Projection rebuild rate (parlay replay) vs raw consume")
    broker, topic, n, details = await _dataset(ctx, "replay")
    raw_rate = n / details["raw_seconds"]
    live_schema = f"bench_{ctx.run_id}_conversation"

    async def rebuild(projection: Any, workers: int = 1) -> tuple[Any, dict[str, Any], Replayer]:
        replayer = Replayer(
            projection,
            database_url=ctx.options.database_url,
            bootstrap=broker.bootstrap,
            live_schema=live_schema,
            topics=[topic],
        )
        window = CpuWindow({"bench": os.getpid()})
        window.start()
        stats = await replayer.run(workers=workers)
        cpu = _cpu(window)
        if stats.records != n or stats.errors:
            raise RuntimeError(
                f"{projection.name}: read {stats.records} of {n} records, {stats.errors} errors"
            )
        return stats, cpu, replayer

    schemas: list[str] = []
    try:
        floor, floor_cpu, r0 = await rebuild(_counts_projection())
        schemas.append(r0.work_schema)
        floor2, _cpu2, _r = await rebuild(_counts_projection(), workers=2)
        timeline = discover().projections["conversation.timeline"]
        stats, cpu, replayer = await rebuild(timeline)
        schemas.append(replayer.work_schema)
        conn = await asyncpg.connect(ctx.options.database_url)
        try:
            rows = await conn.fetchval(
                f"SELECT count(*) FROM {replayer.work_schema}.conversation_messages"
            )
        finally:
            await conn.close()
        if rows != n - -(-n // (MESSAGES_PER_CONVERSATION + 1)):
            raise RuntimeError(f"rebuilt {rows} timeline rows")
        stats2, cpu2, replayer = await rebuild(timeline, workers=2)
        conn = await asyncpg.connect(ctx.options.database_url)
        try:
            rows = await conn.fetchval(
                f"SELECT count(*) FROM {replayer.work_schema}.conversation_messages"
            )
        finally:
            await conn.close()
    finally:
        if not ctx.options.keep:
            await drop_schemas(ctx.options.database_url, schemas)
    expected_rows = n - -(-n // (MESSAGES_PER_CONVERSATION + 1))
    if rows != expected_rows:
        raise RuntimeError(f"rebuilt {rows} timeline rows, expected {expected_rows}")
    rate = stats.rate
    result.add("raw", "raw consume (assign, no decode)", round(raw_rate), "events/s")
    result.add(
        "machinery",
        "replay machinery (1 batched upsert/batch)",
        round(floor.rate),
        "events/s",
        target=f">= {REPLAY_TARGET:,}",
        ok=floor.rate >= REPLAY_TARGET,
    )
    result.add(
        "machinery2",
        "replay machinery, --workers 2",
        round(floor2.rate),
        "events/s",
        target=f">= {REPLAY_TARGET:,}",
        ok=floor2.rate >= REPLAY_TARGET,
    )
    result.add(
        "replay",
        "rebuild conversation.timeline",
        round(rate),
        "events/s",
        target=f">= {REPLAY_TARGET:,}",
        ok=rate >= REPLAY_TARGET,
    )
    result.add(
        "replay2",
        "rebuild conversation.timeline, --workers 2",
        round(stats2.rate),
        "events/s",
        target=f">= {REPLAY_TARGET:,}",
        ok=stats2.rate >= REPLAY_TARGET,
    )
    result.add("share", "rebuild / raw consume", round(100 * rate / raw_rate, 1), "%", fmt=".1f")
    result.add("events", "events replayed", stats.records)
    result.details.update(
        details
        | {
            "replay_seconds": round(stats.seconds, 3),
            "batches": stats.batches,
            "timeline_rows": rows,
            "cpu": cpu,
            "machinery_seconds": round(floor.seconds, 3),
            "machinery_workers2_seconds": round(floor2.seconds, 3),
            "replay_workers2_seconds": round(stats2.seconds, 3),
            "replay_workers2_cpu": cpu2,
            "machinery_cpu": floor_cpu,
        }
    )
    return result


@register("export", "Parquet export rate (parlay events export) vs raw consume", order=31)
async def run_export(ctx: Context) -> Result:
    import os

    from parlay_kit.analytics.export import export

    result = Result("export", "Parquet export rate (parlay events export) vs raw consume")
    broker, topic, n, details = await _dataset(ctx, "export")
    raw_rate = n / details["raw_seconds"]
    out = Path(tempfile.mkdtemp(prefix="parlay-bench-export-"))
    window = CpuWindow({"bench": os.getpid()})
    window.start()
    try:
        stats = await export(broker.bootstrap, [topic], out / "export")
        cpu = _cpu(window)
        rows, size = _parquet_facts(stats.files)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if stats.records != n or rows != n or stats.errors:
        raise RuntimeError(f"exported {stats.records} ({rows} rows) of {n}, {stats.errors} errors")
    rate = stats.rate
    result.add("raw", "raw consume (assign, no decode)", round(raw_rate), "events/s")
    result.add(
        "export",
        "export to Parquet (zstd)",
        round(rate),
        "events/s",
        target=f">= {EXPORT_TARGET:,}",
        ok=rate >= EXPORT_TARGET,
    )
    result.add("share", "export / raw consume", round(100 * rate / raw_rate, 1), "%", fmt=".1f")
    result.add("bytes", "Parquet bytes per event", round(size / n, 1), "B", fmt=".1f")
    result.details.update(
        details | {"export_seconds": round(stats.seconds, 3), "files": len(stats.files), "cpu": cpu}
    )
    return result
