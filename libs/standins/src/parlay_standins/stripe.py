"""Stripe API stand-in: Checkout Sessions, PaymentIntents, Charges, Refunds, Events and signed
webhooks, in Stripe's documented wire format, so the official `stripe` library runs against it.

    POST /stripe/v1/checkout/sessions                     create (form-encoded, nested params)
    GET  /stripe/v1/checkout/sessions[/{id}]              list (limit, starting_after,
                                                          ending_before, status, payment_intent)
    GET  /stripe/v1/checkout/sessions/{id}/line_items
    POST /stripe/v1/checkout/sessions/{id}/expire
    GET  /stripe/v1/payment_intents/{id}   GET /stripe/v1/charges/{id}
    POST /stripe/v1/refunds                GET /stripe/v1/refunds[/{id}]
    GET  /stripe/v1/events[/{id}]
    GET  /stripe/pay/{session_id}                         the hosted checkout page (HTML)

Authorization: Bearer <secret key>; once a "stripe" account is registered (credentials api_key,
webhook_secret; webhook_url), unknown keys get 401. Objects are visible only to the key that
created them (like separate Stripe accounts). Idempotency-Key works as Stripe documents: keyed
per API key, the first outcome of a request that ran is replayed (header Idempotent-Replayed:
true), the same key with other parameters or on another endpoint is a 400 idempotency_error,
and injected 429/5xx errors (the endpoint never ran) leave the key free.

Every state change creates an Event (evt_...) delivered by POST to the webhook_url of every
stripe account registered with the API key, signed `Stripe-Signature: t=<unix>,v1=<hex
HMAC-SHA256(webhook_secret, "<t>.<body>")>`, retried a few times when the receiver fails.
The control side (/_standin/stripe/..., see app.py) plays the customer: pay, expire, and
lists/resends events.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from parlay_standins.common import base_url, bearer, retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord, StandinState

router = APIRouter(prefix="/stripe")
control = APIRouter(prefix="/_standin/stripe")
FAMILY = "stripe"
#: The API version events are rendered with (stripe-python 16.1's pinned version).
API_VERSION = "2026-10-28.endive"
#: Seconds between webhook delivery attempts after a failure (Stripe retries for days).
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.5, 3.0)
#: Currencies without minor units (amounts are in the currency's unit).
ZERO_DECIMAL = {
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
}  # fmt: skip
MAX_AMOUNT = 99_999_999
_ALNUM = string.ascii_letters + string.digits

#: Top-level parameters of POST /v1/checkout/sessions we accept (the documented ones); anything
#: else is "Received unknown parameter", as Stripe answers.
SESSION_PARAMS = {
    "adaptive_pricing", "after_expiration", "allow_promotion_codes", "automatic_tax",
    "billing_address_collection", "branding_settings", "cancel_url", "client_reference_id",
    "consent_collection", "currency", "custom_fields", "custom_text", "customer",
    "customer_creation", "customer_email", "customer_update", "discounts", "expand",
    "expires_at", "invoice_creation", "line_items", "locale", "metadata", "mode",
    "optional_items", "payment_intent_data", "payment_method_collection",
    "payment_method_configuration", "payment_method_data", "payment_method_options",
    "payment_method_types", "permissions", "phone_number_collection", "redirect_on_completion",
    "return_url", "saved_payment_method_options", "setup_intent_data",
    "shipping_address_collection", "shipping_options", "submit_type", "subscription_data",
    "success_url",
    "tax_id_collection", "ui_mode", "wallet_options",
}  # fmt: skip
LINE_ITEM_PARAMS = {
    "adjustable_quantity", "dynamic_tax_rates", "price", "price_data", "quantity", "tax_rates"
}  # fmt: skip
PRICE_DATA_PARAMS = {
    "currency", "product", "product_data", "recurring", "tax_behavior", "unit_amount",
    "unit_amount_decimal",
}  # fmt: skip
PRODUCT_DATA_PARAMS = {"description", "images", "metadata", "name", "tax_code", "unit_label"}
REFUND_PARAMS = {
    "amount", "charge", "currency", "customer", "expand", "instructions_email", "metadata",
    "origin", "payment_intent", "reason", "refund_application_fee", "reverse_transfer",
}  # fmt: skip
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


# ------------------------------------------------------------------------------------- errors


class StripeError(Exception):
    """An error answered in Stripe's envelope: {"error": {type, code, message, param, ...}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str = "",
        param: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def reply(self, request_id: str = "") -> Reply:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if request_id:
            error["request_log_url"] = (
                f"https://dashboard.stripe.com/test/logs/{request_id}?t={int(time.time())}"
            )
        return Reply(self.status, {"error": error}, dict(self.headers))


def invalid(message: str, param: str = "", code: str = "parameter_invalid") -> StripeError:
    return StripeError(400, message, code=code, param=param)


def missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def error_reply(rule: FailureRule) -> Reply:
    """Injected failures, rendered as Stripe renders them (the endpoint never ran)."""
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error or ("rate_limited" if rule.status == 429 else "")
    headers = retry_after_headers(rule)
    if kind == "rate_limited":
        return StripeError(
            429,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
            headers=headers,
        ).reply()
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500 and not kind):
        return StripeError(rule.status or 400, "Invalid request (injected).").reply()
    if kind == "unauthorized":
        return StripeError(401, "Invalid API Key provided: sk_test_****").reply()
    return StripeError(
        rule.status or 500,
        "An unknown error occurred (injected by the stand-in).",
        type_="api_error",
        headers=headers,
    ).reply()


# ------------------------------------------------------------------------------------- store


@dataclass
class Target:
    url: str
    secret: str


@dataclass
class StripeEvent:
    id: str
    type: str
    owner: str  # the API key whose account the event belongs to
    session_id: str
    body: str  # exactly what is POSTed (Stripe pretty-prints its webhook JSON)
    targets: list[Target]
    created: int
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The event for the control API: `headers` are signed now (ready to redeliver within
        Stripe's 300 s tolerance); `deliveries` hold the exact headers each attempt carried."""
        secret = self.targets[0].secret if self.targets else ""
        return {
            "id": self.id,
            "type": self.type,
            "session": self.session_id,
            "created": self.created,
            "body": self.body,
            "headers": webhook_headers(secret, self.body) if secret else {},
            "webhook_urls": [t.url for t in self.targets],
            "deliveries": self.deliveries,
        }


@dataclass
class Saved:
    """What an idempotency key is bound to: the endpoint, the parameters and the outcome."""

    method: str
    path: str
    fingerprint: str
    reply: Reply
    request_id: str


class StripeStore:
    def __init__(self) -> None:
        #: object id -> object (sessions, payment intents, charges, refunds), as Stripe renders it.
        self.objects: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        #: object id -> the API key that owns it; object id -> its checkout session.
        self.owner: dict[str, str] = {}
        self.session_of: dict[str, str] = {}
        self.events: list[StripeEvent] = []
        self.idempotency: dict[tuple[str, str], Saved] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        #: webhook URL -> deliveries waiting for it (a worker per URL drains it).
        self.queues: dict[
            str, collections.deque[tuple[StripeEvent, Target, asyncio.Future[None]]]
        ] = {}
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS

    def of_kind(self, kind: str, owner: str) -> list[dict[str, Any]]:
        """Objects of a kind owned by `owner`, newest first (Stripe list order)."""
        found = [
            o for o in self.objects.values() if o["object"] == kind and self.owner[o["id"]] == owner
        ]
        return found[::-1]

    def get(
        self, kind: str, object_id: str, owner: str | None, param: str = "id"
    ) -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if (
            obj is None
            or obj["object"] != kind
            or (owner is not None and self.owner[object_id] != owner)
        ):
            raise no_such(kind, object_id, param)
        return obj

    def event(self, event_id: str) -> StripeEvent | None:
        return next((e for e in self.events if e.id == event_id), None)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.queues.clear()


def store_of(state: StandinState) -> StripeStore:
    store = state.stores.get(FAMILY)
    if store is None:
        store = state.stores[FAMILY] = StripeStore()
    assert isinstance(store, StripeStore)
    return store


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


# ------------------------------------------------------------------------------------- params


_KEY_PART = re.compile(r"\[([^\]]*)\]")


def decode_form(raw: str) -> dict[str, Any]:
    """Stripe's nested form encoding (`a[b][0][c]=v`, as the stripe library writes it) -> dicts
    and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head] + (_KEY_PART.findall("[" + rest) if rest else [])
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        last = parts[-1] if parts[-1] != "" else str(len(node))  # "expand[]=x" style
        node[last] = value
    listed = _listify(root)
    assert isinstance(listed, dict)
    return listed


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def fingerprint(method: str, path: str, raw: str) -> str:
    pairs = sorted(parse_qsl(raw, keep_blank_values=True))
    return hashlib.sha256(json.dumps([method, path, pairs]).encode()).hexdigest()


def as_int(value: Any, param: str, minimum: int = 0) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise invalid(f"Invalid integer: {value}", param, "parameter_invalid_integer") from None
    if number < minimum:
        which = "positive integer" if minimum > 0 else "non-negative integer"
        raise invalid(f"Invalid {which}", param, "parameter_invalid_integer")
    return number


def as_dict(value: Any, param: str) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid hash: {param} must be a hash", param)
    return value


def check_unknown(given: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in given:
        if key not in allowed:
            name = f"{prefix}[{key}]" if prefix else key
            raise StripeError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def metadata_of(value: Any, param: str = "metadata") -> dict[str, str]:
    data = as_dict(value, param)
    if len(data) > 50:
        raise invalid("Metadata can have at most 50 keys.", param)
    out: dict[str, str] = {}
    for key, item in data.items():
        if isinstance(item, (dict, list)):
            raise invalid(f"Invalid value for {param}[{key}]: must be a string", f"{param}[{key}]")
        if len(key) > 40:
            raise invalid("Metadata keys can be at most 40 characters long.", f"{param}[{key}]")
        if len(str(item)) > 500:
            raise invalid("Metadata values can be at most 500 characters long.", f"{param}[{key}]")
        if item != "":  # an empty value unsets the key
            out[key] = str(item)
    return out


def check_url(value: Any, param: str) -> str:
    url = str(value)
    if not re.match(r"^https?://[^\s/]+", url):
        raise invalid("Not a valid URL", param, "url_invalid")
    return url


# ------------------------------------------------------------------------------------- objects


def build_session(
    p: dict[str, Any], *, session_id: str, public_base: str, now: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate the create parameters like Stripe does -> (session, its line items)."""
    check_unknown(p, SESSION_PARAMS)
    mode = p.get("mode")
    if not mode:
        raise missing("mode")
    if mode not in ("payment", "setup", "subscription"):
        raise invalid(
            f"Invalid mode: must be one of payment, setup, or subscription (got {mode!r})", "mode"
        )
    if mode != "payment":
        raise invalid("The stand-in supports only mode=payment.", "mode")
    ui_mode = p.get("ui_mode", "hosted")
    if ui_mode != "hosted":
        raise invalid("The stand-in supports only ui_mode=hosted.", "ui_mode")
    if not p.get("success_url"):
        raise missing("success_url")
    success_url = check_url(p["success_url"], "success_url")
    cancel_url = check_url(p["cancel_url"], "cancel_url") if p.get("cancel_url") else None

    raw_items = p.get("line_items")
    if raw_items in (None, "", []):
        raise missing("line_items")
    if not isinstance(raw_items, list):
        raise invalid("Invalid array", "line_items")
    if len(raw_items) > 100:
        raise invalid("A Checkout Session can have at most 100 line items.", "line_items")
    items: list[dict[str, Any]] = []
    currency = ""
    total = 0
    for i, item in enumerate(raw_items):
        at = f"line_items[{i}]"
        item = as_dict(item, at)
        check_unknown(item, LINE_ITEM_PARAMS, at)
        if item.get("price"):
            raise no_such("price", str(item["price"]), f"{at}[price]")
        if "price_data" not in item:
            raise missing(f"{at}[price_data]")
        pd = as_dict(item["price_data"], f"{at}[price_data]")
        check_unknown(pd, PRICE_DATA_PARAMS, f"{at}[price_data]")
        if pd.get("recurring"):
            raise invalid(
                "You specified `payment` mode but passed a recurring price.", f"{at}[price_data]"
            )
        if not pd.get("currency"):
            raise missing(f"{at}[price_data][currency]")
        cur = str(pd["currency"]).lower()
        if not re.fullmatch(r"[a-z]{3}", cur):
            raise invalid(f"Invalid currency: {pd['currency']}", f"{at}[price_data][currency]")
        if currency and cur != currency:
            raise invalid(
                "All line items must use the same currency.", f"{at}[price_data][currency]"
            )
        currency = cur
        if pd.get("product"):
            raise no_such("product", str(pd["product"]), f"{at}[price_data][product]")
        product = as_dict(pd.get("product_data"), f"{at}[price_data][product_data]")
        check_unknown(product, PRODUCT_DATA_PARAMS, f"{at}[price_data][product_data]")
        if not product.get("name"):
            raise missing(f"{at}[price_data][product_data][name]")
        if "unit_amount" not in pd:
            if "unit_amount_decimal" in pd:
                raise invalid(
                    "The stand-in supports only unit_amount.", f"{at}[price_data][unit_amount]"
                )
            raise missing(f"{at}[price_data][unit_amount]")
        unit = as_int(pd["unit_amount"], f"{at}[price_data][unit_amount]")
        if "quantity" not in item:
            raise missing(f"{at}[quantity]")
        quantity = as_int(item["quantity"], f"{at}[quantity]", minimum=1)
        amount = unit * quantity
        total += amount
        items.append(
            {
                "id": new_id("li_"),
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": cur,
                "description": str(product["name"]),
                "price": {
                    "id": new_id("price_"),
                    "object": "price",
                    "active": False,
                    "billing_scheme": "per_unit",
                    "created": now,
                    "currency": cur,
                    "livemode": False,
                    "metadata": {},
                    "product": new_id("prod_", 14),
                    "type": "one_time",
                    "unit_amount": unit,
                    "unit_amount_decimal": str(unit),
                },
                "quantity": quantity,
            }
        )
    if total > MAX_AMOUNT:
        raise invalid(
            f"The total amount must be no more than {MAX_AMOUNT}.", "line_items", "amount_too_large"
        )

    expires_at = now + 24 * 3600
    if p.get("expires_at") not in (None, ""):
        expires_at = as_int(p["expires_at"], "expires_at")
        if expires_at > now + 24 * 3600 + 5:
            raise invalid(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
                "expires_at",
            )
        if expires_at < now + 30 * 60 - 5:
            raise invalid(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
                "expires_at",
            )
    client_reference_id = p.get("client_reference_id") or None
    if client_reference_id and len(str(client_reference_id)) > 200:
        raise invalid("client_reference_id must be at most 200 characters.", "client_reference_id")
    metadata = metadata_of(p.get("metadata"))
    pi_data = as_dict(p.get("payment_intent_data"), "payment_intent_data")
    if "metadata" in pi_data:
        pi_data["metadata"] = metadata_of(pi_data["metadata"], "payment_intent_data[metadata]")
    types = p.get("payment_method_types") or ["card"]
    session = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": p.get("billing_address_collection"),
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": p.get("customer_creation", "if_required"),
        "customer_details": None,
        "customer_email": p.get("customer_email") or None,
        "discounts": [],
        "expires_at": expires_at,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": p.get("locale") or None,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": types if isinstance(types, list) else [types],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": p.get("submit_type") or None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"{public_base}/stripe/pay/{session_id}",
        "wallet_options": None,
    }
    session["_payment_intent_data"] = pi_data  # kept apart below; never rendered
    return session, items


def new_payment_intent(
    session: dict[str, Any], amount: int, currency: str, data: dict[str, Any], now: int
) -> dict[str, Any]:
    pi_id = new_id("pi_")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": None,
        "description": data.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": dict(data.get("metadata", {})),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": new_id("pm_"),
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": session.get("customer_email"),
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def new_charge(pi: dict[str, Any], session: dict[str, Any], now: int) -> dict[str, Any]:
    charge_id = new_id("ch_")
    details = session.get("customer_details") or {}
    return {
        "id": charge_id,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"],
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn_"),
        "billing_details": {
            "address": None,
            "email": details.get("email"),
            "name": details.get("name"),
            "phone": None,
        },
        "calculated_statement_descriptor": "PARLAY STAND-IN",
        "captured": True,
        "created": now,
        "currency": pi["currency"],
        "customer": None,
        "description": pi["description"],
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": None,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": pi["id"],
        "payment_method": pi["payment_method"],
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "receipt_email": pi["receipt_email"],
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{new_id('', 40)}",
        "refunded": False,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def list_object(url: str, items: list[dict[str, Any]], q: dict[str, Any]) -> dict[str, Any]:
    limit = as_int(q.get("limit", 10), "limit", minimum=1)
    if limit > 100:
        raise invalid("This value must be less than or equal to 100.", "limit")
    ids = [o["id"] for o in items]
    if q.get("starting_after"):
        after = str(q["starting_after"])
        if after not in ids:
            raise no_such("object", after, "starting_after")
        items = items[ids.index(after) + 1 :]
        page = items[:limit]
    elif q.get("ending_before"):
        before = str(q["ending_before"])
        if before not in ids:
            raise no_such("object", before, "ending_before")
        items = items[: ids.index(before)]
        page = items[-limit:]
    else:
        page = items[:limit]
    return {"object": "list", "data": page, "has_more": len(items) > len(page), "url": url}


def expanded(store: StripeStore, session: dict[str, Any], expand: Any) -> dict[str, Any]:
    """A session with `expand[]` applied (line_items, payment_intent), as Stripe embeds them."""
    out = render(session)
    fields = expand if isinstance(expand, list) else ([expand] if expand else [])
    for name in fields:
        if name == "line_items":
            items = store.line_items.get(session["id"], [])
            url = f"/v1/checkout/sessions/{session['id']}/line_items"
            out["line_items"] = {"object": "list", "data": items, "has_more": False, "url": url}
        elif name == "payment_intent":
            if session["payment_intent"]:
                out["payment_intent"] = render(store.objects[session["payment_intent"]])
        else:
            raise invalid(
                f"This property cannot be expanded ({name}). The stand-in expands line_items "
                "and payment_intent.",
                "expand",
            )
    return out


def render(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API shows it (without the stand-in's private keys)."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


# ------------------------------------------------------------------------------------- events


def signature(secret: str, body: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_headers(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Cache-Control": "no-cache",
        "Stripe-Signature": signature(secret, body, ts),
    }


def targets_for(state: StandinState, owner: str) -> list[Target]:
    """Every registered stripe account with this key is a webhook endpoint of its account."""
    return [
        Target(a.webhook_url, a.credentials.get("webhook_secret", ""))
        for a in state.accounts
        if a.channel == "stripe" and a.credentials.get("api_key") == owner and a.webhook_url
    ]


def api_version_for(state: StandinState, owner: str) -> str:
    for a in state.accounts:
        if a.channel == "stripe" and a.credentials.get("api_key") == owner:
            return a.settings.get("api_version", API_VERSION)
    return API_VERSION


def emit(
    state: StandinState,
    type_: str,
    obj: dict[str, Any],
    *,
    owner: str,
    session_id: str,
    request: tuple[str, str] | None,
    previous: dict[str, Any] | None = None,
) -> StripeEvent:
    store = store_of(state)
    targets = targets_for(state, owner)
    now = int(time.time())
    data: dict[str, Any] = {"object": render(obj)}
    if previous is not None:
        data["previous_attributes"] = previous
    event_id = new_id("evt_")
    event = {
        "id": event_id,
        "object": "event",
        "api_version": api_version_for(state, owner),
        "created": now,
        "data": data,
        "livemode": False,
        "pending_webhooks": len(targets),
        "request": {
            "id": request[0] if request else None,
            "idempotency_key": (request[1] or None) if request else None,
        },
        "type": type_,
    }
    created = StripeEvent(
        id=event_id,
        type=type_,
        owner=owner,
        session_id=session_id,
        body=json.dumps(event, indent=2),
        targets=targets,
        created=now,
    )
    store.events.append(created)
    return created


async def deliver_once(
    client: httpx.AsyncClient, event: StripeEvent, target: Target
) -> dict[str, Any]:
    headers = webhook_headers(target.secret, event.body) if target.secret else {}
    attempt: dict[str, Any] = {
        "url": target.url,
        "at": time.time(),
        "headers": headers,
        "status_code": None,
        "error": "",
    }
    try:
        response = await client.post(target.url, content=event.body.encode(), headers=headers)
        attempt["status_code"] = response.status_code
    except httpx.HTTPError as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}"
    event.deliveries.append(attempt)
    return attempt


async def _attempts(
    client: httpx.AsyncClient, store: StripeStore, event: StripeEvent, target: Target
) -> None:
    """One delivery: a failed attempt (no 2xx) is retried after each of retry_delays."""
    for delay in (0.0, *store.retry_delays):
        if delay:
            await asyncio.sleep(delay)
        attempt = await deliver_once(client, event, target)
        code = attempt["status_code"]
        if code is not None and 200 <= code < 300:
            return


async def _endpoint_worker(store: StripeStore, url: str) -> None:
    """Deliveries to one endpoint, one at a time in creation order (Stripe promises no order,
    but a predictable one keeps tests simple; tests reorder through the control API). A
    failing endpoint holds up only its own events. Exits when its queue is empty."""
    queue = store.queues[url]
    client = httpx.AsyncClient(timeout=10.0)
    try:
        while queue:
            event, target, done = queue.popleft()
            try:
                await _attempts(client, store, event, target)
            finally:
                if not done.done():
                    done.set_result(None)
        # No await between the last look at the queue and this: nothing queued is lost.
        store.queues.pop(url, None)
    finally:
        await client.aclose()


def publish(
    state: StandinState, events: list[StripeEvent], enabled: bool = True
) -> list[asyncio.Future[None]]:
    """Queue the events for their endpoints; the futures resolve when each delivery ends."""
    if not enabled:
        return []
    store = store_of(state)
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    for event in events:
        for target in event.targets:
            done: asyncio.Future[None] = loop.create_future()
            futures.append(done)
            queue = store.queues.get(target.url)
            if queue is None:
                queue = store.queues[target.url] = collections.deque()
                store.spawn(_endpoint_worker(store, target.url))
            queue.append((event, target, done))
    return futures


# ------------------------------------------------------------------------------------- actions


def expire_session(
    state: StandinState, session: dict[str, Any], request: tuple[str, str] | None
) -> StripeEvent:
    session["status"] = "expired"
    session["url"] = None
    store = store_of(state)
    return emit(
        state,
        "checkout.session.expired",
        session,
        owner=store.owner[session["id"]],
        session_id=session["id"],
        request=request,
    )


def sweep(state: StandinState) -> None:
    """Open sessions past expires_at expire (Stripe does it on its own; we do it lazily)."""
    store = store_of(state)
    now = time.time()
    expired = [
        expire_session(state, s, None)
        for s in list(store.objects.values())
        if s["object"] == "checkout.session" and s["status"] == "open" and s["expires_at"] <= now
    ]
    publish(state, expired)


def pay_session(
    state: StandinState,
    session: dict[str, Any],
    *,
    amount: int | None = None,
    currency: str | None = None,
) -> list[StripeEvent]:
    """The customer pays: the session completes, a PaymentIntent and its Charge succeed."""
    store = store_of(state)
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is no longer open (status {session['status']!r}).",
            "session",
            "checkout_session_not_open",
        )
    now = int(time.time())
    paid_amount = session["amount_total"] if amount is None else amount
    paid_currency = (currency or session["currency"]).lower()
    # An override is as if the session had been created for that amount: every object the
    # webhooks carry agrees, so the receiver sees a consistent (but unexpected) payment.
    session["amount_total"] = session["amount_subtotal"] = paid_amount
    session["currency"] = paid_currency
    session["customer_details"] = {
        "address": None,
        "email": session.get("customer_email") or "customer@example.com",
        "name": "Stand-in Customer",
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    pi = new_payment_intent(
        session, paid_amount, paid_currency, session.get("_payment_intent_data", {}), now
    )
    charge = new_charge(pi, session, now)
    pi["latest_charge"] = charge["id"]
    owner = store.owner[session["id"]]
    for obj in (pi, charge):
        store.objects[obj["id"]] = obj
        store.owner[obj["id"]] = owner
        store.session_of[obj["id"]] = session["id"]
    session.update(status="complete", payment_status="paid", payment_intent=pi["id"], url=None)
    kw: dict[str, Any] = {"owner": owner, "session_id": session["id"], "request": None}
    return [
        emit(state, "checkout.session.completed", session, **kw),
        emit(state, "payment_intent.succeeded", pi, **kw),
        emit(state, "charge.succeeded", charge, **kw),
    ]


# ------------------------------------------------------------------------------------- API


@dataclass
class Call:
    record: RequestRecord
    api_key: str
    request_id: str
    params: dict[str, Any]

    @property
    def origin(self) -> tuple[str, str]:
        """(request id, idempotency key) for the events this call causes."""
        return self.request_id, self.record.idempotency_key


def _authenticate(state: StandinState, record: RequestRecord) -> str:
    key = bearer(record)
    if not key:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
            "or we can help at https://support.stripe.com/.",
        )
    if not state.credential_ok(FAMILY, api_key=key):
        shown = key[:8] + "*" * 12 + key[-4:] if len(key) > 12 else "****"
        raise StripeError(401, f"Invalid API Key provided: {shown}")
    return key


async def _api(
    request: Request, run: Callable[[Call], dict[str, Any]], *, mutating: bool = False
) -> Response:
    """One API call: auth, Stripe-style idempotency (per API key), then `run(call) -> body`."""
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        request_id = new_id("req_", 14)
        base_headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        record.channel = "stripe"
        try:
            api_key = _authenticate(state, record)
            record.credential = api_key
            store = store_of(state)
            key = record.idempotency_key if record.method == "POST" else ""
            fp = fingerprint(record.method, record.path, record.raw_body)
            saved = store.idempotency.get((api_key, key)) if key else None
            if saved is not None:
                if (saved.method, saved.path) != (record.method, record.path):
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used for the same endpoint "
                        f"they were first used for ('{saved.path}' vs '{record.path}'). Try "
                        f"using a key other than '{key}' if you meant to execute a different "
                        "request.",
                        type_="idempotency_error",
                    )
                if saved.fingerprint != fp:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        type_="idempotency_error",
                    )
                record.replayed = True
                headers = {
                    **saved.reply.headers,
                    "Request-Id": request_id,
                    "Idempotent-Replayed": "true",
                    "Original-Request": saved.request_id,
                }
                return Reply(saved.reply.status, saved.reply.body, headers)
            sweep(state)
            params = decode_form(record.raw_body if record.method == "POST" else request.url.query)
            body = run(Call(record, api_key, request_id, params))
            reply = Reply(200, body, dict(base_headers))
            if mutating:
                record.accepted = True
            if key:
                # The endpoint ran: its outcome belongs to the key from now on, even if the
                # client gives up waiting (a delay rule) and retries.
                store.idempotency[(api_key, key)] = Saved(
                    record.method, record.path, fp, reply, request_id
                )
            return reply
        except StripeError as exc:
            reply = exc.reply(request_id)
            reply.headers.update(base_headers)
            return reply

    return await serve(request, FAMILY, handle, error_reply, idempotency=False)


def _public_base(request: Request, state: StandinState, api_key: str) -> str:
    for a in state.accounts:
        stripe_key = a.channel == "stripe" and a.credentials.get("api_key") == api_key
        if stripe_key and a.settings.get("public_base_url"):
            return a.settings["public_base_url"].rstrip("/")
    return base_url(request)


@router.post("/v1/checkout/sessions")
async def create_session(request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        store = store_of(state)
        session_id = new_id("cs_test_", 58)
        session, items = build_session(
            call.params,
            session_id=session_id,
            public_base=_public_base(request, state, call.api_key),
            now=int(time.time()),
        )
        store.objects[session_id] = session
        store.owner[session_id] = call.api_key
        store.session_of[session_id] = session_id
        store.line_items[session_id] = items
        call.record.provider_message_id = session_id
        return expanded(store, session, call.params.get("expand"))

    return await _api(request, run, mutating=True)


@router.get("/v1/checkout/sessions")
async def list_sessions(request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        items = store_of(state).of_kind("checkout.session", call.api_key)
        q = call.params
        if q.get("status"):
            items = [s for s in items if s["status"] == q["status"]]
        if q.get("payment_intent"):
            items = [s for s in items if s["payment_intent"] == q["payment_intent"]]
        if q.get("client_reference_id"):  # not a Stripe filter, but handy in tests
            items = [s for s in items if s["client_reference_id"] == q["client_reference_id"]]
        return list_object("/v1/checkout/sessions", [render(s) for s in items], q)

    return await _api(request, run)


@router.get("/v1/checkout/sessions/{session_id}")
async def get_session(session_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        store = store_of(state)
        session = store.get("checkout.session", session_id, call.api_key, "session")
        return expanded(store, session, call.params.get("expand"))

    return await _api(request, run)


@router.get("/v1/checkout/sessions/{session_id}/line_items")
async def get_line_items(session_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        store = store_of(state)
        store.get("checkout.session", session_id, call.api_key, "session")
        items = store.line_items.get(session_id, [])
        return list_object(f"/v1/checkout/sessions/{session_id}/line_items", items, call.params)

    return await _api(request, run)


@router.post("/v1/checkout/sessions/{session_id}/expire")
async def api_expire_session(session_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        check_unknown(call.params, {"expand"})
        session = store_of(state).get("checkout.session", session_id, call.api_key, "session")
        if session["status"] != "open":
            raise invalid(
                'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                f'Session has a status of "{session["status"]}".',
                "session",
                "checkout_session_not_open",
            )
        publish(state, [expire_session(state, session, call.origin)])
        return render(session)

    return await _api(request, run, mutating=True)


@router.get("/v1/payment_intents/{intent_id}")
async def get_payment_intent(intent_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        return render(store_of(state).get("payment_intent", intent_id, call.api_key, "intent"))

    return await _api(request, run)


@router.get("/v1/charges/{charge_id}")
async def get_charge(charge_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        return render(store_of(state).get("charge", charge_id, call.api_key, "charge"))

    return await _api(request, run)


@router.post("/v1/refunds")
async def create_refund(request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        store = store_of(state)
        p = call.params
        check_unknown(p, REFUND_PARAMS)
        charge: dict[str, Any] | None = None
        if p.get("charge"):
            charge = store.get("charge", str(p["charge"]), call.api_key, "charge")
        if p.get("payment_intent"):
            pi = store.get(
                "payment_intent", str(p["payment_intent"]), call.api_key, "payment_intent"
            )
            if not pi.get("latest_charge") or pi["status"] != "succeeded":
                raise invalid(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    "payment_intent",
                )
            by_intent = store.objects[pi["latest_charge"]]
            if charge is not None and charge["id"] != by_intent["id"]:
                raise invalid(f"The charge {charge['id']} does not belong to {pi['id']}.", "charge")
            charge = by_intent
        if charge is None:
            raise invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                "payment_intent",
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
                param="charge",
            )
        amount = remaining
        if p.get("amount") not in (None, ""):
            amount = as_int(p["amount"], "amount", minimum=1)
        if amount > remaining:
            raise invalid(
                f"Refund amount ({amount} {charge['currency']}) is greater than unrefunded amount "
                f"on charge ({remaining} {charge['currency']})",
                "amount",
                "amount_too_large",
            )
        reason = p.get("reason") or None
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid(f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}", "reason")
        metadata = metadata_of(p.get("metadata"))
        now = int(time.time())
        refund = {
            "id": new_id("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": new_id("txn_"),
            "charge": charge["id"],
            "created": now,
            "currency": charge["currency"],
            "destination_details": {
                "card": {"reference_status": "pending", "type": "refund"},
                "type": "card",
            },
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        session_id = store.session_of.get(charge["id"], "")
        store.objects[refund["id"]] = refund
        store.owner[refund["id"]] = call.api_key
        store.session_of[refund["id"]] = session_id
        call.record.provider_message_id = refund["id"]
        kw: dict[str, Any] = {
            "owner": call.api_key,
            "session_id": session_id,
            "request": call.origin,
        }
        publish(
            state,
            [
                emit(state, "charge.refunded", charge, previous=previous, **kw),
                emit(state, "refund.created", refund, **kw),
            ],
        )
        return render(refund)

    return await _api(request, run, mutating=True)


@router.get("/v1/refunds")
async def list_refunds(request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        items = store_of(state).of_kind("refund", call.api_key)
        for name in ("charge", "payment_intent"):
            if call.params.get(name):
                items = [r for r in items if r[name] == call.params[name]]
        return list_object("/v1/refunds", [render(r) for r in items], call.params)

    return await _api(request, run)


@router.get("/v1/refunds/{refund_id}")
async def get_refund(refund_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        return render(store_of(state).get("refund", refund_id, call.api_key, "refund"))

    return await _api(request, run)


@router.get("/v1/events")
async def list_events(request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        events = [e for e in store_of(state).events if e.owner == call.api_key][::-1]
        if call.params.get("type"):
            events = [e for e in events if e.type == call.params["type"]]
        return list_object("/v1/events", [json.loads(e.body) for e in events], call.params)

    return await _api(request, run)


@router.get("/v1/events/{event_id}")
async def get_event(event_id: str, request: Request) -> Response:
    state = state_of(request)

    def run(call: Call) -> dict[str, Any]:
        event = store_of(state).event(event_id)
        if event is None or event.owner != call.api_key:
            raise no_such("event", event_id)
        loaded: dict[str, Any] = json.loads(event.body)
        return loaded

    return await _api(request, run)


# ------------------------------------------------------------------------------------- checkout page


def format_amount(amount: int, currency: str) -> str:
    if currency.lower() in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


@router.get("/pay/{session_id}")
async def checkout_page(session_id: str, request: Request) -> HTMLResponse:
    """A small hosted-checkout page for people trying `make run`: the items and a Pay button."""
    store = store_of(state_of(request))
    session = store.objects.get(session_id)
    if session is None or session["object"] != "checkout.session":
        return HTMLResponse("<h1>Checkout session not found</h1>", status_code=404)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(i['description'])}</td><td>× {i['quantity']}</td>"
        f"<td>{esc(format_amount(i['amount_total'], i['currency']))}</td></tr>"
        for i in store.line_items.get(session_id, [])
    )
    total = esc(format_amount(session["amount_total"], session["currency"]))
    if session["status"] == "open":
        action = esc(f"/_standin/stripe/sessions/{session_id}/pay")
        form = (
            f'<form method="post" action="{action}"><input type="hidden" name="redirect" '
            f'value="1"><button type="submit">Pay {total}</button></form>'
        )
        if session.get("cancel_url"):
            form += f'<p><a href="{esc(session["cancel_url"])}">Cancel</a></p>'
    else:
        form = f"<p>This checkout session is <b>{esc(session['status'])}</b>.</p>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Stripe stand-in checkout</title>"
        "<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}td{padding:.3em}"
        "button{font-size:1.2em;padding:.5em 2em}</style></head><body>"
        f"<h1>Checkout (stand-in)</h1><p><code>{esc(session_id)}</code></p>"
        f"<table>{rows}<tr><th>Total</th><td></td><th>{total}</th></tr></table>{form}"
        "</body></html>"
    )
    return HTMLResponse(page)


# ------------------------------------------------------------------------------------- control


async def _control_body(request: Request) -> tuple[dict[str, Any], bool]:
    """The control body as JSON or an HTML form; True when it came from the checkout page."""
    raw = (await request.body()).decode()
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        return dict(parse_qsl(raw)), True
    if not raw.strip():
        return {}, False
    loaded = json.loads(raw)
    if not isinstance(loaded, dict):
        raise StripeError(400, "the body must be a JSON object")
    return loaded, False


def _control_error(exc: StripeError) -> Response:
    reply = exc.reply()
    return Response(json.dumps(reply.body), status_code=reply.status, media_type="application/json")


def _session_for_control(state: StandinState, session_id: str) -> dict[str, Any]:
    return store_of(state).get("checkout.session", session_id, None, "session")


@control.post("/sessions/{session_id}/pay")
async def control_pay(session_id: str, request: Request) -> Response:
    state = state_of(request)
    try:
        body, from_page = await _control_body(request)
        sweep(state)
        session = _session_for_control(state, session_id)
        amount = body.get("amount_minor")
        events = pay_session(
            state,
            session,
            amount=None if amount in (None, "") else as_int(amount, "amount_minor"),
            currency=body.get("currency") or None,
        )
    except (StripeError, ValueError) as exc:
        if isinstance(exc, StripeError):
            return _control_error(exc)
        return _control_error(StripeError(400, f"bad body: {exc}"))
    deliveries = publish(state, events, body.get("deliver", True) not in (False, "false", "0"))
    if deliveries and body.get("wait") in (True, "true", "1"):
        await asyncio.wait(deliveries, timeout=60)
    if from_page:
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
        return RedirectResponse(target, status_code=303)
    return Response(
        json.dumps(
            {
                "session": render(session),
                "payment_intent": render(store_of(state).objects[session["payment_intent"]]),
                "events": [{"id": e.id, "type": e.type} for e in events],
            }
        ),
        media_type="application/json",
    )


@control.post("/sessions/{session_id}/expire")
async def control_expire(session_id: str, request: Request) -> Response:
    state = state_of(request)
    try:
        body, _ = await _control_body(request)
        session = _session_for_control(state, session_id)
        if session["status"] != "open":
            raise invalid(
                'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                f'Session has a status of "{session["status"]}".',
                "session",
                "checkout_session_not_open",
            )
    except StripeError as exc:
        return _control_error(exc)
    event = expire_session(state, session, None)
    deliveries = publish(state, [event], body.get("deliver", True) not in (False, "false", "0"))
    if deliveries and body.get("wait") in (True, "true", "1"):
        await asyncio.wait(deliveries, timeout=60)
    return Response(
        json.dumps({"session": render(session), "events": [{"id": event.id, "type": event.type}]}),
        media_type="application/json",
    )


@control.get("/events")
async def control_events(request: Request, type: str = "", session: str = "") -> dict[str, Any]:
    store = store_of(state_of(request))
    found = [
        e.to_json()
        for e in store.events
        if (not type or e.type == type) and (not session or e.session_id == session)
    ]
    return {"events": found, "count": len(found)}


@control.post("/events/{event_id}/resend")
async def control_resend(event_id: str, request: Request) -> Response:
    """Deliver the same event again (same id and body, fresh signature); one attempt per
    endpoint, or to {webhook_url, secret} when given."""
    state = state_of(request)
    store = store_of(state)
    event = store.event(event_id)
    if event is None:
        return _control_error(no_such("event", event_id))
    try:
        body, _ = await _control_body(request)
    except (StripeError, ValueError):
        body = {}
    targets = event.targets
    if body.get("webhook_url"):
        targets = [Target(str(body["webhook_url"]), str(body.get("secret", "")))]
    results = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for target in targets:
            results.append(await deliver_once(client, event, target))
    return Response(
        json.dumps({"id": event.id, "deliveries": results}), media_type="application/json"
    )
