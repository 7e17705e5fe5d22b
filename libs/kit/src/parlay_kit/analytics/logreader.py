"""Reading ranges of the log without a consumer group.

Analyst tools (export, tail, replay) read partitions they `assign()` themselves: no group join
(Tansu takes seconds per join), no committed offsets, nothing that disturbs the services'
consumers. A range is [start, end) per partition, resolved from offsets or from times
(`offsets_for_times`, i.e. the Kafka record timestamps, which the relay sets when it publishes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord


@dataclass
class PartitionRange:
    topic: str
    partition: int
    start: int
    end: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def make_consumer(bootstrap: str, *, max_records: int = 10_000) -> AIOKafkaConsumer:
    """A group-less consumer tuned for reading whole ranges fast."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_wait_ms=100,
        client_id="parlay-analytics",
    )


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str], timeout: float = 15.0
) -> list[TopicPartition]:
    """Every partition of the topics (waits for metadata; raises LookupError if a topic
    does not exist)."""
    out: list[TopicPartition] = []
    for topic in topics:
        deadline = time.monotonic() + timeout
        ids = consumer.partitions_for_topic(topic)
        while not ids:
            if time.monotonic() > deadline:
                raise LookupError(f"topic {topic!r} does not exist (or has no partitions)")
            await consumer._client.force_metadata_update()  # noqa: SLF001
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                await asyncio.sleep(0.1)
        out += [TopicPartition(topic, p) for p in sorted(ids)]
    return out


async def list_topics(consumer: AIOKafkaConsumer) -> list[str]:
    return sorted(await consumer.topics())


async def end_offsets(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], timeout: float = 15.0
) -> dict[TopicPartition, int]:
    """The true end (high watermark) of each partition.

    ListOffsets(latest) is not enough on the local broker: Tansu 0.6 (memory engine) answers
    with the base offset of the partition's last record *batch* + 1, so a topic written in
    batches looks shorter than it is. The high watermark of a Fetch response is right, so each
    non-empty partition is probed with one fetch from just below the reported end. With real
    Kafka the probe confirms what ListOffsets said. Changes the consumer's assignment.
    """
    tps = list(tps)
    if not tps:
        return {}
    reported = await consumer.end_offsets(tps)
    begin = await consumer.beginning_offsets(tps)
    ends = dict(reported)
    probe = [tp for tp in tps if reported[tp] > begin[tp]]
    if not probe:
        return ends
    consumer.assign(probe)
    for tp in probe:
        consumer.seek(tp, reported[tp] - 1)
    pending = set(probe)
    deadline = time.monotonic() + timeout
    while pending:
        await consumer.getmany(*pending, timeout_ms=100, max_records=1)
        for tp in list(pending):
            hw = consumer.highwater(tp)
            if hw is not None:
                ends[tp] = max(reported[tp], hw)
                pending.discard(tp)
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"no fetch response for {sorted(pending)}")
    return ends


async def _offsets_at(
    consumer: AIOKafkaConsumer,
    tps: Sequence[TopicPartition],
    when: datetime,
    fallback: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """An offset at or before the first record whose timestamp is >= when (the broker may
    answer with the start of the record batch); `fallback` when there is none."""
    ms = int(when.timestamp() * 1000)
    found = await consumer.offsets_for_times({tp: ms for tp in tps})
    return {tp: (found[tp].offset if found.get(tp) is not None else fallback[tp]) for tp in tps}


async def resolve_ranges(
    consumer: AIOKafkaConsumer,
    tps: Sequence[TopicPartition],
    *,
    from_offset: int | None = None,
    to_offset: int | None = None,
    since: datetime | None = None,
    starts: dict[tuple[str, int], int] | None = None,
) -> list[PartitionRange]:
    """[start, end) per partition. Offsets apply to every partition; `since` is resolved with
    offsets_for_times (reading then drops the few earlier records of the first batch: pass the
    same bounds to read_ranges); `starts` (e.g. resume positions) wins for the start. Times
    bound what is *read* (read_ranges' since/until), not the range, which ends at the end."""
    if not tps:
        return []
    begin = await consumer.beginning_offsets(list(tps))
    end = await end_offsets(consumer, tps)
    start_at = dict(begin)
    if since is not None:
        start_at = await _offsets_at(consumer, tps, since, end)
    ranges = []
    for tp in tps:
        s = start_at[tp]
        e = end[tp]
        if from_offset is not None:
            s = max(s, from_offset)
        if to_offset is not None:
            e = min(e, to_offset)
        if starts is not None and (tp.topic, tp.partition) in starts:
            s = starts[(tp.topic, tp.partition)]
        s = max(s, begin[tp])
        ranges.append(PartitionRange(tp.topic, tp.partition, s, max(s, e)))
    return ranges


async def read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: Sequence[PartitionRange],
    *,
    max_records: int = 10_000,
    idle_timeout: float = 30.0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yield batches of records until every range is read to its end (records at or past a
    range's end are dropped). With `since`/`until`, only records whose timestamp is in
    [since, until) are yielded, and a partition stops at its first record at or after `until`
    (record timestamps of a Parlay topic increase: one relay publishes each store in order).
    Raises TimeoutError if the broker delivers nothing for `idle_timeout` seconds while
    records are still expected."""
    todo = {r.tp: r for r in ranges if r.size > 0}
    if not todo:
        return
    since_ms = int(since.timestamp() * 1000) if since is not None else None
    until_ms = int(until.timestamp() * 1000) if until is not None else None
    consumer.assign(list(todo))
    for tp, r in todo.items():
        consumer.seek(tp, r.start)
    last_progress = time.monotonic()
    while todo:
        fetched = await consumer.getmany(*todo.keys(), timeout_ms=500, max_records=max_records)
        batch: list[ConsumerRecord] = []
        got_any = False
        for tp, records in fetched.items():
            wanted = todo.get(tp)
            if wanted is None or not records:
                continue
            got_any = True
            done = records[-1].offset >= wanted.end - 1
            if records[-1].offset >= wanted.end:
                records = [rec for rec in records if rec.offset < wanted.end]
            if since_ms is not None:
                records = [rec for rec in records if rec.timestamp >= since_ms]
            if until_ms is not None and records and records[-1].timestamp >= until_ms:
                records = [rec for rec in records if rec.timestamp < until_ms]
                done = True
            batch.extend(records)
            if done:
                del todo[tp]
                consumer.pause(tp)
        if got_any:
            last_progress = time.monotonic()
        if batch:
            yield batch
        elif todo and not got_any:
            # Compacted/transactional gaps: the position may pass the end without a record.
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp].end:
                    del todo[tp]
                    consumer.pause(tp)
            if todo and time.monotonic() - last_progress > idle_timeout:
                missing = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in todo)
                raise TimeoutError(f"no records from {missing} for {idle_timeout:.0f}s")
