"""The payments topic alone rebuilds the read models exactly (what `parlay replay
payments.payments` does), and `parlay at`'s aggregate view folds a payment to the same state."""

from __future__ import annotations

import asyncio

import asyncpg

from parlay.payments.v1 import payments_service_pb2 as pb
from parlay_kit.analytics.registry import discover
from parlay_kit.db import create_pool, migrate
from parlay_kit.envelope import decode, unpack
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS
from parlay_kit.projector import Projector
from parlay_kit.settings import KafkaSettings
from parlay_kit.testing import unique_name
from parlay_payments import rebuild
from parlay_payments.migrations import MIGRATIONS
from parlay_payments.projections import PaymentsProjection
from parlay_payments.readmodel import PaymentsReadModel

TABLES = {"payments": "payment_id", "payment_refunds": "payment_id, seq"}


async def test_the_payments_topic_rebuilds_the_read_models(svc, database_url: str) -> None:
    # Some of everything: a refunded link payment, a flagged one, a cash payment refunded.
    tenant, stub = await svc.tenant()
    order_id = unique_name("ord")
    await svc.orders(
        svc.awaiting_payment(tenant, order_id),
        svc.awaiting_payment(tenant, order_id + "-cash", method="cash_on_delivery"),
        svc.awaiting_payment(tenant, order_id + "-tg", method="telegram"),
    )
    pid = svc.payment_id_of(tenant, order_id, 1)
    await svc.gateway(
        svc.action_completed(tenant, pid, "create_checkout_session", object_id="cs_" + order_id)
    )
    await svc.gateway(
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "checkout.session.completed",
            session="cs_" + order_id,
            intent="pi_" + order_id,
        ),
        svc.stripe_event(
            tenant, unique_name("evt"), "charge.refunded", intent="pi_" + order_id, refunded=100
        ),
    )
    refund = await stub.RefundPayment(
        pb.RefundPaymentRequest(payment_id=pid, amount_minor=400, idempotency_key="r")
    )
    await svc.gateway(
        svc.action_completed(
            tenant, pid, "create_refund", object_id="re_1", refund_id=refund.refund.refund_id
        )
    )
    cash = await stub.RecordCashPayment(
        pb.RecordCashPaymentRequest(
            order_id=order_id + "-cash",
            amount_minor=24950,
            currency="MXN",
            method="cash_on_delivery",
            idempotency_key="c",
        )
    )
    await stub.RefundPayment(
        pb.RefundPaymentRequest(payment_id=cash.payment.payment_id, idempotency_key="all")
    )
    await svc.wait_published()

    schema = unique_name("t")
    pool = await create_pool(database_url, schema, max_size=2)
    stop = asyncio.Event()
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
        projector = Projector(
            name="payments-rebuild",
            service="payments",
            topics=[svc.topics["payments"]],
            handler=PaymentsProjection(PaymentsReadModel(schema)),
            pool=pool,
            schema=schema,
            kafka=KafkaSettings(bootstrap=svc.bootstrap),
        )
        task = asyncio.create_task(projector.run(stop))
        await svc.wait_caught_up(projector, timeout=60)
        stop.set()
        await asyncio.wait_for(task, 30)
        for table, order in TABLES.items():
            live = await svc.pool.fetch(f"SELECT * FROM {svc.schema}.{table} ORDER BY {order}")
            rebuilt = await pool.fetch(f"SELECT * FROM {schema}.{table} ORDER BY {order}")
            assert len(live) > 0
            assert [dict(r) for r in rebuilt] == [dict(r) for r in live], table
    finally:
        stop.set()
        await pool.close()
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    # The aggregate view of `parlay at`: the same state as the read model.
    rows = await svc.pool.fetch(
        f"SELECT envelope FROM {svc.schema}.events WHERE aggregate_id = $1 "
        "ORDER BY aggregate_version",
        pid,
    )
    envelopes = [decode(r[0]) for r in rows]
    view = rebuild.fold_payment([(e, unpack(e)) for e in envelopes])
    payment = await svc.payment(tenant, pid)
    assert view is not None
    assert (view.status, view.refunded_minor, view.version) == (
        payment.status,
        payment.refunded_minor,
        payment.version,
    )
    assert view.status == "partially_refunded" and view.refunded_minor == 500


def test_registered_for_the_analyst_tools() -> None:
    registry = discover()
    assert "payments.payments" in registry.projections
    assert registry.aggregates["payment"].service == "payments"
