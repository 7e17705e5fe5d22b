"""Pure helpers shared by the channel adapters (Messenger, Instagram, Telegram, Twilio, WeChat,
LINE, Viber): shape checks that raise MalformedPayload naming the path, provider time, signature
comparison, and the builders of the normalized events with their deterministic ids.

Event ids always include the channel AND the channel account: provider ids are not globally
unique on every channel (a Telegram message_id is per chat, an update_id per bot), and two
accounts may legitimately see the same provider id.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.channels.base import MalformedPayload, WebhookRejected
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, from_timestamp, to_timestamp

CONTACT_AGGREGATE = "contact"

#: Provider status names -> the normalized DeliveryStatus (sent < delivered < read; failed).
STATUS_NAMES = {
    pb.DELIVERY_STATUS_SENT: "sent",
    pb.DELIVERY_STATUS_DELIVERED: "delivered",
    pb.DELIVERY_STATUS_READ: "read",
    pb.DELIVERY_STATUS_FAILED: "failed",
}


# --------------------------------------------------------------------------------------------
# Shape checks
# --------------------------------------------------------------------------------------------


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{path}: expected an object, got {type(value).__name__}")
    return value


def lst(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> list[Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise MalformedPayload(f"{path}.{key}: missing")
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{path}.{key}: expected a list, got {type(value).__name__}")
    return value


def string(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    """A string (or an integer id, as Telegram and Viber send them) as text."""
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"{path}.{key}: missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayload(f"{path}.{key}: expected a string, got {type(value).__name__}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" escape
            raise MalformedPayload(f"{path}.{key}: not valid Unicode") from exc
    return str(value)


def integer(parent: dict[str, Any], key: str, path: str, *, required: bool = True) -> int | None:
    value = parent.get(key)
    if value is None:
        if required:
            raise MalformedPayload(f"{path}.{key}: missing")
        return None
    if isinstance(value, bool):
        raise MalformedPayload(f"{path}.{key}: expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise MalformedPayload(f"{path}.{key}: expected an integer, got {value!r}")


def number(parent: dict[str, Any], key: str, path: str) -> float:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedPayload(f"{path}.{key}: expected a number")
    try:
        result = float(value)
    except (ValueError, OverflowError) as exc:
        raise MalformedPayload(f"{path}.{key}: expected a number, got {value!r}") from exc
    if result != result or result in (float("inf"), float("-inf")):
        raise MalformedPayload(f"{path}.{key}: not a finite number")
    return result


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON: {type(exc).__name__}: {exc}") from exc
    return obj(payload, "body")


def check_json_object(body: bytes) -> dict[str, Any]:
    """check_body for JSON channels: 400 unless the body is a JSON object."""
    try:
        return parse_json_object(body)
    except MalformedPayload as exc:
        raise WebhookRejected(400, "body is not a JSON object") from exc


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

#: Provider times outside this range are refused as malformed (protobuf Timestamp's range).
_MIN_SECONDS = 0
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def from_epoch(value: int | float, path: str) -> datetime:
    if not _MIN_SECONDS <= value <= _MAX_SECONDS:
        raise MalformedPayload(f"{path}: timestamp out of range: {value!r}")
    return datetime.fromtimestamp(value, UTC)


def epoch_seconds(parent: dict[str, Any], key: str, path: str) -> datetime:
    value = integer(parent, key, path)
    assert value is not None
    return from_epoch(value, f"{path}.{key}")


def epoch_millis(parent: dict[str, Any], key: str, path: str) -> datetime:
    value = integer(parent, key, path)
    assert value is not None
    return from_epoch(value / 1000, f"{path}.{key}")


def received_at(webhook: pb.WebhookReceived) -> datetime:
    """Ingest time: the fallback `occurred_at` for provider events that carry no time."""
    return from_timestamp(webhook.received_at)


# --------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------


def header(headers: Any, name: str) -> str:
    return str(headers.get(name, "")).strip()


def require_header(headers: Any, name: str) -> str:
    value = header(headers, name)
    if not value:
        raise WebhookRejected(401, f"missing {name} header")
    return value


def require_secret(secret: str, name: str) -> bytes:
    if not secret:
        raise WebhookRejected(403, f"account has no {name}")
    return secret.encode()


def same(expected: str, provided: str) -> bool:
    """Constant-time comparison; header values are latin-1 (any byte), never an exception."""
    return hmac.compare_digest(
        expected.encode("latin-1", "replace"), provided.encode("latin-1", "replace")
    )


# --------------------------------------------------------------------------------------------
# Event builders (pure; deterministic ids)
# --------------------------------------------------------------------------------------------


def contact_id(account_id: str, address: str) -> str:
    return f"{account_id}:{address}"


def event_id(channel: str, account_id: str, *parts: str) -> str:
    return deterministic_event_id(channel, account_id, *parts)


def status_event_id(channel: str, account_id: str, provider_message_id: str, status: str) -> str:
    return deterministic_event_id(channel, account_id, provider_message_id, "status", status)


def message_received(
    *,
    channel: str,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
    event_id: str,
    provider_message_id: str,
    sender: str,
    sent_at: datetime,
    content: pb.MessageContent,
    business_address: str = "",
    display_name: str = "",
    context_id: str = "",
    sender_phone: str = "",
) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=contact_id(account_id, sender),
        payload=pb.MessageReceived(
            channel=channel,
            channel_account_id=account_id,
            provider_message_id=provider_message_id,
            sender=pb.ChannelAddress(channel=channel, address=sender),
            business_address=business_address,
            sender_display_name=display_name,
            sent_at=to_timestamp(sent_at),
            content=content,
            context_provider_message_id=context_id,
            sender_phone=sender_phone,
            webhook_event_id=webhook_event_id,
        ),
        occurred_at=sent_at,
        topic=topics.INBOUND,
    )


def status_updated(
    *,
    channel: str,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
    provider_message_id: str,
    recipient: str,
    status: pb.DeliveryStatus.ValueType,
    status_at: datetime,
    provider_status: str,
    error_code: str = "",
    error_title: str = "",
) -> NewEvent:
    """MessageStatusUpdated. An empty provider_message_id is a *watermark*: "every message the
    business sent to `recipient` at or before status_at" (Messenger delivery/read); the
    normalizer expands it into per-message events and never emits it as such."""
    return NewEvent(
        event_id=status_event_id(
            channel,
            account_id,
            provider_message_id or f"watermark:{recipient}:{status_at.timestamp()!r}",
            STATUS_NAMES[status],
        ),
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=contact_id(account_id, recipient),
        payload=pb.MessageStatusUpdated(
            channel=channel,
            channel_account_id=account_id,
            provider_message_id=provider_message_id,
            recipient=pb.ChannelAddress(channel=channel, address=recipient),
            status=status,
            status_at=to_timestamp(status_at),
            error_code=error_code,
            error_title=error_title,
            webhook_event_id=webhook_event_id,
            provider_status=provider_status,
        ),
        occurred_at=status_at,
        topic=topics.INBOUND,
    )


def subscription_changed(
    *,
    channel: str,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
    event_id: str,
    subject: str,
    subscribed: bool,
    reason: str,
    changed_at: datetime,
) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=contact_id(account_id, subject),
        payload=pb.ContactSubscriptionChanged(
            channel=channel,
            channel_account_id=account_id,
            subject=pb.ChannelAddress(channel=channel, address=subject),
            subscribed=subscribed,
            reason=reason,
            changed_at=to_timestamp(changed_at),
            webhook_event_id=webhook_event_id,
        ),
        occurred_at=changed_at,
        topic=topics.INBOUND,
    )


def identity_evidence(
    *,
    channel: str,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
    event_id: str,
    subject: str,
    kind: str,
    observed_at: datetime,
    provider_event_id: str,
    phone: str = "",
    email: str = "",
    new_address: str = "",
) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        tenant_id=tenant_id,
        aggregate_type=CONTACT_AGGREGATE,
        aggregate_id=contact_id(account_id, subject),
        payload=pb.IdentityEvidenceObserved(
            channel=channel,
            channel_account_id=account_id,
            subject=pb.ChannelAddress(channel=channel, address=subject),
            evidence_kind=kind,
            phone=phone,
            email=email,
            new_address=new_address,
            provider_event_id=provider_event_id,
            observed_at=to_timestamp(observed_at),
            webhook_event_id=webhook_event_id,
        ),
        occurred_at=observed_at,
        topic=topics.INBOUND,
    )


def text(body: str) -> pb.MessageContent:
    return pb.MessageContent(text=pb.TextContent(body=body))


def media(kind: str, **fields: str) -> pb.MessageContent:
    return pb.MessageContent(media=pb.MediaContent(kind=kind, **fields))


def location(
    latitude: float, longitude: float, name: str = "", address: str = ""
) -> pb.MessageContent:
    return pb.MessageContent(
        location=pb.LocationContent(
            latitude=latitude, longitude=longitude, name=name, address=address
        )
    )


def interactive(reply_id: str, title: str = "", payload: str = "") -> pb.MessageContent:
    return pb.MessageContent(
        interactive_reply=pb.InteractiveReplyContent(
            reply_id=reply_id, title=title, payload=payload
        )
    )


def unsupported(provider_type: str) -> pb.MessageContent:
    return pb.MessageContent(unsupported=pb.UnsupportedContent(provider_type=provider_type))


def phone_digits(value: str) -> str:
    """E.164 digits of a phone number as a channel gives it ('+1 415-555', 'whatsapp:+1415...'),
    or '' if it is not one."""
    raw = value.split(":", 1)[1] if value.startswith("whatsapp:") else value
    digits = "".join(ch for ch in raw if ch.isdigit())
    cleaned = (
        raw.replace("+", "").replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    )
    return digits if digits and cleaned == digits and 6 <= len(digits) <= 15 else ""
