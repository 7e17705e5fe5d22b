"""Payments projection throughput: the payments read model folded from parlay.payments.v1 by
`PaymentsProjection` (what the live read model is, and what `parlay replay payments.payments`
runs), next to the raw consume rate and the no-op projector ceiling measured in the same run;
and the payments service's decisions (`PaymentsProcess`) on the order and gateway traffic that
produced those events.

Setup (not timed): a fresh Tansu broker and private topics (6 partitions, like the local
stack's), filled as the other services fill them for `ORDERS` payment-link orders of 20
tenants:

1. orders:    OrderAwaitingPayment, keyed by order id (the orders relay);
2. actions:   the gateway's ChannelPaymentActionCompleted create_checkout_session (ok) for each
              payment, keyed "payment-actions:<account>";
3. provider:  Stripe webhooks as the gateway normalizes them, keyed "stripe:<account>":
              checkout.session.completed (paid) and payment_intent.succeeded for every payment
              (the same capture reported twice: the second decides nothing), and charge.refunded
              (a dashboard refund to reconcile) for one payment in five.

Decisions (timed per phase, phases in their causal order: the customer pays after the link was
made): the kit's `Projector` (consumer group, decode, dedupe by event id, offsets in the same
transaction) running `PaymentsProcess` into a fresh schema — locked set-based load of the
payments a batch touches, pure decisions, every decided event appended to the store (the outbox)
with its exact version, read model upserted set-based. The store's events are then published,
keyed by payment id in store order, as the relay publishes them.

Read model (the headline figure): the same `Projector` running `PaymentsProjection` over that
payments topic into another fresh schema (self-deduplicating by aggregate version, set-based
load and upsert), timed from the first fetch to the commit that stores the last offset, next to
a no-op handler on the same topic. Target >= 20,000 events/s.

Checked afterwards: every payment is captured once, one in five holds its refund, the store
holds exactly the events the decisions must produce, and the folded read model equals the live
one column for column (an md5 over every row).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench.core import Context, Result, register
from bench.procs import CpuWindow
from bench.projections import NoOpHandler, produce, raw_consume
from bench.stack import drop_schemas, start_broker

TITLE = "Payments projection (PaymentsProcess, batched) vs raw consume"
ORDERS = 40_000
TENANTS = 20
TARGET = 20_000
PARTITIONS = 6
PHASES = ("orders", "actions", "provider")


def _traffic(n_orders: int) -> dict[str, list[tuple[bytes, bytes]]]:
    """(key, encoded envelope) per phase, as the orders service and the gateway publish them."""
    from datetime import UTC, datetime, timedelta

    from parlay.gateway.v1 import gateway_events_pb2 as ge
    from parlay.orders.v1 import orders_events_pb2 as oe
    from parlay_kit.envelope import NewEvent, deterministic_event_id, encode
    from parlay_payments.projections import payment_id_of

    t0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
    out: dict[str, list[tuple[bytes, bytes]]] = {p: [] for p in PHASES}

    def add(phase: str, source: str, event: NewEvent) -> None:
        envelope = event.to_envelope(source, 1, event.occurred_at)
        out[phase].append((event.aggregate_id.encode(), encode(envelope)))

    for i in range(n_orders):
        tenant = f"bench-{i % TENANTS}"
        account = f"acct-{i % TENANTS}"
        order_id = f"ord-{i:07d}"
        at = t0 + timedelta(milliseconds=i)
        amount = 1000 + (i % 50) * 100
        pid = payment_id_of(tenant, order_id, 1)
        add(
            "orders",
            "orders",
            NewEvent(
                event_id=deterministic_event_id("bench-order", order_id),
                tenant_id=tenant,
                aggregate_type="order",
                aggregate_id=order_id,
                payload=oe.OrderAwaitingPayment(
                    order_id=order_id,
                    customer_id=f"cus-{i}",
                    conversation_id=f"conv-{i}",
                    amount_minor=amount,
                    currency="MXN",
                    payment_method="payment_link",
                    attempt=1,
                    channel="whatsapp",
                    channel_account_id="wa-1",
                    address=f"52155{i:07d}",
                    summary="1 x Tacos",
                ),
                occurred_at=at,
                topic="",
            ),
        )
        session, intent = f"cs_{i:07d}", f"pi_{i:07d}"
        action = ge.ChannelPaymentActionCompleted(
            channel="stripe",
            channel_account_id=account,
            action="create_checkout_session",
            request_event_id=deterministic_event_id("bench-req", pid),
            payment_id=pid,
            ok=True,
            provider_object_id=session,
            checkout_url=f"https://checkout.stripe.com/c/pay/{session}",
            amount_minor=amount,
            currency="MXN",
            attempts=1,
        )
        action.expires_at.FromDatetime(at + timedelta(hours=24))
        add(
            "actions",
            "gateway",
            NewEvent(
                event_id=deterministic_event_id("bench-action", pid),
                tenant_id=tenant,
                aggregate_type="payment_actions",
                aggregate_id=f"payment-actions:{account}",
                payload=action,
                occurred_at=at,
                topic="",
            ),
        )
        webhooks = [
            ("checkout.session.completed", "checkout.session", session, "paid", 0),
            ("payment_intent.succeeded", "payment_intent", intent, "succeeded", 0),
        ]
        if i % 5 == 0:
            webhooks.append(("charge.refunded", "charge", f"ch_{i:07d}", "succeeded", 500))
        for n, (event_type, object_type, object_id, status, refunded) in enumerate(webhooks):
            evt = f"evt_{i:07d}_{n}"
            add(
                "provider",
                "gateway",
                NewEvent(
                    event_id=deterministic_event_id("stripe", account, evt),
                    tenant_id=tenant,
                    aggregate_type="payment_provider",
                    aggregate_id=f"stripe:{account}",
                    payload=ge.PaymentProviderEventReceived(
                        provider="stripe",
                        channel_account_id=account,
                        provider_event_id=evt,
                        event_type=event_type,
                        object_type=object_type,
                        object_id=object_id,
                        checkout_session_id=session if object_type == "checkout.session" else "",
                        payment_intent_id=intent,
                        metadata={"payment_id": pid, "order_id": order_id, "tenant_id": tenant},
                        amount_minor=amount,
                        amount_refunded_minor=refunded,
                        currency="MXN",
                        status=status,
                    ),
                    occurred_at=at + timedelta(minutes=5, seconds=n),
                    topic="",
                ),
            )
    return out


async def _timed_projection(
    bootstrap: str,
    topic: str,
    expected: int,
    pool: Any,
    schema: str,
    name: str,
    handler: Any,
    *,
    emits: bool,
) -> tuple[float, int]:
    """Seconds from the first fetch to the commit that stores the last offset, and batches."""
    from parlay_kit.eventstore import EventStore
    from parlay_kit.projector import Projector
    from parlay_kit.settings import KafkaSettings

    class TimedProjector(Projector):
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

    projector = TimedProjector(
        name=name,
        service="payments",
        topics=[topic],
        handler=handler,
        pool=pool,
        schema=schema,
        kafka=KafkaSettings(bootstrap=bootstrap),
        store=EventStore(schema, "payments") if emits else None,
    )
    projector.done = asyncio.Event()
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        waiter = asyncio.create_task(projector.done.wait())
        finished, _ = await asyncio.wait({task, waiter}, timeout=600, return_when="FIRST_COMPLETED")
        if waiter not in finished:
            waiter.cancel()
            if task in finished:
                task.result()
            raise TimeoutError(f"{name}: applied {projector.seen} of {expected}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert projector.first is not None and projector.last is not None
    stats = projector.stats
    if stats.applied + stats.duplicates != expected or stats.dead_lettered:
        raise RuntimeError(
            f"{name}: applied {stats.applied} of {expected}, {stats.dead_lettered} dead-lettered"
        )
    return projector.last - projector.first, stats.batches


async def _fresh_pool(ctx: Context, schema: str) -> Any:
    from parlay_kit.db import create_pool, migrate
    from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS
    from parlay_payments.migrations import MIGRATIONS

    pool = await create_pool(ctx.options.database_url, schema, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
    return pool


async def _read_model(pool: Any, schema: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return {
            "payments": await conn.fetchval(f"SELECT count(*) FROM {schema}.payments"),
            "captured": await conn.fetchval(
                f"SELECT count(*) FROM {schema}.payments WHERE status = 'captured'"
            ),
            "partially_refunded": await conn.fetchval(
                f"SELECT count(*) FROM {schema}.payments WHERE status = 'partially_refunded'"
            ),
            "refunds": await conn.fetchval(f"SELECT count(*) FROM {schema}.payment_refunds"),
            # Every column of every row, order-independent: the rebuild must match exactly.
            "digest": await conn.fetchval(
                f"""SELECT md5(string_agg(md5(p::text), '' ORDER BY p.payment_id))
                    FROM {schema}.payments p"""
            ),
        }


async def _decide(
    ctx: Context, bootstrap: str, topics: dict[str, str], counts: dict[str, int], schema: str
) -> tuple[dict[str, float], dict[str, Any], list[tuple[bytes, bytes]]]:
    """The three phases through PaymentsProcess; returns what the relay would publish."""
    from parlay_payments.projections import PaymentsProcess
    from parlay_payments.readmodel import PaymentsReadModel

    pool = await _fresh_pool(ctx, schema)
    try:
        seconds: dict[str, float] = {}
        batches: dict[str, int] = {}
        window = CpuWindow({"bench": os.getpid()})
        window.start()
        handler = PaymentsProcess(PaymentsReadModel(schema), topic=topics["payments"])
        for phase in PHASES:
            ctx.console.print(f"  deciding: {phase} ({counts[phase]:,} events)")
            seconds[phase], batches[phase] = await _timed_projection(
                bootstrap,
                topics[phase],
                counts[phase],
                pool,
                schema,
                f"payments-{phase}",
                handler,
                emits=True,
            )
        cpu = dict(window.stop())
        check = await _read_model(pool, schema)
        async with pool.acquire() as conn:
            check["events"] = await conn.fetchval(f"SELECT count(*) FROM {schema}.events")
            rows = await conn.fetch(
                f"SELECT aggregate_id, envelope FROM {schema}.events ORDER BY position"
            )
        published = [(r["aggregate_id"].encode(), bytes(r["envelope"])) for r in rows]
        return seconds, {"batches": batches, "cpu": cpu, "read_model": check}, published
    finally:
        await pool.close()


async def _fold(
    ctx: Context, bootstrap: str, topic: str, expected: int, schema: str, *, noop: bool
) -> tuple[float, dict[str, Any]]:
    """The payments topic folded into a fresh schema by PaymentsProjection (or a no-op)."""
    from parlay_payments.projections import PaymentsProjection
    from parlay_payments.readmodel import PaymentsReadModel

    pool = await _fresh_pool(ctx, schema)
    try:
        window = CpuWindow({"bench": os.getpid()})
        window.start()
        handler = NoOpHandler() if noop else PaymentsProjection(PaymentsReadModel(schema))
        seconds, batches = await _timed_projection(
            bootstrap, topic, expected, pool, schema, "payments-fold", handler, emits=False
        )
        cpu = dict(window.stop())
        details: dict[str, Any] = {"batches": batches, "cpu": cpu, "seconds": round(seconds, 3)}
        if not noop:
            details["read_model"] = await _read_model(pool, schema)
        return seconds, details
    finally:
        await pool.close()


@register("payments_projection", TITLE, order=46)
async def run(ctx: Context) -> Result:
    from parlay_kit.broker import ensure_topics

    result = Result("payments_projection", TITLE)
    broker = await start_broker(ctx, "payments-projection")
    topics = {kind: f"bench.{ctx.run_id}.payments.{kind}" for kind in (*PHASES, "payments")}
    await ensure_topics(broker.bootstrap, list(topics.values()), PARTITIONS)
    started = time.perf_counter()
    traffic = await asyncio.to_thread(_traffic, ORDERS)
    derive_seconds = time.perf_counter() - started
    counts = {phase: len(records) for phase, records in traffic.items()}
    n = sum(counts.values())
    ctx.console.print(f"  producing {n:,} orders and gateway events ({ORDERS:,} payments)")
    produce_seconds = 0.0
    for phase in PHASES:
        produce_seconds += await produce(broker.bootstrap, topics[phase], traffic[phase])
    del traffic
    raw_seconds = await raw_consume(broker.bootstrap, [topics[p] for p in PHASES], n)

    schemas = {k: f"bench_{ctx.run_id}_payments_{k}" for k in ("decide", "noop", "fold")}
    try:
        decide_seconds, decide, published = await _decide(
            ctx, broker.bootstrap, topics, counts, schemas["decide"]
        )
        refunded = (ORDERS + 4) // 5
        expected = {
            "payments": ORDERS,
            "captured": ORDERS - refunded,
            "partially_refunded": refunded,
            "refunds": refunded,
            # PaymentRequested, PaymentLinkCreated, PaymentCaptured each; PaymentRefunded 1 in 5.
            "events": 3 * ORDERS + refunded,
        }
        live = dict(decide["read_model"])
        if {k: v for k, v in live.items() if k != "digest"} != expected:
            raise RuntimeError(f"decisions: read model / store hold {live}, expected {expected}")
        # The payments topic as the relay publishes it (keyed by payment id, in store order).
        m = len(published)
        ctx.console.print(f"  publishing the {m:,} payments events the decisions appended")
        await produce(broker.bootstrap, topics["payments"], published)
        del published
        fold_raw_seconds = await raw_consume(broker.bootstrap, [topics["payments"]], m)
        ctx.console.print("  folding: no-op")
        noop_seconds, noop = await _fold(
            ctx, broker.bootstrap, topics["payments"], m, schemas["noop"], noop=True
        )
        ctx.console.print("  folding: PaymentsProjection")
        fold_seconds, fold = await _fold(
            ctx, broker.bootstrap, topics["payments"], m, schemas["fold"], noop=False
        )
        rebuilt = fold.pop("read_model")
        live.pop("events")
        if rebuilt != live:
            raise RuntimeError(f"rebuilt read model {rebuilt} differs from the live one {live}")
    finally:
        if not ctx.options.keep:
            await drop_schemas(ctx.options.database_url, list(schemas.values()))

    fold_rate = m / fold_seconds
    noop_rate = m / noop_seconds
    decide_rate = n / sum(decide_seconds.values())
    result.add(
        "raw", "raw consume of parlay.payments.v1 (assign)", round(m / fold_raw_seconds), "events/s"
    )
    result.add("noop", "kit Projector, no-op handler (ceiling)", round(noop_rate), "events/s")
    result.add(
        "applied",
        "kit Projector + PaymentsProjection (read model, batched)",
        round(fold_rate),
        "events/s",
        target=f">= {TARGET:,}",
        ok=fold_rate >= TARGET,
    )
    result.add(
        "share",
        "projection / no-op projector",
        round(100 * fold_rate / noop_rate, 1),
        "%",
        fmt=".1f",
    )
    result.add(
        "raw_in", "raw consume of the orders + gateway topics", round(n / raw_seconds), "events/s"
    )
    result.add(
        "decide",
        "kit Projector + PaymentsProcess (decisions, each appends an event)",
        round(decide_rate),
        "events/s",
    )
    for phase in PHASES:
        result.add(
            phase, f"  deciding {phase}", round(counts[phase] / decide_seconds[phase]), "events/s"
        )
    result.add("events", "payments events folded", m)
    result.details.update(
        {
            "consumed_by_decisions": n,
            "per_phase": counts,
            "decide_seconds": {k: round(v, 3) for k, v in decide_seconds.items()},
            "derive_seconds": round(derive_seconds, 2),
            "produce_seconds": round(produce_seconds, 2),
            "raw_seconds": round(raw_seconds, 3),
            "partitions": PARTITIONS,
            "decide": decide,
            "noop": noop,
            "fold": fold,
        }
    )
    return result
