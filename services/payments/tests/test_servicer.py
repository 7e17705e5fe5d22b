"""PaymentsService over a real gRPC server (the kit's server: API-key auth, status mapping) on
the running payments service: payments get where a test needs them through the real
projectors (orders and gateway events on the real broker), and every write the RPCs make is
read back through GetPayment at once (read model written in the command's transaction)."""

from __future__ import annotations

import grpc
import pytest

from parlay.payments.v1 import payments_events_pb2 as pe
from parlay.payments.v1 import payments_service_pb2 as pb
from parlay.payments.v1 import payments_service_pb2_grpc as pb_grpc
from parlay_kit.grpc_server import FIELD_TRAILER, create_channel
from parlay_kit.testing import unique_name


async def captured_payment(svc, tenant: str) -> tuple[str, str]:
    """A Stripe payment link, paid: (payment_id, payment_intent)."""
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id))
    pid = svc.payment_id_of(tenant, order_id, 1)
    session = unique_name("cs")
    await svc.gateway(
        svc.action_completed(tenant, pid, "create_checkout_session", object_id=session)
    )
    await svc.gateway(
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "checkout.session.completed",
            session=session,
            intent="pi_" + session,
        )
    )
    return pid, "pi_" + session


async def cash_order(svc, tenant: str, method: str = "cash_on_delivery") -> str:
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id, method=method))
    return order_id


async def expect_error(call, code: grpc.StatusCode, field: str | None = None) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    if field is not None:
        assert field in (err.value.details() or "")
        assert (FIELD_TRAILER, field) in tuple(err.value.trailing_metadata() or ())
    return err.value.details() or ""


async def test_full_refund_of_a_stripe_payment_goes_through_the_gateway(svc) -> None:
    tenant, stub = await svc.tenant()
    pid, intent = await captured_payment(svc, tenant)
    reply = await stub.RefundPayment(
        pb.RefundPaymentRequest(payment_id=pid, idempotency_key="refund-1", reason="damaged")
    )
    assert (reply.refund.amount_minor, reply.refund.status) == (24950, "requested")
    assert reply.payment.status == "captured"
    # Seen at once, in the read model.
    got = (await stub.GetPayment(pb.GetPaymentRequest(payment_id=pid))).payment
    assert [(r.refund_id, r.status) for r in got.refunds] == [(reply.refund.refund_id, "requested")]
    [*_, requested] = await svc.events(pid)
    assert isinstance(requested, pe.RefundRequested)
    assert (requested.provider_account_id, requested.provider_payment_id) == (
        svc.STRIPE_ACCOUNT,
        intent,
    )
    assert (requested.amount_minor, requested.currency, requested.idempotency_key) == (
        24950,
        "MXN",
        "refund-1",
    )
    # The gateway made the refund.
    await svc.gateway(
        svc.action_completed(
            tenant, pid, "create_refund", object_id="re_1", refund_id=reply.refund.refund_id
        )
    )
    got = (await stub.GetPayment(pb.GetPaymentRequest(payment_id=pid))).payment
    assert (got.status, got.refunded_minor, got.captured_minor) == ("refunded", 24950, 24950)
    assert [(r.status, r.provider_refund_id) for r in got.refunds] == [("succeeded", "re_1")]
    [*_, refunded] = await svc.events(pid)
    assert isinstance(refunded, pe.PaymentRefunded)
    assert (refunded.source, refunded.fully_refunded) == ("api", True)
    await expect_error(
        stub.RefundPayment(pb.RefundPaymentRequest(payment_id=pid, idempotency_key="again")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_partial_idempotent_and_over_refunds(svc) -> None:
    tenant, stub = await svc.tenant()
    pid, _ = await captured_payment(svc, tenant)
    first = await stub.RefundPayment(
        pb.RefundPaymentRequest(payment_id=pid, amount_minor=5000, idempotency_key="k1")
    )
    events_before = await svc.event_types(pid)
    # The same key: the first refund, nothing emitted.
    again = await stub.RefundPayment(
        pb.RefundPaymentRequest(payment_id=pid, amount_minor=5000, idempotency_key="k1")
    )
    assert again.refund == first.refund
    assert await svc.event_types(pid) == events_before
    # The same key for another amount: that key's refund exists already.
    await expect_error(
        stub.RefundPayment(
            pb.RefundPaymentRequest(payment_id=pid, amount_minor=6000, idempotency_key="k1")
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    # More than captured - refunded - pending (24950 - 0 - 5000).
    details = await expect_error(
        stub.RefundPayment(
            pb.RefundPaymentRequest(payment_id=pid, amount_minor=19951, idempotency_key="k2")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "amount_minor",
    )
    assert "19950" in details
    await expect_error(
        stub.RefundPayment(
            pb.RefundPaymentRequest(payment_id=pid, amount_minor=-1, idempotency_key="k3")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "amount_minor",
    )
    # The provider refuses the first refund: failed, the payment keeps its status, and the
    # amount may be refunded again.
    await svc.gateway(
        svc.action_completed(
            tenant,
            pid,
            "create_refund",
            ok=False,
            error_code="charge_disputed",
            refund_id=first.refund.refund_id,
        )
    )
    got = (await stub.GetPayment(pb.GetPaymentRequest(payment_id=pid))).payment
    assert got.status == "captured"
    assert [r.status for r in got.refunds] == ["failed"]
    assert "RefundFailed" in await svc.event_types(pid)
    rest = await stub.RefundPayment(pb.RefundPaymentRequest(payment_id=pid, idempotency_key="k4"))
    assert rest.refund.amount_minor == 24950


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.RefundPaymentRequest(idempotency_key="k"), "payment_id"),
        (pb.RefundPaymentRequest(payment_id="p"), "idempotency_key"),
        (pb.RefundPaymentRequest(payment_id="p", idempotency_key="   "), "idempotency_key"),
        (pb.GetPaymentRequest(), "payment_id"),
        (pb.ListPaymentsRequest(), "order_id"),
        (pb.ListPaymentsRequest(order_id="o", page_token="%%%"), "page_token"),
        (
            pb.RecordCashPaymentRequest(
                amount_minor=1, currency="MXN", method="cash_on_delivery", idempotency_key="k"
            ),
            "order_id",
        ),
        (
            pb.RecordCashPaymentRequest(
                order_id="o",
                amount_minor=1,
                currency="XXZ",
                method="cash_on_delivery",
                idempotency_key="k",
            ),
            "currency",
        ),
        (
            pb.RecordCashPaymentRequest(
                order_id="o", amount_minor=1, currency="MXN", method="iou", idempotency_key="k"
            ),
            "method",
        ),
        (
            pb.RecordCashPaymentRequest(
                order_id="o", amount_minor=1, currency="MXN", method="cash_on_delivery"
            ),
            "idempotency_key",
        ),
    ],
)
async def test_invalid_requests_name_the_field(svc, request_, field: str) -> None:
    _, stub = await svc.tenant()
    method = {
        pb.RefundPaymentRequest: stub.RefundPayment,
        pb.GetPaymentRequest: stub.GetPayment,
        pb.ListPaymentsRequest: stub.ListPayments,
        pb.RecordCashPaymentRequest: stub.RecordCashPayment,
    }[type(request_)]
    await expect_error(method(request_), grpc.StatusCode.INVALID_ARGUMENT, field)


async def test_record_cash_payment(svc) -> None:
    tenant, stub = await svc.tenant()
    order_id = await cash_order(svc, tenant)
    request = pb.RecordCashPaymentRequest(
        order_id=order_id,
        amount_minor=24950,
        currency="mxn",
        method="cash_on_delivery",
        idempotency_key="collect-1",
        collected_by="driver-7",
    )
    # Wrong method for this order's payment.
    wrong = pb.RecordCashPaymentRequest()
    wrong.CopyFrom(request)
    wrong.method = "card_on_delivery"
    await expect_error(stub.RecordCashPayment(wrong), grpc.StatusCode.FAILED_PRECONDITION)

    reply = await stub.RecordCashPayment(request)
    assert (reply.payment.status, reply.payment.captured_minor) == ("captured", 24950)
    pid = reply.payment.payment_id
    [*_, captured] = await svc.events(pid)
    assert isinstance(captured, pe.PaymentCaptured)
    assert (captured.method, captured.collected_by, captured.provider_event_id) == (
        "cash_on_delivery",
        "driver-7",
        "collect-1",
    )
    # Idempotent by key; another key finds nothing awaiting collection.
    again = await stub.RecordCashPayment(request)
    assert again.payment == reply.payment
    assert (await svc.event_types(pid)).count("PaymentCaptured") == 1
    other = pb.RecordCashPaymentRequest()
    other.CopyFrom(request)
    other.idempotency_key = "collect-2"
    await expect_error(stub.RecordCashPayment(other), grpc.StatusCode.FAILED_PRECONDITION)
    # A cash refund needs no provider call: refunded at once.
    refund = await stub.RefundPayment(
        pb.RefundPaymentRequest(payment_id=pid, amount_minor=950, idempotency_key="r1")
    )
    assert (refund.refund.status, refund.payment.status, refund.payment.refunded_minor) == (
        "succeeded",
        "partially_refunded",
        950,
    )
    assert (await svc.event_types(pid))[-2:] == ["RefundRequested", "PaymentRefunded"]


async def test_record_cash_payment_mismatch_is_flagged_and_link_orders_refused(svc) -> None:
    tenant, stub = await svc.tenant()
    order_id = await cash_order(svc, tenant, "card_on_delivery")
    reply = await stub.RecordCashPayment(
        pb.RecordCashPaymentRequest(
            order_id=order_id,
            amount_minor=20000,
            currency="MXN",
            method="card_on_delivery",
            idempotency_key="c1",
        )
    )
    assert (reply.payment.status, reply.payment.flag_reason) == ("flagged", "amount_mismatch")
    link_order = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, link_order))
    await expect_error(
        stub.RecordCashPayment(
            pb.RecordCashPaymentRequest(
                order_id=link_order,
                amount_minor=24950,
                currency="MXN",
                method="cash_on_delivery",
                idempotency_key="c2",
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    # Not captured: nothing to refund.
    link_pid = svc.payment_id_of(tenant, link_order, 1)
    await expect_error(
        stub.RefundPayment(pb.RefundPaymentRequest(payment_id=link_pid, idempotency_key="r")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_list_payments_of_an_order_paged(svc) -> None:
    tenant, stub = await svc.tenant()
    order_id = unique_name("ord")
    await svc.orders(*(svc.awaiting_payment(tenant, order_id, attempt=a) for a in (1, 2, 3)))
    first = await stub.ListPayments(pb.ListPaymentsRequest(order_id=order_id, page_size=2))
    assert [p.attempt for p in first.payments] == [1, 2]
    assert first.next_page_token
    rest = await stub.ListPayments(
        pb.ListPaymentsRequest(order_id=order_id, page_size=2, page_token=first.next_page_token)
    )
    assert [p.attempt for p in rest.payments] == [3]
    assert rest.next_page_token == ""
    assert {p.payment_id for p in [*first.payments, *rest.payments]} == {
        svc.payment_id_of(tenant, order_id, a) for a in (1, 2, 3)
    }
    everything = await stub.ListPayments(pb.ListPaymentsRequest(order_id=order_id))
    assert len(everything.payments) == 3 and everything.payments[0].tenant_id == tenant


async def test_tenant_isolation(svc) -> None:
    tenant, stub = await svc.tenant()
    _, other = await svc.tenant()
    pid, _ = await captured_payment(svc, tenant)
    order_id = (await stub.GetPayment(pb.GetPaymentRequest(payment_id=pid))).payment.order_id
    await expect_error(
        other.GetPayment(pb.GetPaymentRequest(payment_id=pid)), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        other.RefundPayment(pb.RefundPaymentRequest(payment_id=pid, idempotency_key="steal")),
        grpc.StatusCode.NOT_FOUND,
    )
    assert (
        list((await other.ListPayments(pb.ListPaymentsRequest(order_id=order_id))).payments) == []
    )
    cash = await cash_order(svc, tenant)
    await expect_error(
        other.RecordCashPayment(
            pb.RecordCashPaymentRequest(
                order_id=cash,
                amount_minor=24950,
                currency="MXN",
                method="cash_on_delivery",
                idempotency_key="k",
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    # Nothing of the other tenant's calls touched the payment.
    assert "RefundRequested" not in await svc.event_types(pid)


async def test_no_credentials_is_unauthenticated(svc) -> None:
    channel = create_channel(svc.address, telemetry_enabled=False)
    try:
        stub = pb_grpc.PaymentsServiceStub(channel)
        await expect_error(
            stub.GetPayment(pb.GetPaymentRequest(payment_id="x")), grpc.StatusCode.UNAUTHENTICATED
        )
    finally:
        await channel.close()
