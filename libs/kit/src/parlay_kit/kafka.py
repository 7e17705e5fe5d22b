"""Kafka clients with every delivery setting explicit (see KafkaSettings)."""

from __future__ import annotations

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.metadata import MetadataRequest

from parlay_kit.settings import KafkaSettings


def make_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id=client_id,
        acks=settings.acks if settings.acks != "all" else "all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_consumer(settings: KafkaSettings, group_id: str, client_id: str) -> AIOKafkaConsumer:
    # Offsets live in Postgres next to the read models, never in Kafka: no auto-commit.
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if settings.enable_idempotence else "read_uncommitted",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_records=settings.max_poll_records,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )


async def fetch_cluster_id(bootstrap: str) -> str:
    """The broker's cluster id. The local stack starts Tansu with a fresh id each time, so a
    stored offset or relay position tagged with another id belongs to a log that is gone."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node_id = next(iter(client.cluster.brokers())).nodeId
        response = await client.send(node_id, MetadataRequest([]))
        return str(response.to_object()["cluster_id"] or "")
    finally:
        await client.close()
