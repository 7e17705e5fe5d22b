"""The outbox relay: publishes a service's stored events to Kafka, in store order.

Woken by LISTEN/NOTIFY (with a slow poll as a safety net), it reads events past the position it
last recorded, publishes them with acks=all, waits for every ack, then records the new position.
A crash between publish and record republishes a few events; consumers dedupe by event_id.
Only one relay per store is active (a session advisory lock), so store order is Kafka order.
Progress is tagged with the broker's cluster id: on a new, empty local broker the relay
republishes from the beginning, which is how the stores re-seed the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

import asyncpg
from aiokafka import AIOKafkaProducer

from parlay_kit.eventstore import lock_key, notify_channel
from parlay_kit.kafka import fetch_cluster_id, make_producer
from parlay_kit.settings import KafkaSettings
from parlay_kit.telemetry import EVENTS_PUBLISHED

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        schema: str,
        kafka: KafkaSettings,
        *,
        name: str = "outbox",
        batch_size: int = 2000,
        safety_poll_seconds: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._kafka = kafka
        self._name = name
        self._batch_size = batch_size
        self._safety_poll = safety_poll_seconds
        self._wakeup = asyncio.Event()
        self.published_position = 0
        self._published = asyncio.Condition()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set. Reconnects on errors; never drops an event."""
        while not stop.is_set():
            try:
                await self._run_once(stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay %s.%s failed; retrying in 1s", self._schema, self._name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def wait_published(self, position: int, timeout: float = 10.0) -> None:
        async with self._published:
            await asyncio.wait_for(
                self._published.wait_for(lambda: self.published_position >= position), timeout
            )

    async def _run_once(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        producer: AIOKafkaProducer | None = None
        try:
            # This session only writes relay_progress, and losing its last update in a crash
            # only republishes a few events (consumers dedupe, see the module docstring): no
            # need to wait for a WAL flush after every published batch. The events themselves
            # are written, durably, by other sessions.
            await conn.execute("SET synchronous_commit = off")
            await self._become_leader(conn, stop)
            if stop.is_set():
                return
            await conn.add_listener(notify_channel(self._schema), self._on_notify)
            cluster_id = await fetch_cluster_id(self._kafka.bootstrap)
            position = await self._load_position(conn, cluster_id)
            producer = make_producer(self._kafka, client_id=f"{self._schema}-relay")
            await producer.start()
            log.info("relay %s.%s publishing from position %d", self._schema, self._name, position)
            select = f"""SELECT position, topic, aggregate_id, event_id, event_type, envelope,
                    traceparent FROM {self._schema}.events
                WHERE position > $1 ORDER BY position LIMIT $2"""
            # After a published batch, the next read records how far we got in the same round
            # trip (a data-modifying CTE always runs): one round trip per batch, not two.
            record_and_select = f"""WITH progress AS (
                    INSERT INTO {self._schema}.relay_progress (relay, cluster_id, position)
                    VALUES ($3, $4, $1) ON CONFLICT (relay) DO UPDATE
                    SET cluster_id = $4, position = $1, updated_at = now())
                {select}"""
            recorded = True  # the loaded position needs no record
            try:
                while not stop.is_set():
                    self._wakeup.clear()
                    if recorded:
                        rows = await conn.fetch(select, position, self._batch_size)
                    else:
                        rows = await conn.fetch(
                            record_and_select, position, self._batch_size, self._name, cluster_id
                        )
                        recorded = True
                    if rows:
                        await self._publish(producer, rows)
                        position = rows[-1]["position"]
                        recorded = False
                        await self._advance(position)
                        continue
                    await self._advance(position)
                    waiter = asyncio.ensure_future(self._wakeup.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait(
                        {waiter, stopper},
                        timeout=self._safety_poll,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    waiter.cancel()
                    stopper.cancel()
            finally:
                if not recorded and not conn.is_closed():
                    # Stopping right after a batch: record it (best effort; if this fails, the
                    # batch is republished on start and consumers skip it).
                    with contextlib.suppress(Exception):
                        await self._record(conn, cluster_id, position)
        finally:
            if producer is not None:
                await producer.stop()
            await conn.close()

    async def _become_leader(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        key = lock_key(self._schema, f"relay:{self._name}")
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

    async def _load_position(self, conn: asyncpg.Connection, cluster_id: str) -> int:
        row = await conn.fetchrow(
            f"SELECT cluster_id, position FROM {self._schema}.relay_progress WHERE relay = $1",
            self._name,
        )
        if row is None:
            return 0
        if row["cluster_id"] != cluster_id:
            log.warning(
                "relay %s.%s: broker is a new log (cluster %s, was %s); republishing from the start",
                self._schema,
                self._name,
                cluster_id,
                row["cluster_id"],
            )
            return 0
        return int(row["position"])

    async def _publish(self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> None:
        acks = []
        for row in rows:
            headers = [
                ("ce_id", str(row["event_id"]).encode()),
                ("ce_type", row["event_type"].encode()),
            ]
            if row["traceparent"]:
                headers.append(("traceparent", row["traceparent"].encode()))
            acks.append(
                await producer.send(
                    row["topic"],
                    value=bytes(row["envelope"]),
                    key=row["aggregate_id"].encode(),
                    headers=headers,
                )
            )
        await asyncio.gather(*acks)
        for topic, count in Counter(row["topic"] for row in rows).items():
            EVENTS_PUBLISHED.labels(self._schema, topic).inc(count)

    async def _record(self, conn: asyncpg.Connection, cluster_id: str, position: int) -> None:
        await conn.execute(
            f"""INSERT INTO {self._schema}.relay_progress (relay, cluster_id, position)
                VALUES ($1, $2, $3) ON CONFLICT (relay) DO UPDATE
                SET cluster_id = $2, position = $3, updated_at = now()""",
            self._name,
            cluster_id,
            position,
        )

    def _on_notify(self, *_args: object) -> None:
        self._wakeup.set()

    async def _advance(self, position: int) -> None:
        async with self._published:
            self.published_position = position
            self._published.notify_all()
