"""Adapter: "where is my order?" answered by the orders service over gRPC.

OrdersService serves only GetOrder today; the answer needs ListOrders(customer_id) (issue 6).
`GrpcOrderStatus.supported()` checks the generated contract, so the built-in answer turns on by
itself once orders ships ListOrders — until then the bot treats the question as one it cannot
answer (and hands off after the usual number of misses).

Calls authenticate as this service (see docs/conversation.md, "Calling other services"):
`authorization: Bearer <PARLAY_SERVICE_API_KEY>` and `x-parlay-tenant: <tenant>` naming the
tenant the call is for.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from parlay_kit.grpc_server import create_channel

log = logging.getLogger(__name__)

SERVICE = "parlay.orders.v1.OrdersService"
TENANT_HEADER = "x-parlay-tenant"


def _contract() -> Any:
    return importlib.import_module("parlay.orders.v1.orders_service_pb2")


def supported() -> bool:
    """Whether the orders contract has ListOrders (with customer_id)."""
    try:
        pb = _contract()
    except ImportError:
        return False
    service = pb.DESCRIPTOR.services_by_name.get("OrdersService")
    if service is None or "ListOrders" not in service.methods_by_name:
        return False
    request = service.methods_by_name["ListOrders"].input_type
    return "customer_id" in request.fields_by_name


def describe(order: Any) -> str:
    """One line for the customer about their order."""
    status = str(getattr(order, "status", "") or "being processed").replace("_", " ").lower()
    return f"Your order {order.order_id} is {status}."


class GrpcOrderStatus:
    def __init__(self, target: str, api_key: str, *, timeout: float = 2.0) -> None:
        pb = _contract()
        method = pb.DESCRIPTOR.services_by_name["OrdersService"].methods_by_name["ListOrders"]
        self._request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        self._channel = create_channel(target, api_key=api_key)
        self._call = self._channel.unary_unary(
            f"/{SERVICE}/ListOrders",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        self.timeout = timeout

    async def answer(self, tenant_id: str, customer_ids: Sequence[str]) -> str | None:
        orders: list[Any] = []
        for customer_id in customer_ids:
            try:
                reply = await self._call(
                    self._request(customer_id=customer_id),
                    metadata=((TENANT_HEADER, tenant_id),),
                    timeout=self.timeout,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    continue
                raise
            orders += list(getattr(reply, "orders", []))
        if not orders:
            return None
        latest = max(orders, key=_order_time)
        return describe(latest)

    async def close(self) -> None:
        await self._channel.close()


def _order_time(order: Any) -> tuple[int, str]:
    for name in ("updated_at", "created_at", "placed_at"):
        ts = getattr(order, name, None)
        if ts is not None and int(getattr(ts, "seconds", 0) or 0):
            return (int(ts.seconds), order.order_id)
    return (0, order.order_id)
