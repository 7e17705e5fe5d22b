"""OrdersService gRPC servicer: the catalog and the orders, scoped to the caller's tenant.

Reads come from the read models; commands go through `OrderWriter` in one transaction each
(load, decide, append with the expected version, save the read model) and are retried once on
a version conflict before answering ABORTED.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import asyncpg
import grpc

from parlay.orders.v1 import orders_service_pb2 as pb
from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit.auth import current_tenant
from parlay_kit.envelope import deterministic_event_id, to_timestamp, utcnow
from parlay_kit.errors import (
    ConcurrencyError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotYetKnown,
)
from parlay_kit.grpc_server import require
from parlay_kit.money import is_currency
from parlay_orders import domain
from parlay_orders.commands import OrderWriter
from parlay_orders.readmodel import OrdersReadModel, decode_token, encode_token

SERVICE_NAME = "parlay.orders.v1.OrdersService"
#: Who acts through the API (the contract has no actor field; integrators are "api").
API_ACTOR = "api"
MAX_SKU = 128
_SKU = re.compile(r"^[^\s]+$")

T = TypeVar("T")


def _page_size(value: int, default: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(value or default, maximum)


def order_to_proto(s: domain.OrderState) -> pb.Order:
    order = pb.Order(
        order_id=s.order_id,
        tenant_id=s.tenant_id,
        customer_id=s.customer_id,
        status=s.status,
        conversation_id=s.conversation_id,
        items=[
            pb.OrderItem(
                sku=ln.sku,
                name=ln.name,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                catalog_price_minor=ln.catalog_price_minor,
                line_total_minor=ln.line_total_minor,
                issue=ln.issue,
            )
            for ln in s.lines
        ],
        total_minor=s.total_minor,
        currency=s.currency,
        payment_method=s.payment_method,
        source=s.source,
        issues=list(s.issues),
        payment_id=s.payment_id,
        paid_minor=s.paid_minor,
        refunded_minor=s.refunded_minor,
        payment_flag=s.payment_flag,
        carrier=s.carrier,
        tracking_code=s.tracking_code,
        cancel_reason=s.cancel_reason,
        payment_attempt=s.payment_attempt,
        version=s.version,
    )
    if s.created_at is not None:
        order.created_at.CopyFrom(to_timestamp(s.created_at))
    if s.updated_at is not None:
        order.updated_at.CopyFrom(to_timestamp(s.updated_at))
    return order


def product_to_proto(row: asyncpg.Record) -> pb.Product:
    return pb.Product(
        sku=row["sku"],
        name=row["name"],
        price_minor=row["price_minor"],
        currency=row["currency"],
        available=row["available"],
        description=row["description"],
        image_url=row["image_url"],
        updated_at=to_timestamp(row["updated_at"]),
    )


def validate_product(p: pb.Product) -> domain.Product:
    """INVALID_ARGUMENT naming the field ("product.price_minor")."""
    sku = p.sku.strip()
    if not sku:
        raise InvalidArgument("product.sku", "is required")
    if len(sku) > MAX_SKU or not _SKU.match(sku):
        raise InvalidArgument("product.sku", f"must be 1-{MAX_SKU} characters without spaces")
    name = p.name.strip()
    if not name:
        raise InvalidArgument("product.name", "is required")
    if p.price_minor < 0:
        raise InvalidArgument("product.price_minor", "must not be negative (minor units)")
    currency = p.currency.strip().upper()
    if not is_currency(currency):
        raise InvalidArgument("product.currency", f"{p.currency!r} is not an ISO 4217 currency")
    return domain.Product(
        sku=sku,
        name=name,
        price_minor=p.price_minor,
        currency=currency,
        available=p.available,
        description=p.description,
        image_url=p.image_url.strip(),
    )


def _payment_method(value: str, default: str) -> str:
    method = value.strip().lower() or default
    if method not in domain.PAYMENT_METHODS:
        raise InvalidArgument(
            "payment_method", f"must be one of {', '.join(domain.PAYMENT_METHODS)}"
        )
    return method


class OrdersServicer(pb_grpc.OrdersServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        read_model: OrdersReadModel,
        writer: OrderWriter,
        *,
        default_payment_method: str = domain.PAYMENT_LINK,
    ) -> None:
        self._pool = pool
        self._rm = read_model
        self._writer = writer
        self._default_method = default_payment_method

    async def _transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a command; a version conflict (someone else wrote the order) is retried once."""
        for attempt in (1, 2):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await work(conn)
            except ConcurrencyError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _change(
        self,
        order_id: str,
        decide: Callable[[domain.OrderState], list],
    ) -> pb.Order:
        tenant = current_tenant()

        def checked(state: domain.OrderState | None) -> list:
            if state is None:
                raise NotFound(f"order {order_id} not found")
            return decide(state)

        async def work(conn: asyncpg.Connection) -> domain.OrderState | None:
            state, _ = await self._writer.write(conn, tenant, order_id, checked, at=utcnow())
            return state

        state = await self._transaction(work)
        assert state is not None
        return order_to_proto(state)

    # ------------------------------------------------------------------ catalog

    async def UpsertProduct(
        self, request: pb.UpsertProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertProductResponse:
        require(request, "product")
        product = validate_product(request.product)
        tenant = current_tenant()

        async def work(conn: asyncpg.Connection) -> asyncpg.Record | None:
            await self._writer.upsert_product(conn, tenant, product, at=utcnow())
            return await self._rm.product_row(conn, tenant, product.sku)

        row = await self._transaction(work)
        assert row is not None
        return pb.UpsertProductResponse(product=product_to_proto(row))

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProductsResponse:
        tenant = current_tenant()
        size = _page_size(request.page_size, 50, 500)
        after = ""
        if request.page_token:
            parts = decode_token(request.page_token, 2)
            if parts is None or parts[0] != "p":
                raise InvalidArgument("page_token", "is not a token this service returned")
            after = parts[1]
        rows = await self._rm.product_rows(
            self._pool,
            tenant,
            after_sku=after,
            available_only=request.available_only,
            limit=size + 1,
        )
        token = encode_token("p", rows[size - 1]["sku"]) if len(rows) > size else ""
        return pb.ListProductsResponse(
            products=[product_to_proto(r) for r in rows[:size]], next_page_token=token
        )

    # ------------------------------------------------------------------ orders

    async def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateOrderResponse:
        require(request, "customer_id", "items", "idempotency_key")
        tenant = current_tenant()
        method = _payment_method(request.payment_method, self._default_method)
        for n, item in enumerate(request.items):
            if not item.sku.strip():
                raise InvalidArgument(f"items[{n}].sku", "is required")
            if item.quantity <= 0:
                raise InvalidArgument(f"items[{n}].quantity", "must be positive")
        key = request.idempotency_key.strip()
        # The key names the order: the same key is the same order, whatever else was sent.
        order_id = deterministic_event_id(tenant, "order", "api", key)
        existing = await self._rm.load_order(self._pool, tenant, order_id)
        if existing is not None:
            return pb.CreateOrderResponse(order=order_to_proto(existing))
        catalog = await self._rm.products(self._pool, tenant, [i.sku for i in request.items])
        currencies = set()
        for n, item in enumerate(request.items):
            product = catalog.get(item.sku.strip())
            if product is None:
                raise InvalidArgument(f"items[{n}].sku", f"unknown sku {item.sku!r}")
            if not product.available:
                raise FailedPrecondition(f"items[{n}].sku: {item.sku} is not available")
            currencies.add(product.currency)
        if len(currencies) > 1:
            raise InvalidArgument(
                "items", f"an order has one currency; these are in {', '.join(sorted(currencies))}"
            )
        priced = domain.price_cart(
            [domain.CartItem(i.sku.strip(), i.quantity) for i in request.items], catalog
        )
        conversation_id = request.conversation_id.strip()
        conversation = (
            await self._rm.conversation(self._pool, tenant, conversation_id)
            if conversation_id
            else None
        )
        if conversation_id and conversation is None:
            # Orders learns conversations from the conversation log; an order placed without
            # its chat could not be confirmed or paid there. The caller retries.
            raise NotYetKnown(
                f"conversation_id: conversation {conversation_id} is not known to orders yet"
            )
        placement = domain.Placement(
            order_id=order_id,
            customer_id=request.customer_id.strip(),
            conversation_id=conversation_id,
            source=domain.SOURCE_API,
            payment_method=method,
            placed_by=API_ACTOR,
            channel=conversation["channel"] if conversation else "",
            channel_account_id=conversation["channel_account_id"] if conversation else "",
            address=conversation["address"] if conversation else "",
            source_event_id=order_id,
            idempotency_key=key,
        )

        async def work(conn: asyncpg.Connection) -> domain.OrderState | None:
            state, _ = await self._writer.write(
                conn,
                tenant,
                order_id,
                lambda s: domain.decide_place(
                    s, placement, priced, request_confirmation=bool(conversation_id)
                ),
                at=utcnow(),
                event_id=lambda i: deterministic_event_id(tenant, "create-order", key, str(i)),
            )
            return state

        state = await self._transaction(work)
        if state is None:  # a concurrent call with the same key won: answer with its order
            state = await self._rm.load_order(self._pool, tenant, order_id)
        assert state is not None
        return pb.CreateOrderResponse(order=order_to_proto(state))

    async def GetOrder(
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrderResponse:
        require(request, "order_id")
        state = await self._rm.load_order(self._pool, current_tenant(), request.order_id.strip())
        if state is None:
            raise NotFound(f"order {request.order_id} not found")
        return pb.GetOrderResponse(order=order_to_proto(state))

    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOrdersResponse:
        require(request, "customer_id")
        tenant = current_tenant()
        status = request.status.strip().lower()
        if status and status not in domain.STATUSES:
            raise InvalidArgument("status", f"must be one of {', '.join(domain.STATUSES)}")
        size = _page_size(request.page_size, 20, 200)
        after: tuple[datetime, str] | None = None
        if request.page_token:
            parts = decode_token(request.page_token, 3)
            if parts is None or parts[0] != "o":
                raise InvalidArgument("page_token", "is not a token this service returned")
            try:
                after = (datetime.fromisoformat(parts[1]), parts[2])
            except ValueError as exc:
                raise InvalidArgument("page_token", "is not a token this service returned") from exc
        customers = await self._rm.merged_into(self._pool, tenant, request.customer_id.strip())
        orders = await self._rm.list_orders(
            self._pool, tenant, customers, status=status, limit=size + 1, after=after
        )
        token = ""
        if len(orders) > size:
            last = orders[size - 1]
            assert last.created_at is not None
            token = encode_token("o", last.created_at.isoformat(), last.order_id)
        return pb.ListOrdersResponse(
            orders=[order_to_proto(o) for o in orders[:size]], next_page_token=token
        )

    async def ConfirmOrder(
        self, request: pb.ConfirmOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.ConfirmOrderResponse:
        require(request, "order_id")
        method = request.payment_method.strip().lower()
        if method:
            _payment_method(method, self._default_method)
        order = await self._change(
            request.order_id.strip(),
            lambda s: domain.decide_confirm(s, confirmed_by=API_ACTOR, payment_method=method),
        )
        return pb.ConfirmOrderResponse(order=order)

    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelOrderResponse:
        require(request, "order_id")
        reason = request.reason.strip() or "cancelled"
        order = await self._change(
            request.order_id.strip(),
            lambda s: domain.decide_cancel(s, reason=reason, actor=API_ACTOR),
        )
        return pb.CancelOrderResponse(order=order)

    async def UpdateFulfillment(
        self, request: pb.UpdateFulfillmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateFulfillmentResponse:
        require(request, "order_id", "status")
        if request.status == pb.FULFILLMENT_STATUS_OUT_FOR_DELIVERY:

            def decide(s: domain.OrderState) -> list:
                return domain.decide_out_for_delivery(
                    s,
                    carrier=request.carrier.strip(),
                    tracking_code=request.tracking_code.strip(),
                    note=request.note,
                )

        elif request.status == pb.FULFILLMENT_STATUS_DELIVERED:

            def decide(s: domain.OrderState) -> list:
                return domain.decide_delivered(s, note=request.note)

        else:
            raise InvalidArgument("status", "must be OUT_FOR_DELIVERY or DELIVERED")
        order = await self._change(request.order_id.strip(), decide)
        return pb.UpdateFulfillmentResponse(order=order)
