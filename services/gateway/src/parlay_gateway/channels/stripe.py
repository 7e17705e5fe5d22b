"""Stripe webhooks: the payment provider's events, verified and normalized for the payments service.

Route: POST /webhooks/stripe/<channel_account_id> (the channel-agnostic webhook path). A Stripe
account is a channel account of channel "stripe" with credentials `webhook_secret` (the
endpoint's signing secret, whsec_...) and `api_key` (used by the payment actions, not here).

Verification, as Stripe specifies it, with the official library
(`stripe.WebhookSignature.verify_header`) on the RAW bytes: the `Stripe-Signature` header is
`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the signing secret>[,v1=...]`; any
matching v1 signature is accepted (Stripe sends several while a secret is being rolled), and the
timestamp must be at most 300 s old (a replayed delivery is refused). Status codes follow the
other channels: a missing header is 401; a wrong, forged or unparseable signature, or a stale
timestamp, is 403. Nothing refused is stored.

One request is one Event object (`{"id": "evt_...", "object": "event", "type": ..., "created",
"livemode", "data": {"object": {...}}}`). Stripe retries a delivery (with the same event id but
a new signature timestamp, so new bytes) until it is acknowledged: the event id is the raw
webhook's dedupe key, so a redelivery is stored once. The acknowledgement is
200 {"received": true}.

normalize: one PaymentProviderEventReceived per event, whatever its type (payments decides what
matters), on the aggregate "stripe:<channel_account_id>"; event_id = uuid5("stripe",
channel_account_id, evt id), so a redelivery or a replay is one event. Amounts are integer minor
units as Stripe reports them; the currency is upper-cased.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import stripe

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import common as c
from parlay_gateway.channels.base import (
    ChannelAdapter,
    InboundRequest,
    MalformedPayload,
    Reply,
    WebhookRejected,
)
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, to_timestamp

CHANNEL = "stripe"
SIGNATURE_HEADER = "stripe-signature"
#: Stripe's documented default: signatures older than 5 minutes are refused.
TOLERANCE_SECONDS = 300
AGGREGATE_TYPE = "payment_provider_account"


def aggregate_id(channel_account_id: str) -> str:
    return f"{CHANNEL}:{channel_account_id}"


def provider_event_id(channel_account_id: str, stripe_event_id: str) -> str:
    """The PaymentProviderEventReceived id: one per Stripe event per account."""
    return deterministic_event_id(CHANNEL, channel_account_id, stripe_event_id)


def verify_signature(
    body: bytes, header: str, secret: str, *, tolerance: int = TOLERANCE_SECONDS
) -> None:
    """Raise WebhookRejected unless `header` is a valid Stripe-Signature of `body`."""
    if not header:
        raise WebhookRejected(401, "missing Stripe-Signature header")
    if not secret:
        raise WebhookRejected(403, "account has no webhook_secret")
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance=tolerance)
    except UnicodeDecodeError:
        raise WebhookRejected(400, "body is not UTF-8") from None
    except stripe.SignatureVerificationError as exc:
        # The library's message says which check failed (no v1, mismatch, tolerance zone); it
        # never contains the secret.
        raise WebhookRejected(403, f"Stripe-Signature: {exc.user_message or exc}") from None
    except Exception:  # e.g. a non-ASCII signature value; never a 500
        raise WebhookRejected(403, "Stripe-Signature: unreadable") from None


def event_object(body: bytes) -> dict[str, Any]:
    """The Event as a dict; MalformedPayload unless it has an "evt_" id and a type."""
    event = c.parse_json_object(body)
    event_id = c.string(event, "id", "body", required=True)
    if not event_id.startswith("evt_"):
        raise MalformedPayload(f"body.id: not a Stripe event id: {event_id[:40]!r}")
    c.string(event, "type", "body", required=True)
    return event


def _id_of(value: Any, path: str) -> str:
    """An id field that Stripe sends as a string, or as the expanded object."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return c.string(value, "id", path)
    raise MalformedPayload(f"{path}: expected an id or an object, got {type(value).__name__}")


def _metadata(obj: dict[str, Any], path: str) -> dict[str, str]:
    value = obj.get("metadata")
    if value is None:
        return {}
    meta = c.obj(value, f"{path}.metadata")
    out: dict[str, str] = {}
    for key, item in meta.items():
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise MalformedPayload(f"{path}.metadata.{key}: expected a string")
        out[str(key)] = str(item)
    return out


#: int64, what the event's amount fields hold (Stripe's own limits are far below; some
#: objects, e.g. balance transactions, carry negative amounts).
_MAX_AMOUNT = 2**63 - 1


def _amount(obj: dict[str, Any], key: str, path: str) -> int:
    value = c.integer(obj, key, path, required=False) or 0
    if not -_MAX_AMOUNT <= value <= _MAX_AMOUNT:
        raise MalformedPayload(f"{path}.{key}: amount out of range: {value}")
    return value


def normalize_event(
    body: bytes,
    *,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
) -> list[NewEvent]:
    """Pure: the PaymentProviderEventReceived of one Stripe Event body."""
    event = event_object(body)
    evt_id = c.string(event, "id", "body", required=True)
    event_type = c.string(event, "type", "body", required=True)
    created = c.epoch_seconds(event, "created", "body")
    livemode = event.get("livemode", False)
    if not isinstance(livemode, bool):
        raise MalformedPayload("body.livemode: expected a boolean")
    data = c.obj(event.get("data"), "body.data")
    path = "body.data.object"
    obj = c.obj(data.get("object"), path)
    object_type = c.string(obj, "object", path, required=True)
    object_id = c.string(obj, "id", path)

    session_id = payment_intent_id = charge_id = ""
    amount = amount_refunded = 0
    status = c.string(obj, "status", path)
    if object_type == "checkout.session":
        session_id = object_id
        payment_intent_id = _id_of(obj.get("payment_intent"), f"{path}.payment_intent")
        amount = _amount(obj, "amount_total", path)
        # paid / unpaid / no_payment_required is what decides a capture; status is only
        # open / complete / expired.
        status = c.string(obj, "payment_status", path) or status
    elif object_type == "payment_intent":
        payment_intent_id = object_id
        charge_id = _id_of(obj.get("latest_charge"), f"{path}.latest_charge")
        received = _amount(obj, "amount_received", path)
        amount = received if received else _amount(obj, "amount", path)
    elif object_type == "charge":
        charge_id = object_id
        payment_intent_id = _id_of(obj.get("payment_intent"), f"{path}.payment_intent")
        amount = _amount(obj, "amount", path)
        amount_refunded = _amount(obj, "amount_refunded", path)
    else:  # refund, dispute, ...: the ids they carry
        payment_intent_id = _id_of(obj.get("payment_intent"), f"{path}.payment_intent")
        charge_id = _id_of(obj.get("charge"), f"{path}.charge")
        amount = _amount(obj, "amount", path)
    payload = pb.PaymentProviderEventReceived(
        provider=CHANNEL,
        channel_account_id=account_id,
        provider_event_id=evt_id,
        event_type=event_type,
        object_type=object_type,
        object_id=object_id,
        checkout_session_id=session_id,
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        client_reference_id=c.string(obj, "client_reference_id", path),
        metadata=_metadata(obj, path),
        amount_minor=amount,
        amount_refunded_minor=amount_refunded,
        currency=c.string(obj, "currency", path).upper(),
        status=status,
        created_at=to_timestamp(created),
        livemode=livemode,
        webhook_event_id=webhook_event_id,
    )
    return [_event(payload, account_id, tenant_id, created)]


def _event(
    payload: pb.PaymentProviderEventReceived, account_id: str, tenant_id: str, at: datetime
) -> NewEvent:
    return NewEvent(
        event_id=provider_event_id(account_id, payload.provider_event_id),
        tenant_id=tenant_id,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=aggregate_id(account_id),
        payload=payload,
        occurred_at=at,
        topic=topics.INBOUND,
    )


class StripeAdapter(ChannelAdapter):
    channel = CHANNEL
    # The signature is an HMAC, not a secret: kept for audit (it can be re-verified later).
    retained_headers = ("content-type", "user-agent", SIGNATURE_HEADER)

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_signature(
            request.body,
            c.header(request.headers, SIGNATURE_HEADER),
            account.credential("webhook_secret"),
        )

    def check_body(self, request: InboundRequest) -> None:
        try:
            event_object(request.body)
        except MalformedPayload as exc:
            raise WebhookRejected(
                400, "body is not a Stripe event (JSON with an evt_ id and a type)"
            ) from exc

    def dedupe_key(self, request: InboundRequest) -> str:
        return f"event:{event_object(request.body)['id']}"

    def ack(self) -> Reply:
        return Reply(200, json.dumps({"received": True}).encode(), "application/json")

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_event(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
        )
