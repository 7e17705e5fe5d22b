"""Orders projection throughput: the orders and products read models folded from the orders
topic, next to the raw consume rate of the same topic measured in the same run.

Setup (not timed): a fresh Tansu broker and a private topic (6 partitions, like the local
stack's). About `EVENTS` order events decided by the orders service's own rules
(`parlay_orders.domain`): a catalog of products, then orders placed from carts (some with a
price the customer saw that differs from the catalog), asked for confirmation, confirmed,
awaiting payment, then paid and delivered, or a link that expired (a second attempt), a
mismatched capture flagged, a cancellation, partial and full refunds. The orders' steps are
interleaved (a thousand orders advance a step at a time), so a batch touches many orders — the
expensive case for a batched projection. Events are produced keyed by order id, as the
service's relay publishes them.

- raw consume: the whole topic read with `assign()` (no group), records counted, nothing
  decoded: the ceiling any reader of this broker has on this machine.
- projector, no-op handler: the kit's `Projector` (consumer group, envelope decode, dedupe by
  event id, offsets stored in the same transaction) with a handler that does nothing.
- projector: the same `Projector` running the orders service's `OrderProjection`
  (`handle_batch`: one SELECT of the touched orders, fold with `domain.apply`, one unnest upsert
  of the changed rows; idempotent by aggregate version, so no per-event dedupe table) into a
  fresh schema. Timed from the first fetch to the commit that stores the last offset.
  Target >= 20,000 events/s.

Checked afterwards: the read model holds exactly the orders (with the statuses) and products
the rules produced.

    uv run python -m bench --only orders_projection
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.core import Context, Result, register
from bench.projections import NoOpHandler, produce, raw_consume, time_projector
from bench.stack import drop_schemas, start_broker

TITLE = "Orders projection (OrderProjection, batched) vs raw consume"
EVENTS = 200_000
TARGET = 20_000
PARTITIONS = 6
PRODUCTS = 200
WAVE = 1_000


def _lifecycle(n_events: int) -> tuple[list[tuple[bytes, bytes]], dict[str, Any]]:
    """(key, encoded envelope) of about `n_events` order events decided by the real rules, and
    what the read models must hold afterwards."""
    from google.protobuf.message import Message

    from parlay.orders.v1 import orders_events_pb2 as oe
    from parlay_kit.envelope import NewEvent, deterministic_event_id, encode
    from parlay_kit.topics import ORDERS
    from parlay_orders import domain

    rng = random.Random(42)
    tenant = "bench"
    t0 = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)
    records: list[tuple[bytes, bytes]] = []
    clock = [0]

    def emit(aggregate_type: str, aggregate_id: str, version: int, payload: Message) -> None:
        clock[0] += 1
        at = t0 + timedelta(milliseconds=clock[0])
        event = NewEvent(
            event_id=deterministic_event_id("bench", aggregate_id, str(version)),
            tenant_id=tenant,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            payload=payload,
            occurred_at=at,
            topic=ORDERS,
            aggregate_version=version,
        )
        records.append((aggregate_id.encode(), encode(event.to_envelope("orders", version, at))))

    catalog: dict[str, domain.Product] = {}
    for n in range(PRODUCTS):
        product = domain.Product(
            f"SKU-{n:04d}", f"Product {n}", rng.randrange(500, 50_000), "MXN", n % 17 != 0
        )
        catalog[product.sku] = product
        emit(
            domain.PRODUCT_AGGREGATE_TYPE,
            domain.product_aggregate_id(product.sku),
            1,
            oe.ProductUpserted(
                sku=product.sku,
                name=product.name,
                price_minor=product.price_minor,
                currency=product.currency,
                available=product.available,
            ),
        )
    skus = list(catalog)
    states: dict[str, domain.OrderState] = {}
    expected_status: Counter[str] = Counter()
    order_no = 0
    while len(records) < n_events:
        # A wave of orders, each advancing one step per round: batches touch many orders.
        plans: dict[str, list] = {}
        for _ in range(WAVE):
            order_no += 1
            order_id = f"order-{order_no:07d}"
            items = []
            for sku in rng.sample(skus, rng.randint(1, 3)):
                price = catalog[sku].price_minor
                if rng.random() < 0.05:
                    price += 100  # the customer saw another price: flagged
                items.append(domain.CartItem(sku, rng.randint(1, 4), price, "MXN"))
            priced = domain.price_cart(items, catalog)
            placement = domain.Placement(
                order_id=order_id,
                customer_id=f"cust-{rng.randrange(order_no + 1)}",
                conversation_id=f"conv-{order_no}",
                source=domain.SOURCE_CART,
                payment_method=domain.PAYMENT_LINK,
                placed_by="customer",
                channel="whatsapp",
                channel_account_id="acc-1",
                address=f"52155{order_no:08d}",
                source_event_id=f"msg-{order_no}",
            )
            fate = rng.random()
            steps: list[Any] = [
                lambda s, p=placement, pr=priced: domain.decide_place(
                    s, p, pr, request_confirmation=True
                ),
                lambda s: domain.decide_confirm(s, confirmed_by="customer", evidence="m"),
            ]
            if fate < 0.1:
                steps += [
                    lambda s: domain.decide_expired(s, attempt=1, max_attempts=2),
                    lambda s: domain.decide_expired(s, attempt=2, max_attempts=2),
                ]
            elif fate < 0.2:
                steps += [lambda s: domain.decide_cancel(s, reason="changed mind", actor="api")]
            else:
                if fate < 0.3:
                    steps += [
                        lambda s: domain.decide_captured(
                            s, payment_id="px", amount_minor=1, currency="MXN", method=""
                        )
                    ]
                steps += [
                    lambda s: domain.decide_captured(
                        s,
                        payment_id=f"pay-{s.order_id}",
                        amount_minor=s.total_minor,
                        currency="MXN",
                        method="payment_link",
                    ),
                    lambda s: domain.decide_out_for_delivery(
                        s, carrier="moto", tracking_code=s.order_id, note=""
                    ),
                    lambda s: domain.decide_delivered(s, note=""),
                ]
                if fate > 0.9:
                    steps += [
                        lambda s: domain.decide_refunded(
                            s, payment_id=s.payment_id, amount_minor=100, currency="MXN"
                        ),
                        lambda s: domain.decide_refunded(
                            s,
                            payment_id=s.payment_id,
                            amount_minor=s.total_minor - 100,
                            currency="MXN",
                        ),
                    ]
            plans[order_id] = steps
        for step in range(max(len(s) for s in plans.values())):
            for order_id, steps in plans.items():
                if step >= len(steps):
                    continue
                state = states.get(order_id)
                for payload in steps[step](state):
                    version = (state.version if state else 0) + 1
                    emit(domain.AGGREGATE_TYPE, order_id, version, payload)
                    state = domain.apply(state, payload, tenant_id=tenant, version=version, at=t0)
                assert state is not None
                states[order_id] = state
    for state in states.values():
        expected_status[state.status] += 1
    expected = {
        "orders": len(states),
        "products": len(catalog),
        "statuses": dict(sorted(expected_status.items())),
    }
    return records, expected


async def _counts(conn: Any, schema: str) -> dict[str, Any]:
    rows = await conn.fetch(
        f"SELECT status, count(*) AS n FROM {schema}.orders GROUP BY status ORDER BY status"
    )
    return {
        "orders": await conn.fetchval(f"SELECT count(*) FROM {schema}.orders"),
        "products": await conn.fetchval(f"SELECT count(*) FROM {schema}.products"),
        "statuses": {r["status"]: r["n"] for r in rows},
    }


async def _project(
    ctx: Context, bootstrap: str, topic: str, expected: int, schema: str, *, noop: bool = False
) -> tuple[float, dict[str, Any], dict[str, Any] | None]:
    from parlay_orders.projections import OrderProjection
    from parlay_orders.readmodel import MIGRATIONS, OrdersReadModel

    return await time_projector(
        ctx,
        bootstrap,
        topic,
        expected,
        schema,
        name="orders-rebuild",
        service="orders",
        handler=NoOpHandler() if noop else OrderProjection(OrdersReadModel(schema)),
        migrations=MIGRATIONS,
        counts=None if noop else _counts,
    )


@register("orders_projection", TITLE, order=45)
async def run(ctx: Context) -> Result:
    from parlay_kit.broker import ensure_topics

    result = Result("orders_projection", TITLE)
    broker = await start_broker(ctx, "orders-projection")
    topic = f"bench.{ctx.run_id}.orders"
    await ensure_topics(broker.bootstrap, [topic], PARTITIONS)
    started = time.perf_counter()
    records, expected_rows = await asyncio.to_thread(_lifecycle, EVENTS)
    derive_seconds = time.perf_counter() - started
    n = len(records)
    ctx.console.print(f"  producing {n:,} order events ({expected_rows['orders']:,} orders)")
    produce_seconds = await produce(broker.bootstrap, topic, records)
    del records
    raw_seconds = await raw_consume(broker.bootstrap, topic, n)
    runs: dict[str, tuple[float, dict[str, Any]]] = {}
    for kind in ("noop", "projector"):
        ctx.console.print(f"  {kind}")
        schema = f"bench_{ctx.run_id}_orders_{kind}"
        try:
            seconds, details, counts = await _project(
                ctx, broker.bootstrap, topic, n, schema, noop=kind == "noop"
            )
        finally:
            if not ctx.options.keep:
                await drop_schemas(ctx.options.database_url, [schema])
        if counts is not None and counts != expected_rows:
            raise RuntimeError(f"{kind}: read models hold {counts}, the rules made {expected_rows}")
        runs[kind] = (seconds, details)
    raw_rate = n / raw_seconds
    rates = {k: n / v[0] for k, v in runs.items()}
    result.add("raw", "raw consume (assign, no decode)", round(raw_rate), "events/s")
    result.add("noop", "kit Projector, no-op handler (ceiling)", round(rates["noop"]), "events/s")
    result.add(
        "applied",
        "kit Projector + OrderProjection (batched)",
        round(rates["projector"]),
        "events/s",
        target=f">= {TARGET:,}",
        ok=rates["projector"] >= TARGET,
    )
    result.add(
        "share",
        "projector / no-op projector",
        round(100 * rates["projector"] / rates["noop"], 1),
        "%",
        fmt=".1f",
    )
    result.add("events", "events applied", n)
    result.details.update(
        {
            "events": n,
            "read_models": expected_rows,
            "derive_seconds": round(derive_seconds, 2),
            "produce_seconds": round(produce_seconds, 2),
            "raw_seconds": round(raw_seconds, 3),
            "partitions": PARTITIONS,
            "runs": {k: v[1] for k, v in runs.items()},
        }
    )
    return result
