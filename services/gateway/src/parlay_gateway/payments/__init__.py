"""Payment actions: the provider calls the payments service asks for (the gateway alone holds
the provider secrets), carried out exactly once and recorded as ChannelPaymentActionCompleted.

    actions.py       pure: request parameters, account choice, the outcome event
    stripe_api.py    Stripe with the official library; tenacity retries, same idempotency key
    telegram_api.py  Bot API sendInvoice / answerPreCheckoutQuery over the outbound HTTP plumbing
    handler.py       the projector handler (batches of requests -> calls -> outcomes)

See docs/channels.md (Stripe) and docs/order-to-cash.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parlay_gateway.account_store import AccountRepository
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.payments.handler import PRE_CHECKOUT, STRIPE_AND_INVOICES, PaymentActions
from parlay_gateway.payments.stripe_api import StripeApi
from parlay_gateway.payments.telegram_api import TelegramPayments
from parlay_gateway.settings import GatewaySettings
from parlay_kit import topics
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime

#: Projector names (consumer groups "<schema>.<name>"), both on parlay.payments.v1.
ACTIONS = "payment-actions"
PRE_CHECKOUT_ANSWERS = "pre-checkout-answers"


@dataclass
class Payments:
    stripe: StripeApi
    telegram: TelegramPayments
    actions: Projector
    pre_checkout: Projector


def wire(
    runtime: ServiceRuntime,
    *,
    settings: GatewaySettings,
    telegram_base_url: Callable[[ChannelAccount], str],
) -> Payments:
    """Add the two payment-action projectors (and the closing of their HTTP clients)."""
    stripe_api = StripeApi(
        base_url=settings.stripe_api_base_url,
        timeout_seconds=settings.stripe_timeout_seconds,
        connect_timeout_seconds=settings.stripe_connect_timeout_seconds,
        max_attempts=settings.stripe_max_attempts,
        backoff_base_seconds=settings.stripe_backoff_base_seconds,
        backoff_max_seconds=settings.stripe_backoff_max_seconds,
    )
    telegram = TelegramPayments(
        base_url=telegram_base_url,
        timeout_seconds=settings.telegram_payments_timeout_seconds,
        invoice_max_attempts=settings.telegram_invoice_max_attempts,
        pre_checkout_budget_seconds=settings.telegram_pre_checkout_budget_seconds,
    )
    repository = AccountRepository(runtime.schema)

    def handler(handles: Any) -> PaymentActions:
        return PaymentActions(
            repository=repository,
            stripe_api=stripe_api,
            telegram=telegram,
            success_url=settings.stripe_success_url,
            cancel_url=settings.stripe_cancel_url,
            concurrency=settings.payment_actions_concurrency,
            handles=handles,
        )

    actions = runtime.add_projector(ACTIONS, [topics.PAYMENTS], handler(STRIPE_AND_INVOICES))
    pre_checkout = runtime.add_projector(
        PRE_CHECKOUT_ANSWERS, [topics.PAYMENTS], handler(PRE_CHECKOUT)
    )

    async def close_clients(stop: Any) -> None:
        await stop.wait()
        await stripe_api.close()
        await telegram.close()

    runtime.add_task("payment-action-clients", close_clients, role="projectors")
    return Payments(stripe_api, telegram, actions, pre_checkout)
