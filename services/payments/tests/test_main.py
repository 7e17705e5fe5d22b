"""The composition root wires what the docs promise: two projectors on the orders and inbound
topics, the gRPC servicer, the payments schema's migrations."""

from __future__ import annotations

import asyncpg

from parlay_kit import topics
from parlay_kit.settings import KafkaSettings
from parlay_kit.testing import unique_name
from parlay_payments.main import build
from parlay_payments.settings import PaymentsSettings


async def test_build_wires_projectors_and_grpc(database_url: str) -> None:
    assert (PaymentsSettings().service_name, PaymentsSettings().grpc_port) == ("payments", 50055)
    schema = unique_name("t")
    settings = PaymentsSettings(
        database_url=database_url, db_schema=schema, kafka=KafkaSettings(bootstrap="127.0.0.1:1")
    )
    runtime = await build(settings)
    try:
        assert [(p.name, p.topics) for p in runtime.projectors] == [
            ("order-payments", [topics.ORDERS]),
            ("provider-events", [topics.INBOUND]),
        ]
        assert [name for _, _, name in runtime._grpc] == ["parlay.payments.v1.PaymentsService"]
        assert runtime.pool is not None
        tables = {
            r[0]
            for r in await runtime.pool.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
        }
        assert {"payments", "payment_refunds", "payment_actions", "events"} <= tables
    finally:
        assert runtime.group_commit is not None and runtime.pool is not None
        await runtime.group_commit.close()
        await runtime.pool.close()
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
