"""Application layer: how a decision about an order (or a product) becomes durable.

Both writers of orders — the gRPC commands and the saga projector — go through `OrderWriter`
inside their own transaction: load the order's state from the read model (it is updated in the
same transactions as the appends, so it is exactly the stream's fold), decide with the pure
`domain.decide_*`, append the events with explicit versions (optimistic concurrency: a version
someone else took raises ConcurrencyError, which the commands retry once and the projector
retries as a batch), fold them with `domain.apply` and save the row. GetOrder right after
CreateOrder therefore sees the order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from google.protobuf.message import Message

from parlay.orders.v1 import orders_events_pb2 as oe
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, new_event_id
from parlay_kit.eventstore import EventStore
from parlay_orders import domain
from parlay_orders.readmodel import OrdersReadModel

log = logging.getLogger(__name__)

Decide = Callable[[domain.OrderState | None], list[Message]]


@dataclass(frozen=True, slots=True)
class Cause:
    """What the new events follow from (the consumed event, or nothing for an API call)."""

    causation_id: str = ""
    correlation_id: str = ""
    traceparent: str = ""


class OrderWriter:
    def __init__(
        self, store: EventStore, read_model: OrdersReadModel, *, topic: str = topics.ORDERS
    ) -> None:
        self.store = store
        self.rm = read_model
        self.topic = topic

    async def write(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        order_id: str,
        decide: Decide,
        *,
        at: datetime,
        event_id: Callable[[int], str] | None = None,
        cause: Cause = Cause(),
    ) -> tuple[domain.OrderState | None, list[Message]]:
        """Decide on the order's current state and record the outcome, in the caller's
        transaction. Returns the new state and the events decided (empty: nothing changed)."""
        state = await self.rm.load_order(conn, tenant_id, order_id)
        payloads = decide(state)
        if not payloads:
            return state, []
        base = state.version if state is not None else 0
        ids = event_id or (lambda _i: new_event_id())
        events = [
            NewEvent(
                event_id=ids(i),
                tenant_id=tenant_id,
                aggregate_type=domain.AGGREGATE_TYPE,
                aggregate_id=order_id,
                payload=payload,
                occurred_at=at,
                topic=self.topic,
                aggregate_version=base + i + 1,
                causation_id=cause.causation_id,
                correlation_id=cause.correlation_id,
                traceparent=cause.traceparent,
            )
            for i, payload in enumerate(payloads)
        ]
        stored = await self.store.append(conn, events)
        new = state
        for event, result in zip(events, stored, strict=True):
            if result.duplicate:  # already recorded (and folded) by an earlier delivery
                continue
            assert event.aggregate_version is not None
            new = domain.apply(
                new, event.payload, tenant_id=tenant_id, version=event.aggregate_version, at=at
            )
        if new is not None and new is not state:
            await self.rm.save_orders(conn, [new])
        return new, payloads

    async def upsert_product(
        self, conn: asyncpg.Connection, tenant_id: str, product: domain.Product, *, at: datetime
    ) -> int:
        """ProductUpserted on "product:<sku>"; returns the aggregate version it got."""
        event = NewEvent(
            event_id=new_event_id(),
            tenant_id=tenant_id,
            aggregate_type=domain.PRODUCT_AGGREGATE_TYPE,
            aggregate_id=domain.product_aggregate_id(product.sku),
            payload=oe.ProductUpserted(
                sku=product.sku,
                name=product.name,
                price_minor=product.price_minor,
                currency=product.currency,
                available=product.available,
                description=product.description,
                image_url=product.image_url,
            ),
            occurred_at=at,
            topic=self.topic,
        )
        (stored,) = await self.store.append(conn, [event])
        assert stored.envelope is not None
        version = stored.envelope.aggregate_version
        await self.rm.save_products(conn, [(tenant_id, product, version, at)])
        return version
