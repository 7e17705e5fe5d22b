"""The pure parts of the payment actions: account choice, request parameters, the outcome event,
and how provider answers are classified (retry or permanent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay.payments.v1 import payments_events_pb2 as pay
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.senders.base import ProviderResponse
from parlay_gateway.payments import actions as a
from parlay_gateway.payments.stripe_api import failure, is_retryable
from parlay_gateway.payments.telegram_api import classify
from parlay_kit import topics
from parlay_kit.envelope import deterministic_event_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def account(
    account_id: str, *, channel: str = "stripe", tenant: str = "t1", age: int = 0, **settings: str
) -> ChannelAccount:
    return ChannelAccount(
        channel_account_id=account_id,
        tenant_id=tenant,
        channel=channel,
        credentials={"api_key": "sk_test_x", "webhook_secret": "whsec_x"},
        settings=settings,
        created_at=T0 - timedelta(days=age),
    )


def test_default_then_oldest_stripe_account() -> None:
    assert a.choose_stripe_account([]) is None
    oldest, newer = account("b", age=10), account("a", age=1)
    assert a.choose_stripe_account([newer, oldest]).channel_account_id == "b"
    marked = account("c", age=0, default="true")
    assert a.choose_stripe_account([newer, oldest, marked]).channel_account_id == "c"
    not_marked = account("d", age=20, default="false")
    assert a.choose_stripe_account([newer, not_marked]).channel_account_id == "d"
    tg = account("e", channel="telegram", age=99)
    assert a.choose_stripe_account([tg]) is None


def test_accounts_of_other_tenants_or_channels_are_refused() -> None:
    ok = account("a")
    assert a.check_account(ok, channel="stripe", tenant_id="t1", account_id="a") is None
    for bad, tenant in ((ok, "t2"), (account("a", channel="telegram"), "t1"), (None, "t1")):
        refused = a.check_account(bad, channel="stripe", tenant_id=tenant, account_id="a")
        assert refused is not None and refused.permanent and not refused.ok
        assert refused.error_code == "no_stripe_account"


def test_checkout_session_is_one_line_of_exactly_the_total() -> None:
    req = pay.PaymentRequested(
        payment_id="p1", order_id="o1", amount_minor=1234, currency="JPY", idempotency_key="k"
    )
    params = a.checkout_session_params(req, tenant_id="t1", success_url="s", cancel_url="c")
    meta = {"order_id": "o1", "payment_id": "p1", "tenant_id": "t1"}
    assert params == {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "jpy",
                    "unit_amount": 1234,
                    "product_data": {"name": "Order o1"},
                },
                "quantity": 1,
            }
        ],
        "client_reference_id": "o1",
        "metadata": meta,
        "payment_intent_data": {"metadata": meta},
        "success_url": "s",
        "cancel_url": "c",
    }
    assert a.amount_problem(1234, "JPY") is None
    assert a.amount_problem(0, "EUR").error_code == "invalid_amount"
    assert a.amount_problem(5, "eur").error_code == "invalid_currency"


def test_invalid_requests_raise_so_they_are_dead_lettered() -> None:
    with pytest.raises(a.InvalidPaymentRequest, match="idempotency_key"):
        a.require_fields(
            pay.PaymentRequested(payment_id="p", order_id="o"),
            "payment_id",
            "order_id",
            "idempotency_key",
        )


def test_invoice_parameters() -> None:
    tg = ChannelAccount(
        "tg", "t1", "telegram", {"bot_token": "1:x", "payment_provider_token": "ptok"}, {}, T0
    )
    req = pay.TelegramInvoiceRequested(
        chat_id="42", title="A very long order title that Telegram would refuse", payload="pl",
        currency="EUR", amount_minor=500, order_id="o1",
    )  # fmt: skip
    params = a.invoice_params(req, a.provider_token(tg, req.currency))
    assert len(params["title"]) == a.TITLE_MAX
    assert params["description"] == params["title"]
    assert params["prices"] == [{"label": params["title"], "amount": 500}]
    assert params["provider_token"] == "ptok"
    assert a.provider_token(tg, "XTR") == ""
    assert a.pre_checkout_params(
        pay.PreCheckoutQueryAnswered(pre_checkout_query_id="q", ok=True)
    ) == {
        "pre_checkout_query_id": "q",
        "ok": True,
    }
    refused = a.pre_checkout_params(pay.PreCheckoutQueryAnswered(pre_checkout_query_id="q"))
    assert refused["ok"] is False and refused["error_message"]


def test_outcome_event_is_deterministic_per_request_and_action() -> None:
    result = a.Result(
        ok=True,
        attempts=2,
        provider_object_id="cs_1",
        checkout_url="u",
        expires_at=T0,
        amount_minor=5,
        currency="eur",
    )
    kwargs = dict(
        tenant_id="t1", channel="stripe", channel_account_id="acc", action=a.CREATE_CHECKOUT_SESSION,
        request_event_id="req-1", payment_id="p1", result=result, completed_at=T0, idempotency_key="k",
    )  # fmt: skip
    event = a.outcome_event(**kwargs)  # type: ignore[arg-type]
    again = a.outcome_event(**{**kwargs, "completed_at": T0 + timedelta(seconds=5)})  # type: ignore[arg-type]
    assert (
        event.event_id
        == again.event_id
        == deterministic_event_id("payment-action", "req-1", a.CREATE_CHECKOUT_SESSION)
    )
    assert (
        a.outcome_event(**{**kwargs, "action": a.EXPIRE_CHECKOUT_SESSION}).event_id
        != event.event_id
    )  # type: ignore[arg-type]
    assert (event.aggregate_id, event.topic) == ("payment-actions:acc", topics.INBOUND)
    p = event.payload
    assert isinstance(p, gw.ChannelPaymentActionCompleted)
    assert (p.ok, p.attempts, p.provider_object_id, p.currency, p.amount_minor) == (
        True,
        2,
        "cs_1",
        "EUR",
        5,
    )
    assert p.expires_at.seconds == int(T0.timestamp())
    no_account = a.outcome_event(**{**kwargs, "channel_account_id": ""})  # type: ignore[arg-type]
    assert no_account.aggregate_id == "payment-actions:tenant:t1"


def _stripe_error(
    cls: type, status: int | None, code: str = "", type_: str = ""
) -> stripe.StripeError:
    body = {"error": {"message": "m", "code": code, "type": type_}} if status else None
    if not status:
        return cls("network down")
    if cls in (stripe.InvalidRequestError, stripe.CardError):  # these take (message, param, code)
        return cls("message", "param", code, http_status=status, json_body=body)
    return cls("message", http_status=status, json_body=body, code=code or None)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (_stripe_error(stripe.APIConnectionError, None), True),
        (_stripe_error(stripe.RateLimitError, 429, "rate_limit"), True),
        (_stripe_error(stripe.APIError, 500, type_="api_error"), True),
        (_stripe_error(stripe.APIError, 503), True),
        (_stripe_error(stripe.APIError, 409, type_="idempotency_error"), True),
        (_stripe_error(stripe.InvalidRequestError, 400, "parameter_invalid"), False),
        (_stripe_error(stripe.AuthenticationError, 401), False),
        (_stripe_error(stripe.CardError, 402, "card_declined"), False),
        (_stripe_error(stripe.PermissionError, 403), False),
        (_stripe_error(stripe.InvalidRequestError, 404, "resource_missing"), False),
    ],
)
def test_stripe_errors_retry_or_fail_for_good(error: stripe.StripeError, retry: bool) -> None:
    assert is_retryable(error) is retry
    result = failure(error, 3)
    assert (result.ok, result.permanent, result.attempts) == (False, not retry, 3)
    assert result.error_code


def test_telegram_answers() -> None:
    ok = ProviderResponse(200, {}, b'{"ok":true,"result":{"message_id":77,"chat":{"id":1}}}')
    assert classify(ok, "sendInvoice") == (False, a.Result(ok=True, provider_message_id="77"))
    assert classify(ProviderResponse(200, {}, b'{"ok":true,"result":true}'), "m")[1].ok
    retry, result = classify(
        ProviderResponse(429, {}, b'{"ok":false,"error_code":429,"description":"Too Many","parameters":{"retry_after":3}}'),
        "sendInvoice",
    )  # fmt: skip
    assert retry and not result.ok and not result.permanent
    retry, result = classify(
        ProviderResponse(400, {}, b'{"ok":false,"error_code":400,"description":"Bad Request: PAYMENT_PROVIDER_INVALID"}'),
        "sendInvoice",
    )  # fmt: skip
    assert not retry and result.permanent and "PAYMENT_PROVIDER_INVALID" in result.error_message
    retry, result = classify(ProviderResponse(502, {}, b"<html>bad gateway</html>"), "m")
    assert retry and result.error_code == "502"
