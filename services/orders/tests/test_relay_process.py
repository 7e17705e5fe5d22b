"""A relay-only process, as the `<service>-relay` Deployment runs it (PARLAY_ROLES=grpc,relay
there): it publishes the store to Kafka and serves /metrics on PARLAY_METRICS_PORT, which is
what Prometheus scrapes on every pod (deploy/k8s/components/prometheus)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from parlay.orders.v1 import orders_events_pb2 as oe
from parlay_kit import topics
from parlay_kit.broker import ensure_topics, free_port
from parlay_kit.envelope import NewEvent, new_event_id
from parlay_kit.eventstore import EventStore
from parlay_kit.testing import unique_name


def published(metrics: str, schema: str) -> float:
    pattern = (
        rf'^parlay_events_published_total\{{service="{schema}",topic="{topics.ORDERS}"\}} (\S+)$'
    )
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_relay_only_process_publishes_and_serves_metrics(
    database_url: str, kafka_bootstrap: str
) -> None:
    await ensure_topics(kafka_bootstrap, [topics.ORDERS], topics.DEFAULT_PARTITIONS)
    schema = unique_name("t")
    metrics_port = free_port()
    env = {
        **os.environ,
        "PARLAY_SERVICE_NAME": "orders",
        "PARLAY_DB_SCHEMA": schema,
        "PARLAY_DATABASE_URL": database_url,
        "PARLAY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PARLAY_GRPC_PORT": str(free_port()),
        "PARLAY_ROLES": "relay",
        "PARLAY_METRICS_PORT": str(metrics_port),
        "PARLAY_METRICS_HOST": "127.0.0.1",
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "parlay_orders", env=env)
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        async with httpx.AsyncClient() as http:

            async def scrape() -> str:
                deadline = time.monotonic() + 60
                while True:
                    assert proc.returncode is None, "the relay process exited"
                    try:
                        response = await http.get(url)
                        if response.status_code == 200:
                            return response.text
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "no /metrics on PARLAY_METRICS_PORT"
                    await asyncio.sleep(0.1)

            assert published(await scrape(), schema) == 0
            conn = await asyncpg.connect(database_url)
            try:
                # /metrics can answer before the migrations have run: wait for the store.
                while not await conn.fetchval("SELECT to_regclass($1)", f"{schema}.events"):
                    await asyncio.sleep(0.1)
                async with conn.transaction():
                    await EventStore(schema, source="orders").append(
                        conn,
                        [
                            NewEvent(
                                event_id=new_event_id(),
                                tenant_id="t1",
                                aggregate_type="product",
                                aggregate_id=f"sku-{uuid.uuid4().hex[:6]}",
                                payload=oe.ProductUpserted(sku="sku-1", name="Tacos"),
                                occurred_at=datetime.now(UTC),
                                topic=topics.ORDERS,
                            )
                        ],
                    )
            finally:
                await conn.close()
            deadline = time.monotonic() + 30
            while published(await scrape(), schema) < 1:
                assert time.monotonic() < deadline, "the relay did not publish the event"
                await asyncio.sleep(0.2)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
