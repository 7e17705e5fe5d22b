"""Payment actions, the pure part: what to ask the provider for a payments event, which account
to ask it with, and the ChannelPaymentActionCompleted that records the outcome. No I/O here.

The payments service decides (amounts, which payment is due, refunds); the gateway only carries
the calls out because it alone holds the provider secrets. Every call carries an idempotency key
derived from the event that asked for it, and every outcome is an event whose id derives from
the request event id and the action, so a redelivered request records one outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay.payments.v1 import payments_events_pb2 as pay
from parlay_gateway.accounts import ChannelAccount
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, to_timestamp

STRIPE = "stripe"
TELEGRAM = "telegram"

CREATE_CHECKOUT_SESSION = "create_checkout_session"
CREATE_REFUND = "create_refund"
EXPIRE_CHECKOUT_SESSION = "expire_checkout_session"
SEND_INVOICE = "send_invoice"
ANSWER_PRE_CHECKOUT_QUERY = "answer_pre_checkout_query"

AGGREGATE_TYPE = "payment_actions"
#: Telegram's limits for sendInvoice (title 1-32 characters, description 1-255).
TITLE_MAX = 32
DESCRIPTION_MAX = 255


class InvalidPaymentRequest(ValueError):
    """A request that cannot be carried out exactly once (no payment id, no idempotency key):
    the handler raises it, so the event is dead-lettered with the reason."""


@dataclass(frozen=True, slots=True)
class Result:
    """What a provider call came to."""

    ok: bool
    attempts: int = 0
    #: A failure that retrying cannot fix (4xx, no account) vs. retries exhausted.
    permanent: bool = False
    error_code: str = ""
    error_message: str = ""
    #: cs_... / re_... (Stripe), the invoice's message id (Telegram).
    provider_object_id: str = ""
    checkout_url: str = ""
    expires_at: datetime | None = None
    provider_message_id: str = ""
    amount_minor: int = 0
    currency: str = ""

    @staticmethod
    def refused(code: str, message: str) -> Result:
        """A permanent failure decided before any provider call."""
        return Result(ok=False, permanent=True, error_code=code, error_message=message)


# --------------------------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------------------------


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


def choose_stripe_account(accounts: Iterable[ChannelAccount]) -> ChannelAccount | None:
    """The tenant's Stripe account for new checkout sessions: the one whose settings say
    "default": "true" (the oldest such, should several), else the oldest."""
    candidates = sorted(
        (a for a in accounts if a.channel == STRIPE),
        key=lambda a: (not truthy(a.settings.get("default")), a.created_at, a.channel_account_id),
    )
    return candidates[0] if candidates else None


def check_account(
    account: ChannelAccount | None, *, channel: str, tenant_id: str, account_id: str
) -> Result | None:
    """None if `account` may be used for the tenant's call, else the permanent refusal. An
    account of another tenant is reported exactly like a missing one (no existence leak)."""
    if account is None or account.tenant_id != tenant_id or account.channel != channel:
        return Result.refused(f"no_{channel}_account", f"no {channel} account {account_id!r}")
    return None


# --------------------------------------------------------------------------------------------
# Stripe requests
# --------------------------------------------------------------------------------------------


def require_fields(message: Any, *names: str) -> None:
    for name in names:
        if not getattr(message, name):
            raise InvalidPaymentRequest(f"{type(message).__name__}.{name} is required")


def checkout_session_params(
    req: pay.PaymentRequested, *, tenant_id: str, success_url: str, cancel_url: str
) -> dict[str, Any]:
    """POST /v1/checkout/sessions for exactly the order's total: one line item of the whole
    amount, quantity 1, so Stripe charges amount_minor in currency and nothing else."""
    metadata = {"order_id": req.order_id, "payment_id": req.payment_id, "tenant_id": tenant_id}
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": req.currency.lower(),
                    "unit_amount": req.amount_minor,
                    "product_data": {"name": req.description or f"Order {req.order_id}"},
                },
                "quantity": 1,
            }
        ],
        "client_reference_id": req.order_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": dict(metadata)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }


def amount_problem(amount_minor: int, currency: str) -> Result | None:
    """Refuse before calling the provider what it would refuse anyway."""
    if amount_minor <= 0:
        return Result.refused(
            "invalid_amount", f"amount_minor must be positive, got {amount_minor}"
        )
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        return Result.refused(
            "invalid_currency", f"currency must be upper-case ISO 4217, got {currency!r}"
        )
    return None


def refund_params(req: pay.RefundRequested) -> dict[str, Any]:
    return {
        "payment_intent": req.provider_payment_id,
        "amount": req.amount_minor,
        "metadata": {"refund_id": req.refund_id, "payment_id": req.payment_id},
    }


def refund_idempotency_key(req: pay.RefundRequested) -> str:
    return f"refund:{req.refund_id}"


def expire_idempotency_key(req: pay.PaymentCancelled) -> str:
    return f"expire:{req.provider_session_id}"


# --------------------------------------------------------------------------------------------
# Telegram requests
# --------------------------------------------------------------------------------------------


def provider_token(account: ChannelAccount, currency: str) -> str:
    """The payment provider token (from @BotFather) for sendInvoice; empty for Telegram Stars
    (XTR), which need none. A secret, so it is read from the credentials first."""
    if currency.upper() == "XTR":
        return ""
    return account.credential("payment_provider_token") or account.settings.get(
        "payment_provider_token", ""
    )


def invoice_params(req: pay.TelegramInvoiceRequested, token: str) -> dict[str, Any]:
    """sendInvoice parameters. Title and description are cut to Telegram's limits (a shortened
    label beats no invoice); the price is exactly the payment's amount."""
    title = (req.title or f"Order {req.order_id}")[:TITLE_MAX]
    return {
        "chat_id": req.chat_id,
        "title": title,
        "description": (req.description or title)[:DESCRIPTION_MAX],
        "payload": req.payload,
        "provider_token": token,
        "currency": req.currency.upper(),
        "prices": [{"label": title, "amount": req.amount_minor}],
    }


def pre_checkout_params(req: pay.PreCheckoutQueryAnswered) -> dict[str, Any]:
    params: dict[str, Any] = {"pre_checkout_query_id": req.pre_checkout_query_id, "ok": req.ok}
    if not req.ok:
        # Required by Telegram when ok is false; shown to the customer.
        params["error_message"] = req.error_message or "This order can no longer be paid."
    return params


# --------------------------------------------------------------------------------------------
# The outcome event
# --------------------------------------------------------------------------------------------


def outcome_event_id(request_event_id: str, action: str) -> str:
    return deterministic_event_id("payment-action", request_event_id, action)


def outcome_aggregate_id(channel_account_id: str, tenant_id: str) -> str:
    """ "payment-actions:<channel_account_id>"; a call refused for want of an account has no
    account, so it goes on the tenant's own stream of those."""
    if channel_account_id:
        return f"payment-actions:{channel_account_id}"
    return f"payment-actions:tenant:{tenant_id}"


def outcome_event(
    *,
    tenant_id: str,
    channel: str,
    channel_account_id: str,
    action: str,
    request_event_id: str,
    payment_id: str,
    result: Result,
    completed_at: datetime,
    idempotency_key: str = "",
    refund_id: str = "",
    amount_minor: int = 0,
    currency: str = "",
) -> NewEvent:
    payload = gw.ChannelPaymentActionCompleted(
        channel=channel,
        channel_account_id=channel_account_id,
        action=action,
        request_event_id=request_event_id,
        payment_id=payment_id,
        ok=result.ok,
        error_code=result.error_code,
        error_message=result.error_message[:1000],
        provider_message_id=result.provider_message_id,
        completed_at=to_timestamp(completed_at),
        provider_object_id=result.provider_object_id,
        checkout_url=result.checkout_url,
        amount_minor=result.amount_minor or amount_minor,
        currency=(result.currency or currency).upper(),
        refund_id=refund_id,
        idempotency_key=idempotency_key,
        attempts=result.attempts,
        permanent=result.permanent,
    )
    if result.expires_at is not None:
        payload.expires_at.CopyFrom(to_timestamp(result.expires_at))
    return NewEvent(
        event_id=outcome_event_id(request_event_id, action),
        tenant_id=tenant_id,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=outcome_aggregate_id(channel_account_id, tenant_id),
        payload=payload,
        occurred_at=completed_at,
        topic=topics.INBOUND,
    )
