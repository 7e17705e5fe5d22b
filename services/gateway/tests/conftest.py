"""Gateway test fixtures: a real Tansu broker and a real Postgres, one fresh schema per gateway.

The root conftest's `kafka_bootstrap` / `database_url` are used when they exist; otherwise this
file starts its own Tansu (LocalBroker from the kit) and uses PARLAY_TEST_DATABASE_URL or the
machine's Postgres.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parlay_kit import topics
from parlay_kit.broker import LocalBroker, ensure_topics, free_port, run_coro_in_thread

sys.path.insert(0, str(Path(__file__).parent))

from gateway_testkit import RunningGateway, run_gateway  # noqa: E402

GATEWAY_TOPICS = [
    *topics.TOPICS_BY_SERVICE["gateway"],
    # The payment actions consume the payments topic (tests produce requests on it).
    topics.PAYMENTS,
    topics.dead_letter_topic("gateway"),
]


def _root_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return None


def start_broker() -> LocalBroker:
    broker = LocalBroker(port=free_port()).start_sync()
    run_coro_in_thread(lambda: ensure_topics(broker.bootstrap, GATEWAY_TOPICS, partitions=3))
    return broker


@pytest.fixture(scope="session")
def gw_kafka(request: pytest.FixtureRequest) -> Any:
    shared = _root_fixture(request, "kafka_bootstrap")
    if shared:
        run_coro_in_thread(lambda: ensure_topics(shared, GATEWAY_TOPICS, partitions=3))
        yield shared
        return
    broker = start_broker()
    try:
        yield broker.bootstrap
    finally:
        broker.stop_sync()


@pytest.fixture
def private_kafka() -> Any:
    """A broker of its own, for tests that leave poison on the log."""
    broker = start_broker()
    try:
        yield broker.bootstrap
    finally:
        broker.stop_sync()


@pytest.fixture(scope="session")
def gw_database_url(request: pytest.FixtureRequest) -> str:
    shared = _root_fixture(request, "database_url")
    return shared or os.environ.get(
        "PARLAY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )


@pytest.fixture(scope="session")
async def gateway(gw_kafka: str, gw_database_url: str) -> AsyncIterator[RunningGateway]:
    """One gateway for the session (tests isolate themselves with unique channel accounts and
    message ids). One per test would make each wait for the normalizer's consumer group to
    rebalance: ~5 s for a new group on Tansu, ~18 s when a previous member just left."""
    async with run_gateway(gw_kafka, gw_database_url) as running:
        yield running


@pytest.fixture(scope="module")
async def payments(gw_kafka: str, gw_database_url: str) -> AsyncIterator[Any]:
    """A gateway whose payment actions call the Stripe and Telegram stand-ins. One per module,
    not per session: every gateway on the shared broker also normalizes (and republishes) the
    others' webhooks, so one that outlives its tests adds duplicates to later modules' topics."""
    from payments_testkit import payments_env

    async with payments_env(gw_kafka, gw_database_url) as env:
        yield env
