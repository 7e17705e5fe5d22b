"""Proactive automatic messages (pure): order and payment updates, thank-you after a first
purchase.

The orders and payments services publish their events on parlay.orders.v1 / parlay.payments.v1.
This service wires them by *event type name* (e.g. "parlay.orders.v1.OrderPaid") and reads their
fields by name (customer_id, order_id, checkout_url, total_minor, currency, ...), so it needs none
of their generated classes at build time and starts messaging the moment those events exist.
Tenants override or add texts per event type (InboxSettings.proactive); `{field}` placeholders
take the event's fields. A message whose placeholders the event cannot fill is not sent.
"""

from __future__ import annotations

import contextlib
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay_conversation.domain import PURPOSE_MARKETING, PURPOSE_TRANSACTIONAL
from parlay_kit.money import to_major

ORDERS_PREFIX = "parlay.orders.v1."
PAYMENTS_PREFIX = "parlay.payments.v1."

#: Built-in texts (transactional) by event type. Types that do not exist yet cost nothing.
DEFAULT_MESSAGES: dict[str, str] = {
    "parlay.orders.v1.OrderConfirmationRequested": (
        "Your order {order_id}:\n{summary}\nTotal: {total}\nReply OK to confirm."
    ),
    "parlay.orders.v1.OrderConfirmed": "Your order {order_id} is confirmed. Thank you!",
    "parlay.orders.v1.OrderPaid": "We received your payment for order {order_id}. Thank you!",
    "parlay.orders.v1.OrderOutForDelivery": "Your order {order_id} is on its way.",
    "parlay.orders.v1.OrderDelivered": "Your order {order_id} was delivered. Enjoy!",
    "parlay.orders.v1.OrderCancelled": "Your order {order_id} was cancelled.",
    "parlay.orders.v1.OrderRefunded": "We refunded {amount} for your order {order_id}.",
    "parlay.payments.v1.PaymentLinkCreated": "Pay for your order {order_id} here: {checkout_url}",
    # A new link follows while attempts remain (the reminder), else the order's cancellation.
    "parlay.payments.v1.PaymentExpired": "Your payment link for order {order_id} expired.",
}

#: Event types that count as a purchase (the first one schedules the thank-you).
PURCHASE_EVENT_TYPES = frozenset(
    {"parlay.orders.v1.OrderPaid", "parlay.payments.v1.PaymentCaptured"}
)

THANK_YOU_KIND = "thank_you"
DEFAULT_THANK_YOU = (
    "Thank you for your first purchase with us! We hope you love it. "
    "Reply here any time if you need anything."
)


def is_proactive_source(event_type: str) -> bool:
    return event_type.startswith((ORDERS_PREFIX, PAYMENTS_PREFIX))


def money(minor: int, currency: str) -> str:
    """ "249.50 MXN": the amount in major units (the currency's own exponent) and its code."""
    code = currency.upper()
    return f"{to_major(minor, code):,} {code}"


def fields_of(payload: Message) -> dict[str, str]:
    """The event's fields by name, nested ones flattened (the leaf name and the dotted path),
    plus `total` / `amount` formatted from *_minor amounts and the currency."""
    if payload.DESCRIPTOR.full_name == "google.protobuf.Struct":
        data: Any = json_format.MessageToDict(payload)
    else:
        data = json_format.MessageToDict(payload, preserving_proto_field_name=True)
    out: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
            return
        if isinstance(value, list):
            return
        text = _scalar(value)
        out[path] = text
        leaf = path.rsplit(".", 1)[-1]
        out.setdefault(leaf, text)

    walk(data, "")
    currency = out.get("currency", "")
    for key in ("total_minor", "amount_minor"):
        if key in out and currency:
            with contextlib.suppress(ValueError):
                out.setdefault(key.removesuffix("_minor"), money(int(float(out[key])), currency))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Strict(string.Formatter):
    def get_value(self, key: Any, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        raise KeyError(key)


def render(template: str, fields: Mapping[str, str]) -> str | None:
    """The text with {field} placeholders filled; None when a placeholder has no value."""
    try:
        text = _Strict().format(template, **fields)
    except (KeyError, IndexError, ValueError):
        return None
    return text


@dataclass(frozen=True, slots=True)
class ProactivePlan:
    text: str
    purpose: str
    template_name: str
    template_language: str
    template_parameters: tuple[str, ...]


def plan_for(
    event_type: str, fields: Mapping[str, str], settings: ce.InboxSettings
) -> tuple[ProactivePlan | None, str]:
    """What to send for an event (or None and why not)."""
    configured = settings.proactive.get(event_type)
    if configured is not None and configured.disabled:
        return None, "disabled"
    template = (configured.text if configured is not None else "") or DEFAULT_MESSAGES.get(
        event_type, ""
    )
    if not template:
        return None, "no message for this event type"
    text = render(template, fields)
    if text is None:
        return None, "missing_field"
    purpose = (configured.purpose if configured is not None else "") or PURPOSE_TRANSACTIONAL
    params: tuple[str, ...] = ()
    name = language = ""
    if configured is not None and configured.template_name:
        name, language = configured.template_name, configured.template_language or "en"
        values = [fields.get(p) for p in configured.template_parameters]
        if any(v is None for v in values):
            name = ""  # cannot fill the template: send text inside the window only
        else:
            params = tuple(str(v) for v in values)
    return ProactivePlan(text, purpose, name, language, params), ""


def thank_you_text(settings: ce.InboxSettings) -> str:
    return settings.thank_you_text or DEFAULT_THANK_YOU


THANK_YOU_PURPOSE = PURPOSE_MARKETING
