"""OrdersService gRPC servicer: reads the orders read model, scoped to the caller's tenant."""

from __future__ import annotations

import asyncpg
import grpc

from parlay.orders.v1 import orders_service_pb2 as pb
from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit.auth import current_tenant
from parlay_kit.errors import NotFound
from parlay_kit.grpc_server import require

SERVICE_NAME = "parlay.orders.v1.OrdersService"


class OrdersServicer(pb_grpc.OrdersServiceServicer):
    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._schema = schema

    async def GetOrder(
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrderResponse:
        require(request, "order_id")
        tenant = current_tenant()
        row = await self._pool.fetchrow(
            f"SELECT * FROM {self._schema}.orders WHERE tenant_id = $1 AND order_id = $2",
            tenant,
            request.order_id,
        )
        if row is None:
            raise NotFound(f"order {request.order_id} not found")
        return pb.GetOrderResponse(
            order=pb.Order(
                order_id=row["order_id"],
                tenant_id=row["tenant_id"],
                customer_id=row["customer_id"],
                status=row["status"],
            )
        )
