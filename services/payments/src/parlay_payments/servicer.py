"""PaymentsService gRPC servicer: reads the payments read model, scoped to the caller's tenant."""

from __future__ import annotations

import asyncpg
import grpc

from parlay.payments.v1 import payments_service_pb2 as pb
from parlay.payments.v1 import payments_service_pb2_grpc as pb_grpc
from parlay_kit.auth import current_tenant
from parlay_kit.errors import NotFound
from parlay_kit.grpc_server import require

SERVICE_NAME = "parlay.payments.v1.PaymentsService"


class PaymentsServicer(pb_grpc.PaymentsServiceServicer):
    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._schema = schema

    async def GetPayment(
        self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPaymentResponse:
        require(request, "payment_id")
        tenant = current_tenant()
        row = await self._pool.fetchrow(
            f"SELECT * FROM {self._schema}.payments WHERE tenant_id = $1 AND payment_id = $2",
            tenant,
            request.payment_id,
        )
        if row is None:
            raise NotFound(f"payment {request.payment_id} not found")
        return pb.GetPaymentResponse(
            payment=pb.Payment(
                payment_id=row["payment_id"],
                tenant_id=row["tenant_id"],
                order_id=row["order_id"],
                status=row["status"],
            )
        )
