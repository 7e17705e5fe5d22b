"""What the projection benchmarks share: fill a topic fast, time a raw read of it, a handler that
does nothing (the kit projector's ceiling), and a timed run of the real kit Projector."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    """Send (key, value) records, 20,000 in flight at most; seconds it took."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, topic: str | Sequence[str], expected: int) -> float:
    """Seconds to read the whole topic(s) with assign() (no group), decoding nothing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        topics = [topic] if isinstance(topic, str) else list(topic)
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        started = time.perf_counter()
        deadline = started + 300
        n = 0
        while n < expected and time.perf_counter() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                n += len(batch)
        seconds = time.perf_counter() - started
        if n != expected:
            raise RuntimeError(f"read {n} of the {expected} records produced")
        return seconds
    finally:
        await consumer.stop()


class NoOpHandler:
    """Applies nothing: the projector's own cost (fetch, decode, dedupe, offsets)."""

    async def handle(self, uow: Any, event: Any) -> None:
        return None

    async def handle_batch(self, uow: Any, events: Any) -> None:
        return None


async def time_projector(
    ctx: Any,
    bootstrap: str,
    topic: str,
    expected: int,
    schema: str,
    *,
    name: str,
    service: str,
    handler: Any,
    migrations: Sequence[Any],
    counts: Callable[[Any, str], Awaitable[dict[str, Any]]] | None = None,
) -> tuple[float, dict[str, Any], dict[str, Any] | None]:
    """Run the kit's real Projector with `handler` over `topic` on a fresh `schema` until it has
    applied `expected` events. Returns the seconds from its first fetch to the commit that stored
    the last offset, details (batches, CPU), and `counts(conn, schema)` of the result."""
    from bench.procs import CpuWindow
    from parlay_kit.db import create_pool, migrate
    from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS
    from parlay_kit.projector import Projector
    from parlay_kit.settings import KafkaSettings

    class TimedProjector(Projector):
        """Times from the first fetch to the commit that stores the last offset."""

        first: float | None = None
        last: float | None = None
        seen = 0
        done: asyncio.Event

        async def _process(self, batch: Any) -> None:
            if self.first is None:
                self.first = time.perf_counter()
            await super()._process(batch)
            self.seen += len(batch.records)
            if self.seen >= expected:
                self.last = time.perf_counter()
                self.done.set()

    pool = await create_pool(ctx.options.database_url, schema, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *migrations])
        projector = TimedProjector(
            name=name,
            service=service,
            topics=[topic],
            handler=handler,
            pool=pool,
            schema=schema,
            kafka=KafkaSettings(bootstrap=bootstrap),
        )
        projector.done = asyncio.Event()
        stop = asyncio.Event()
        window = CpuWindow({"bench": os.getpid()})
        window.start()
        task = asyncio.create_task(projector.run(stop))
        try:
            waiter = asyncio.create_task(projector.done.wait())
            finished, _ = await asyncio.wait(
                {task, waiter}, timeout=600, return_when="FIRST_COMPLETED"
            )
            if waiter not in finished:
                waiter.cancel()
                if task in finished:
                    task.result()  # raises what stopped the projector
                raise TimeoutError(f"the projector applied {projector.seen} of {expected}")
            cpu = dict(window.stop())
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert projector.first is not None and projector.last is not None
        seconds = projector.last - projector.first
        stats = projector.stats
        if stats.applied != expected or stats.dead_lettered:
            raise RuntimeError(
                f"applied {stats.applied} of {expected}, {stats.dead_lettered} dead-lettered"
            )
        result = None
        if counts is not None:
            async with pool.acquire() as connection:
                result = await counts(connection, schema)
        details = {"batches": stats.batches, "cpu": cpu, "seconds": round(seconds, 3)}
        return seconds, details, result
    finally:
        await pool.close()
