"""PaymentsService gRPC servicer: everything scoped to the caller's tenant (`current_tenant()`).

Reads come from the read models; writes go through `PaymentsCommands` (event store + read
model in one transaction). Errors are the kit's domain errors, mapped to status codes by the
kit's interceptor: a missing or malformed field is INVALID_ARGUMENT naming it; a refund of more
than may still be refunded is INVALID_ARGUMENT on amount_minor; an idempotency_key reused with a
different amount is ALREADY_EXISTS; a payment in the wrong state is FAILED_PRECONDITION; a
version conflict that outlived the retries is ABORTED.
"""

from __future__ import annotations

import base64
import binascii

import asyncpg
import grpc

from parlay.payments.v1 import payments_service_pb2 as pb
from parlay.payments.v1 import payments_service_pb2_grpc as pb_grpc
from parlay_kit import money
from parlay_kit.auth import current_tenant
from parlay_kit.envelope import to_timestamp
from parlay_kit.errors import InvalidArgument, NotFound
from parlay_kit.grpc_server import require
from parlay_payments import domain
from parlay_payments.commands import PaymentsCommands
from parlay_payments.domain import Payment, Refund
from parlay_payments.readmodel import PaymentsReadModel

SERVICE_NAME = "parlay.payments.v1.PaymentsService"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_KEY_LENGTH = 200


def refund_to_proto(r: Refund) -> pb.Refund:
    return pb.Refund(
        refund_id=r.refund_id,
        amount_minor=r.amount_minor,
        status=r.status,
        provider_refund_id=r.provider_refund_id,
        reason=r.reason,
        created_at=to_timestamp(r.created_at),
    )


def payment_to_proto(p: Payment) -> pb.Payment:
    message = pb.Payment(
        payment_id=p.payment_id,
        tenant_id=p.tenant_id,
        order_id=p.order_id,
        status=p.status,
        amount_minor=p.amount_minor,
        currency=p.currency,
        method=p.method,
        provider_session_id=p.provider_session_id,
        checkout_url=p.checkout_url,
        customer_id=p.customer_id,
        attempt=p.attempt,
        captured_minor=p.captured_minor,
        refunded_minor=p.refunded_minor,
        flag_reason=p.flag_reason,
        refunds=[refund_to_proto(r) for r in p.refunds],
        created_at=to_timestamp(p.created_at),
        updated_at=to_timestamp(p.updated_at),
        version=p.version,
    )
    if p.expires_at is not None:
        message.expires_at.CopyFrom(to_timestamp(p.expires_at))
    return message


def _page_token(p: Payment) -> str:
    return base64.urlsafe_b64encode(f"{p.attempt}|{p.payment_id}".encode()).decode()


def _parse_page_token(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    try:
        attempt, payment_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return int(attempt), payment_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgument("page_token", "not a token this service issued") from exc


def _check_key(key: str) -> str:
    key = key.strip()
    if not key:
        raise InvalidArgument("idempotency_key", "is required")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument("idempotency_key", f"at most {MAX_KEY_LENGTH} characters")
    return key


class PaymentsServicer(pb_grpc.PaymentsServiceServicer):
    def __init__(
        self, pool: asyncpg.Pool, read_model: PaymentsReadModel, commands: PaymentsCommands
    ) -> None:
        self._pool = pool
        self._rm = read_model
        self._commands = commands

    async def GetPayment(
        self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext | None = None
    ) -> pb.GetPaymentResponse:
        require(request, "payment_id")
        tenant = current_tenant()
        payment = await self._rm.get(self._pool, tenant, request.payment_id)
        if payment is None:
            raise NotFound(f"payment {request.payment_id} not found")
        return pb.GetPaymentResponse(payment=payment_to_proto(payment))

    async def ListPayments(
        self, request: pb.ListPaymentsRequest, context: grpc.aio.ServicerContext | None = None
    ) -> pb.ListPaymentsResponse:
        require(request, "order_id")
        tenant = current_tenant()
        if request.page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _parse_page_token(request.page_token)
        rows = await self._rm.list_for_order(
            self._pool, tenant, request.order_id, after=after, limit=size + 1
        )
        page = rows[:size]
        token = _page_token(page[-1]) if len(rows) > size else ""
        return pb.ListPaymentsResponse(
            payments=[payment_to_proto(p) for p in page], next_page_token=token
        )

    async def RefundPayment(
        self, request: pb.RefundPaymentRequest, context: grpc.aio.ServicerContext | None = None
    ) -> pb.RefundPaymentResponse:
        require(request, "payment_id")
        tenant = current_tenant()
        key = _check_key(request.idempotency_key)
        if request.amount_minor < 0:
            raise InvalidArgument("amount_minor", "must not be negative (0 = all that remains)")
        result = await self._commands.refund(
            tenant,
            request.payment_id,
            amount_minor=request.amount_minor,
            idempotency_key=key,
            reason=request.reason,
            requested_by="api",
        )
        return pb.RefundPaymentResponse(
            payment=payment_to_proto(result.payment), refund=refund_to_proto(result.refund)
        )

    async def RecordCashPayment(
        self,
        request: pb.RecordCashPaymentRequest,
        context: grpc.aio.ServicerContext | None = None,
    ) -> pb.RecordCashPaymentResponse:
        require(request, "order_id", "amount_minor", "currency", "method")
        tenant = current_tenant()
        key = _check_key(request.idempotency_key)
        if request.amount_minor < 0:
            raise InvalidArgument("amount_minor", "must be positive")
        currency = request.currency.strip().upper()
        if not money.is_currency(currency):
            raise InvalidArgument("currency", f"{request.currency!r} is not an ISO 4217 code")
        if request.method not in domain.ON_DELIVERY:
            raise InvalidArgument("method", "must be cash_on_delivery or card_on_delivery")
        payment = await self._commands.record_cash(
            tenant,
            request.order_id,
            amount_minor=request.amount_minor,
            currency=currency,
            method=request.method,
            idempotency_key=key,
            collected_by=request.collected_by,
        )
        return pb.RecordCashPaymentResponse(payment=payment_to_proto(payment))
