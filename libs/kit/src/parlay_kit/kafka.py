"""Kafka clients with every delivery setting explicit (see KafkaSettings)."""

from __future__ import annotations

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
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
        max_request_size=settings.max_request_size,
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


async def log_end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], *, probe_timeout_ms: int = 500
) -> dict[TopicPartition, int]:
    """The offset after each partition's last record.

    Tansu 0.6 (the local broker) answers ListOffsets(latest) with the base offset of the last
    record batch + 1, not the offset after its last record, so a batch of three records reports
    1. This reads from that point to find the real end; on Apache Kafka the reported value is
    already right and the probe finds nothing more. The consumer must have `partitions`
    assigned; their positions are left at the end.
    """
    reported = await consumer.end_offsets(partitions)
    ends: dict[TopicPartition, int] = {}
    for tp in partitions:
        end = reported[tp]
        if end == 0:
            ends[tp] = 0
            continue
        consumer.seek(tp, end - 1)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=probe_timeout_ms)
            records = batch.get(tp, [])
            if not records:
                break
            end = max(end, records[-1].offset + 1)
        ends[tp] = end
    return ends
