"""WhatsApp Business Platform (Cloud API) webhooks.

Verification (before anything is parsed): `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of
the raw body keyed with the Meta app secret; GET `/webhooks/whatsapp/<account>` answers Meta's
subscription handshake (hub.mode=subscribe, hub.verify_token, hub.challenge).

Normalization: a delivery is `{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"changes": [{"field": "messages", "value": {...}}]}]}`, each value with `metadata.phone_number_id`,
`contacts[]` (profile.name, wa_id), `messages[]` and `statuses[]`. Every message becomes one
MessageReceived and every status one MessageStatusUpdated, on the contact aggregate
"<channel_account_id>:<wa_id>". Changes of other fields (template status, account updates) carry
no messages and yield nothing; they stay in the raw-webhook log.

One Meta app delivers the webhooks of all its phone numbers to one callback URL, so a channel
account is a Meta app; `business_address` (phone_number_id) tells the numbers apart.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import (
    ChannelAdapter,
    InboundRequest,
    MalformedPayload,
    Reply,
    WebhookRejected,
)
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, to_timestamp

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
SIGNATURE_HEADER = "x-hub-signature-256"
CONTACT_AGGREGATE = "contact"
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
STATUSES = {
    "sent": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_READ,
    "failed": pb.DELIVERY_STATUS_FAILED,
}
#: ISO 4217 currencies whose minor unit is not 1/100.
_MINOR_DIGITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


# --------------------------------------------------------------------------------------------
# Verification (pure)
# --------------------------------------------------------------------------------------------


def signature_for(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    # hmac.digest is the one-shot (C) form of hmac.new(...).digest(): same bytes, less overhead.
    return "sha256=" + hmac.digest(app_secret.encode(), body, "sha256").hex()


def verify_signature(headers: Mapping[str, str], body: bytes, app_secret: str) -> None:
    """Raise WebhookRejected: 401 when the signature header is missing, 403 when it is wrong."""
    provided = headers.get(SIGNATURE_HEADER, "").strip()
    if not provided:
        raise WebhookRejected(401, f"missing {SIGNATURE_HEADER} header")
    if not app_secret:
        raise WebhookRejected(403, "account has no app_secret")
    expected = signature_for(app_secret, body).encode()
    # Constant-time; header values are latin-1 (any byte), so encoding never fails.
    if not hmac.compare_digest(expected, provided.encode("latin-1", "replace")):
        raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the body")


def answer_handshake(query: Mapping[str, str], verify_token: str) -> str:
    """Meta's subscription check: echo hub.challenge when hub.verify_token matches."""
    if query.get("hub.mode") != "subscribe":
        raise WebhookRejected(403, "hub.mode is not 'subscribe'")
    token = query.get("hub.verify_token", "")
    if not verify_token or not hmac.compare_digest(
        token.encode("utf-8", "replace"), verify_token.encode()
    ):
        raise WebhookRejected(403, "hub.verify_token does not match")
    challenge = query.get("hub.challenge", "")
    if not challenge:
        raise WebhookRejected(400, "hub.challenge is missing")
    return challenge


# --------------------------------------------------------------------------------------------
# Normalization (pure)
# --------------------------------------------------------------------------------------------


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _list(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> list[Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise MalformedPayload(f"{path}.{key}: missing")
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{path}.{key}: expected a list, got {type(value).__name__}")
    return value


def _str(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"{path}.{key}: missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayload(f"{path}.{key}: expected a string, got {type(value).__name__}")
    return str(value)


def _number(parent: dict[str, Any], key: str, path: str) -> float:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedPayload(f"{path}.{key}: expected a number")
    try:
        return float(value)
    except ValueError as exc:
        raise MalformedPayload(f"{path}.{key}: expected a number, got {value!r}") from exc


def _timestamp(parent: dict[str, Any], key: str, path: str) -> datetime:
    raw = _str(parent, key, path, required=True)
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise MalformedPayload(f"{path}.{key}: not a unix timestamp: {raw!r}") from exc


def minor_units(price: Any, currency: str, path: str) -> int:
    """A price in major units (as Meta sends `item_price`) in integer minor units."""
    try:
        amount = Decimal(str(price))
    except InvalidOperation as exc:
        raise MalformedPayload(f"{path}: not a price: {price!r}") from exc
    if not amount.is_finite():
        raise MalformedPayload(f"{path}: not a price: {price!r}")
    scaled = amount.scaleb(_MINOR_DIGITS.get(currency.upper(), 2))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {type(exc).__name__}: {exc}") from exc
    return _obj(payload, "body")


def _content(message: dict[str, Any], kind: str, path: str) -> pb.MessageContent:
    if kind == "text":
        text = _obj(message.get("text"), f"{path}.text")
        return pb.MessageContent(text=pb.TextContent(body=_str(text, "body", f"{path}.text")))
    if kind in MEDIA_TYPES:
        media = _obj(message.get(kind), f"{path}.{kind}")
        p = f"{path}.{kind}"
        return pb.MessageContent(
            media=pb.MediaContent(
                kind=kind,
                provider_media_id=_str(media, "id", p),
                mime_type=_str(media, "mime_type", p),
                caption=_str(media, "caption", p),
                url=_str(media, "url", p) or _str(media, "link", p),
                sha256=_str(media, "sha256", p),
                filename=_str(media, "filename", p),
            )
        )
    if kind == "location":
        p = f"{path}.location"
        loc = _obj(message.get("location"), p)
        return pb.MessageContent(
            location=pb.LocationContent(
                latitude=_number(loc, "latitude", p),
                longitude=_number(loc, "longitude", p),
                name=_str(loc, "name", p),
                address=_str(loc, "address", p),
            )
        )
    if kind == "contacts":
        shared = []
        for i, raw in enumerate(_list(message, "contacts", path, required=True)):
            p = f"{path}.contacts[{i}]"
            contact = _obj(raw, p)
            name = contact.get("name") or {}
            shared.append(
                pb.SharedContact(
                    name=_str(_obj(name, f"{p}.name"), "formatted_name", f"{p}.name"),
                    phones=[
                        _str(_obj(ph, f"{p}.phones[{j}]"), "phone", f"{p}.phones[{j}]")
                        or _str(ph, "wa_id", f"{p}.phones[{j}]")
                        for j, ph in enumerate(_list(contact, "phones", p))
                    ],
                    emails=[
                        _str(_obj(em, f"{p}.emails[{j}]"), "email", f"{p}.emails[{j}]")
                        for j, em in enumerate(_list(contact, "emails", p))
                    ],
                )
            )
        return pb.MessageContent(contacts=pb.ContactsContent(contacts=shared))
    if kind == "interactive":
        p = f"{path}.interactive"
        interactive = _obj(message.get("interactive"), p)
        sub = _str(interactive, "type", p, required=True)
        if sub in ("button_reply", "list_reply"):
            reply = _obj(interactive.get(sub), f"{p}.{sub}")
            return pb.MessageContent(
                interactive_reply=pb.InteractiveReplyContent(
                    reply_id=_str(reply, "id", f"{p}.{sub}", required=True),
                    title=_str(reply, "title", f"{p}.{sub}"),
                )
            )
        if sub == "nfm_reply":  # a WhatsApp Flow completed: its answers are JSON
            reply = _obj(interactive.get(sub), f"{p}.{sub}")
            return pb.MessageContent(
                interactive_reply=pb.InteractiveReplyContent(
                    reply_id=_str(reply, "name", f"{p}.{sub}"),
                    title=_str(reply, "body", f"{p}.{sub}"),
                    payload=_str(reply, "response_json", f"{p}.{sub}"),
                )
            )
        return pb.MessageContent(
            unsupported=pb.UnsupportedContent(provider_type=f"interactive.{sub}")
        )
    if kind == "button":  # quick-reply button of a template message
        p = f"{path}.button"
        button = _obj(message.get("button"), p)
        return pb.MessageContent(
            interactive_reply=pb.InteractiveReplyContent(
                reply_id=_str(button, "payload", p),
                title=_str(button, "text", p),
                payload=_str(button, "payload", p),
            )
        )
    if kind == "reaction":
        p = f"{path}.reaction"
        reaction = _obj(message.get("reaction"), p)
        return pb.MessageContent(
            reaction=pb.ReactionContent(
                target_provider_message_id=_str(reaction, "message_id", p, required=True),
                # Empty emoji: the customer removed their reaction.
                emoji=_str(reaction, "emoji", p),
            )
        )
    if kind == "order":
        p = f"{path}.order"
        order = _obj(message.get("order"), p)
        items = []
        for i, raw in enumerate(_list(order, "product_items", p, required=True)):
            ip = f"{p}.product_items[{i}]"
            item = _obj(raw, ip)
            currency = _str(item, "currency", ip, required=True)
            quantity = item.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int | str):
                raise MalformedPayload(f"{ip}.quantity: expected an integer")
            try:
                qty = int(quantity)
            except ValueError as exc:
                raise MalformedPayload(f"{ip}.quantity: expected an integer") from exc
            if "item_price" not in item:
                raise MalformedPayload(f"{ip}.item_price: missing")
            items.append(
                pb.OrderItem(
                    sku=_str(item, "product_retailer_id", ip, required=True),
                    quantity=qty,
                    unit_price_minor=minor_units(item["item_price"], currency, f"{ip}.item_price"),
                    currency=currency,
                )
            )
        return pb.MessageContent(
            order=pb.OrderContent(
                catalog_id=_str(order, "catalog_id", p), text=_str(order, "text", p), items=items
            )
        )
    # system (number changed), unsupported/unknown, request_welcome, ... : kept as a fact, with
    # the provider's type, so nothing is lost; the raw webhook keeps the details.
    return pb.MessageContent(unsupported=pb.UnsupportedContent(provider_type=kind))


def _sender(message: dict[str, Any], path: str) -> str:
    sender = _str(message, "from", path) or _str(message, "from_user_id", path)
    if not sender:
        raise MalformedPayload(f"{path}.from: missing")
    return sender


def _digits(address: str) -> str:
    return address if address.isdigit() else ""


def _contact_names(value: dict[str, Any], path: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for i, raw in enumerate(_list(value, "contacts", path)):
        p = f"{path}.contacts[{i}]"
        contact = _obj(raw, p)
        profile = contact.get("profile") or {}
        name = _str(_obj(profile, f"{p}.profile"), "name", f"{p}.profile")
        for key in ("wa_id", "user_id"):
            address = _str(contact, key, p)
            if address:
                names[address] = name
    return names


def _ts(dt: datetime) -> Timestamp:
    return to_timestamp(dt)


def _message_event(
    message: dict[str, Any],
    path: str,
    *,
    account_id: str,
    business: str,
    names: dict[str, str],
    tenant_id: str,
    webhook_event_id: str,
) -> NewEvent:
    wamid = _str(message, "id", path, required=True)
    kind = _str(message, "type", path, required=True)
    sender = _sender(message, path)
    sent_at = _timestamp(message, "timestamp", path)
    context = message.get("context") or {}
    payload = pb.MessageReceived(
        channel=CHANNEL,
        channel_account_id=account_id,
        provider_message_id=wamid,
        sender=pb.ChannelAddress(channel=CHANNEL, address=sender),
        business_address=business,
        sender_display_name=names.get(sender, ""),
        sent_at=_ts(sent_at),
        content=_content(message, kind, path),
        context_provider_message_id=_str(_obj(context, f"{path}.context"), "id", f"{path}.context"),
        sender_phone=_digits(_str(message, "from", path)),
        webhook_event_id=webhook_event_id,
    )
    return NewEvent(
        event_id=deterministic_event_id(CHANNEL, account_id, wamid, "received"),
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=f"{account_id}:{sender}",
        payload=payload,
        occurred_at=sent_at,
        topic=topics.INBOUND,
    )


def _status_event(
    status: dict[str, Any],
    path: str,
    *,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
) -> NewEvent | None:
    wamid = _str(status, "id", path, required=True)
    name = _str(status, "status", path, required=True)
    recipient = _str(status, "recipient_id", path) or _str(status, "recipient_user_id", path)
    if not recipient:
        raise MalformedPayload(f"{path}.recipient_id: missing")
    status_at = _timestamp(status, "timestamp", path)
    if name not in STATUSES:
        # A status Meta added after this parser (e.g. "deleted", "warning"): logged, not guessed.
        log.warning("whatsapp status %r of %s not understood; skipped", name, wamid)
        return None
    error_code = error_title = ""
    errors = _list(status, "errors", path)
    if errors:
        first = _obj(errors[0], f"{path}.errors[0]")
        error_code = _str(first, "code", f"{path}.errors[0]")
        error_title = _str(first, "title", f"{path}.errors[0]") or _str(
            first, "message", f"{path}.errors[0]"
        )
    payload = pb.MessageStatusUpdated(
        channel=CHANNEL,
        channel_account_id=account_id,
        provider_message_id=wamid,
        recipient=pb.ChannelAddress(channel=CHANNEL, address=recipient),
        status=STATUSES[name],
        status_at=_ts(status_at),
        error_code=error_code,
        error_title=error_title,
        webhook_event_id=webhook_event_id,
    )
    return NewEvent(
        event_id=deterministic_event_id(CHANNEL, account_id, wamid, "status", name),
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=f"{account_id}:{recipient}",
        payload=payload,
        occurred_at=status_at,
        topic=topics.INBOUND,
    )


CHANGED_NUMBER_TYPES = frozenset({"user_changed_number", "customer_changed_number"})


def _changed_number_event(
    message: dict[str, Any],
    path: str,
    *,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
) -> NewEvent | None:
    """A `system` message saying the customer changed their number -> IdentityEvidenceObserved
    (changed_number) about the old address, naming the new one (`system.wa_id`, formerly
    `new_wa_id`). Profile decides what to link; the MessageReceived (unsupported "system") stays."""
    if message.get("type") != "system":
        return None
    p = f"{path}.system"
    system = _obj(message.get("system"), p)
    if _str(system, "type", p) not in CHANGED_NUMBER_TYPES:
        return None
    new_address = _str(system, "wa_id", p) or _str(system, "new_wa_id", p)
    if not new_address:
        raise MalformedPayload(f"{p}.wa_id: missing")
    wamid = _str(message, "id", path, required=True)
    old_address = _sender(message, path)
    at = _timestamp(message, "timestamp", path)
    return NewEvent(
        event_id=deterministic_event_id(CHANNEL, account_id, wamid, "changed_number"),
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=f"{account_id}:{old_address}",
        payload=pb.IdentityEvidenceObserved(
            channel=CHANNEL,
            channel_account_id=account_id,
            subject=pb.ChannelAddress(channel=CHANNEL, address=old_address),
            evidence_kind="changed_number",
            phone=_digits(new_address),
            new_address=new_address,
            provider_event_id=wamid,
            observed_at=_ts(at),
            webhook_event_id=webhook_event_id,
        ),
        occurred_at=at,
        topic=topics.INBOUND,
    )


def normalize_payload(
    body: bytes, *, account_id: str, tenant_id: str, webhook_event_id: str
) -> list[NewEvent]:
    """Every message and status of a (possibly batched) Cloud API webhook, in payload order."""
    payload = parse_json_body(body)
    if payload.get("object") != "whatsapp_business_account":
        raise MalformedPayload(
            f"body.object: expected 'whatsapp_business_account', got {payload.get('object')!r}"
        )
    events: list[NewEvent] = []
    for i, raw_entry in enumerate(_list(payload, "entry", "body", required=True)):
        entry_path = f"entry[{i}]"
        entry = _obj(raw_entry, entry_path)
        for j, raw_change in enumerate(_list(entry, "changes", entry_path)):
            path = f"{entry_path}.changes[{j}]"
            change = _obj(raw_change, path)
            value = _obj(change.get("value", {}), f"{path}.value")
            path = f"{path}.value"
            messages = _list(value, "messages", path)
            statuses = _list(value, "statuses", path)
            if not messages and not statuses:
                continue
            metadata = _obj(value.get("metadata", {}), f"{path}.metadata")
            business = _str(metadata, "phone_number_id", f"{path}.metadata")
            names = _contact_names(value, path)
            for k, message in enumerate(messages):
                events.append(
                    _message_event(
                        _obj(message, f"{path}.messages[{k}]"),
                        f"{path}.messages[{k}]",
                        account_id=account_id,
                        business=business,
                        names=names,
                        tenant_id=tenant_id,
                        webhook_event_id=webhook_event_id,
                    )
                )
                evidence = _changed_number_event(
                    message,
                    f"{path}.messages[{k}]",
                    account_id=account_id,
                    tenant_id=tenant_id,
                    webhook_event_id=webhook_event_id,
                )
                if evidence is not None:
                    events.append(evidence)
            for k, status in enumerate(statuses):
                event = _status_event(
                    _obj(status, f"{path}.statuses[{k}]"),
                    f"{path}.statuses[{k}]",
                    account_id=account_id,
                    tenant_id=tenant_id,
                    webhook_event_id=webhook_event_id,
                )
                if event is not None:
                    events.append(event)
    return events


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


class WhatsAppAdapter(ChannelAdapter):
    channel = CHANNEL
    retained_headers = ("content-type", "user-agent", SIGNATURE_HEADER)

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_signature(request.headers, request.body, account.credential("app_secret"))

    def check_body(self, request: InboundRequest) -> None:
        try:
            parse_json_body(request.body)
        except MalformedPayload as exc:
            raise WebhookRejected(400, "body is not a JSON object") from exc

    def handshake(self, query: Mapping[str, str], account: ChannelAccount) -> Reply:
        challenge = answer_handshake(query, account.credential("verify_token"))
        return Reply(200, challenge.encode(), "text/plain")

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_payload(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
        )
