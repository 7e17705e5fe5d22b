"""Test helpers for Stripe: Event payloads in Stripe's documented shape, and the
Stripe-Signature header computed exactly as Stripe documents it (HMAC-SHA256 with the endpoint's
signing secret over "<timestamp>.<raw body>", hex, as `t=<timestamp>,v1=<signature>`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

WEBHOOK_SECRET = "whsec_test_5f2c0a7d9b1e4c3a8f6d2b0e9c7a5f31"
API_KEY = "sk_test_51ParlayGatewayTestKey0000000000000000"
CREDENTIALS = {"webhook_secret": WEBHOOK_SECRET, "api_key": API_KEY}
PROVIDER_EVENT = "parlay.gateway.v1.PaymentProviderEventReceived"
ACTION_COMPLETED = "parlay.gateway.v1.ChannelPaymentActionCompleted"


def evt_id() -> str:
    return "evt_1" + uuid.uuid4().hex[:23]


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    signed = f"{ts}.".encode() + body
    return f"t={ts},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def headers(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": sign(body, secret, timestamp),
    }


def body_of(event: dict[str, Any]) -> bytes:
    """Stripe sends pretty-printed JSON (2-space indent)."""
    return json.dumps(event, indent=2).encode()


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or evt_id(),
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1719411304,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def checkout_session(
    session_id: str = "cs_test_a1uS9U7mL0zDhvwzkx6k7Yhm",
    *,
    status: str = "complete",
    payment_status: str = "paid",
    amount_total: int = 2599,
    currency: str = "eur",
    client_reference_id: str | None = "order-1",
    metadata: dict[str, str] | None = None,
    payment_intent: str | None = "pi_3PVwcnR8QWoDuPnP0abc",
) -> dict:
    return {
        "id": session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "https://example.com/cancel",
        "client_reference_id": client_reference_id,
        "created": 1719411286,
        "currency": currency,
        "customer": None,
        "customer_details": {"email": "jenny@example.com", "tax_exempt": "none", "tax_ids": []},
        "expires_at": 1719497686,
        "livemode": False,
        "metadata": metadata if metadata is not None else {"order_id": "order-1"},
        "mode": "payment",
        "payment_intent": payment_intent,
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "status": status,
        "success_url": "https://example.com/success",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "url": None,
    }


def payment_intent(
    intent_id: str = "pi_3PVwcnR8QWoDuPnP0abc",
    *,
    amount: int = 2599,
    amount_received: int = 2599,
    status: str = "succeeded",
    currency: str = "eur",
    metadata: dict[str, str] | None = None,
    latest_charge: str | None = "ch_3PVwcnR8QWoDuPnP0xyz",
) -> dict:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount_received,
        "capture_method": "automatic",
        "client_secret": "pi_3PVwcnR8QWoDuPnP0abc_secret_x",
        "confirmation_method": "automatic",
        "created": 1719411290,
        "currency": currency,
        "last_payment_error": None,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": metadata if metadata is not None else {"order_id": "order-1"},
        "payment_method_types": ["card"],
        "status": status,
    }


def charge(
    charge_id: str = "ch_3PVwcnR8QWoDuPnP0xyz",
    *,
    amount: int = 2599,
    amount_refunded: int = 0,
    currency: str = "eur",
    payment_intent_id: str = "pi_3PVwcnR8QWoDuPnP0abc",
) -> dict:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": "txn_3PVwcnR8QWoDuPnP0bal",
        "captured": True,
        "created": 1719411291,
        "currency": currency,
        "livemode": False,
        "metadata": {"order_id": "order-1"},
        "paid": True,
        "payment_intent": payment_intent_id,
        "refunded": amount_refunded >= amount,
        "status": "succeeded",
    }
