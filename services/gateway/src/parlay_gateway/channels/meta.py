"""Messenger and Instagram Messaging webhooks (Meta's Messenger Platform), shared by both.

Verification, as WhatsApp: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body keyed
with the app secret>`; GET answers the hub.challenge handshake with the account's verify_token.

A delivery is `{"object": "page" | "instagram", "entry": [{"id": <page / IG account id>, "time":
..., "messaging": [...]}]}` (`standby` instead of `messaging` when another app owns the thread;
handled the same). Each messaging item has `sender.id`, `recipient.id`, `timestamp` (ms) and one of:

* `message` — text, `attachments[]` (image/video/audio/file/sticker/location/fallback/reel...),
  `quick_reply.payload` (a tapped quick reply), `reply_to.mid` -> MessageReceived. Several
  attachments in one message -> one MessageReceived per attachment (same mid; ids by index).
* `message.is_echo` — a message the *business* sent (through us, another app or the Page inbox):
  never a MessageReceived. It becomes MessageStatusUpdated SENT for that mid (provider_status
  "echo"), which also tells the normalizer when the message was sent (for watermarks below).
* `postback` — a tapped postback button / Get Started / persistent menu -> MessageReceived with
  interactive_reply (reply_id = payload).
* `delivery` — `mids[]` (sometimes) and `watermark` (always): DELIVERED per listed mid, plus a
  watermark status; `read` — Messenger: `watermark`; Instagram (messaging_seen): `mid` -> READ.
  A watermark means "every message sent to this person at or before this time". The adapter
  emits it as a MessageStatusUpdated with an empty provider_message_id; the normalizer expands it
  into one event per message it knows was sent to that person by then (from echoes and earlier
  statuses) and remembers it for messages it learns about later. Messages it never heard of
  cannot be named: subscribe to `message_echoes` so every sent message is known.
* anything else (reactions, referrals, optins, handovers, edits) -> nothing (kept in the raw log).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import common as c
from parlay_gateway.channels.base import (
    ChannelAdapter,
    InboundRequest,
    MalformedPayload,
    Reply,
)
from parlay_gateway.channels.whatsapp import SIGNATURE_HEADER, answer_handshake, verify_signature
from parlay_kit.envelope import NewEvent

_MEDIA_KINDS = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "document",
    "sticker": "sticker",
    "reel": "video",
    "ig_reel": "video",
}


def is_watermark(status: pb.MessageStatusUpdated) -> bool:
    return not status.provider_message_id


class _Ctx:
    __slots__ = ("channel", "account_id", "tenant_id", "webhook_event_id")

    def __init__(self, channel: str, account_id: str, tenant_id: str, webhook_event_id: str):
        self.channel = channel
        self.account_id = account_id
        self.tenant_id = tenant_id
        self.webhook_event_id = webhook_event_id


def _attachment_content(att: dict[str, Any], path: str, caption: str) -> pb.MessageContent:
    kind = c.string(att, "type", path, required=True)
    payload = c.obj(att.get("payload") or {}, f"{path}.payload")
    p = f"{path}.payload"
    if kind in _MEDIA_KINDS:
        return c.media(
            _MEDIA_KINDS[kind],
            url=c.string(payload, "url", p),
            provider_media_id=c.string(payload, "sticker_id", p)
            or c.string(payload, "attachment_id", p),
            caption=caption,
            filename=c.string(payload, "title", p) if kind == "file" else "",
        )
    if kind == "location":
        coords = c.obj(payload.get("coordinates"), f"{p}.coordinates")
        return c.location(
            c.number(coords, "lat", f"{p}.coordinates"),
            c.number(coords, "long", f"{p}.coordinates"),
            name=c.string(payload, "title", p),
        )
    return c.unsupported(kind)


def _message_events(
    item: dict[str, Any], path: str, ctx: _Ctx, sender: str, business: str, at: datetime
) -> list[NewEvent]:
    p = f"{path}.message"
    message = c.obj(item.get("message"), p)
    mid = c.string(message, "mid", p, required=True)
    if message.get("is_echo"):
        # Business-sent: sender is the page / IG account, recipient the person.
        return [
            c.status_updated(
                channel=ctx.channel,
                account_id=ctx.account_id,
                tenant_id=ctx.tenant_id,
                webhook_event_id=ctx.webhook_event_id,
                provider_message_id=mid,
                recipient=sender,  # the person the business wrote to
                status=pb.DELIVERY_STATUS_SENT,
                status_at=at,
                provider_status="echo",
            )
        ]
    if message.get("is_deleted"):
        return []  # Instagram "unsend": the message stays in the raw log
    body = c.string(message, "text", p)
    reply_to = c.obj(message.get("reply_to") or {}, f"{p}.reply_to")
    context_id = c.string(reply_to, "mid", f"{p}.reply_to")
    quick = message.get("quick_reply")
    contents: list[pb.MessageContent] = []
    if quick is not None:
        qp = c.obj(quick, f"{p}.quick_reply")
        payload = c.string(qp, "payload", f"{p}.quick_reply")
        contents.append(c.interactive(payload, title=body, payload=payload))
    else:
        attachments = c.lst(message, "attachments", p)
        for i, raw in enumerate(attachments):
            att = c.obj(raw, f"{p}.attachments[{i}]")
            contents.append(
                _attachment_content(att, f"{p}.attachments[{i}]", body if i == 0 else "")
            )
        if not contents:
            if message.get("is_unsupported"):
                contents.append(c.unsupported("unsupported"))
            else:
                contents.append(c.text(body))
    events = []
    for i, content in enumerate(contents):
        events.append(
            c.message_received(
                channel=ctx.channel,
                account_id=ctx.account_id,
                tenant_id=ctx.tenant_id,
                webhook_event_id=ctx.webhook_event_id,
                event_id=c.event_id(
                    ctx.channel, ctx.account_id, mid, "received", *([str(i)] if i else [])
                ),
                provider_message_id=mid,
                sender=sender,
                sent_at=at,
                content=content,
                business_address=business,
                context_id=context_id,
            )
        )
    return events


def _postback_event(
    item: dict[str, Any], path: str, ctx: _Ctx, sender: str, business: str, at: datetime
) -> NewEvent:
    p = f"{path}.postback"
    postback = c.obj(item.get("postback"), p)
    payload = c.string(postback, "payload", p)
    mid = c.string(postback, "mid", p)
    # A postback without a mid (older clients) is identified by who tapped it and when.
    provider_id = mid or f"postback:{sender}:{int(at.timestamp() * 1000)}"
    return c.message_received(
        channel=ctx.channel,
        account_id=ctx.account_id,
        tenant_id=ctx.tenant_id,
        webhook_event_id=ctx.webhook_event_id,
        event_id=c.event_id(ctx.channel, ctx.account_id, provider_id, "postback"),
        provider_message_id=provider_id,
        sender=sender,
        sent_at=at,
        content=c.interactive(payload, title=c.string(postback, "title", p), payload=payload),
        business_address=business,
    )


def _receipt_events(
    item: dict[str, Any], path: str, ctx: _Ctx, person: str, at: datetime | None
) -> list[NewEvent]:
    events: list[NewEvent] = []
    for key, status in (
        ("delivery", pb.DELIVERY_STATUS_DELIVERED),
        ("read", pb.DELIVERY_STATUS_READ),
    ):
        if key not in item:
            continue
        p = f"{path}.{key}"
        receipt = c.obj(item.get(key), p)
        mids = [
            c.string({"mid": m}, "mid", f"{p}.mids[{i}]", required=True)
            for i, m in enumerate(c.lst(receipt, "mids", p))
        ]
        single = c.string(receipt, "mid", p)  # Instagram messaging_seen
        if single:
            mids.append(single)
        watermark = (
            c.epoch_millis(receipt, "watermark", p)
            if receipt.get("watermark") is not None
            else None
        )
        when = watermark or at
        if when is None:
            raise MalformedPayload(f"{p}: neither watermark nor timestamp")
        if not mids and watermark is None:
            raise MalformedPayload(f"{p}: neither mids, mid nor watermark")
        common = {
            "channel": ctx.channel,
            "account_id": ctx.account_id,
            "tenant_id": ctx.tenant_id,
            "webhook_event_id": ctx.webhook_event_id,
            "recipient": person,
            "status": status,
            "provider_status": key,
        }
        for mid in mids:
            events.append(c.status_updated(provider_message_id=mid, status_at=when, **common))  # type: ignore[arg-type]
        if watermark is not None:
            events.append(c.status_updated(provider_message_id="", status_at=watermark, **common))  # type: ignore[arg-type]
    return events


def normalize_payload(
    body: bytes,
    *,
    channel: str,
    expected_object: str,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
) -> list[NewEvent]:
    payload = c.parse_json_object(body)
    if payload.get("object") != expected_object:
        raise MalformedPayload(
            f"body.object: expected {expected_object!r}, got {payload.get('object')!r}"
        )
    ctx = _Ctx(channel, account_id, tenant_id, webhook_event_id)
    events: list[NewEvent] = []
    for i, raw_entry in enumerate(c.lst(payload, "entry", "body", required=True)):
        entry_path = f"entry[{i}]"
        entry = c.obj(raw_entry, entry_path)
        for key in ("messaging", "standby"):
            for j, raw in enumerate(c.lst(entry, key, entry_path)):
                path = f"{entry_path}.{key}[{j}]"
                item = c.obj(raw, path)
                sender = c.string(
                    c.obj(item.get("sender") or {}, f"{path}.sender"), "id", f"{path}.sender"
                )
                recipient = c.string(
                    c.obj(item.get("recipient") or {}, f"{path}.recipient"),
                    "id",
                    f"{path}.recipient",
                )
                at = c.epoch_millis(item, "timestamp", path) if "timestamp" in item else None
                if "message" in item:
                    if at is None:
                        raise MalformedPayload(f"{path}.timestamp: missing")
                    message = c.obj(item.get("message"), f"{path}.message")
                    person = recipient if message.get("is_echo") else sender
                    business = sender if message.get("is_echo") else recipient
                    if not person:
                        raise MalformedPayload(f"{path}: the person's id is missing")
                    events += _message_events(item, path, ctx, person, business, at)
                elif "postback" in item:
                    if at is None:
                        raise MalformedPayload(f"{path}.timestamp: missing")
                    if not sender:
                        raise MalformedPayload(f"{path}.sender.id: missing")
                    events.append(_postback_event(item, path, ctx, sender, recipient, at))
                elif "delivery" in item or "read" in item:
                    if not sender:
                        raise MalformedPayload(f"{path}.sender.id: missing")
                    events += _receipt_events(item, path, ctx, sender, at)
                # reactions, referrals, optins, handovers, edits: not normalized (raw log keeps them)
    return events


class MetaMessagingAdapter(ChannelAdapter):
    """Messenger / Instagram: same signature, handshake and messaging shape."""

    expected_object: ClassVar[str]
    retained_headers = ("content-type", "user-agent", SIGNATURE_HEADER)

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_signature(request.headers, request.body, account.credential("app_secret"))

    def check_body(self, request: InboundRequest) -> None:
        c.check_json_object(request.body)

    def handshake(self, query: Mapping[str, str], account: ChannelAccount) -> Reply:
        challenge = answer_handshake(query, account.credential("verify_token"))
        return Reply(200, challenge.encode(), "text/plain")

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_payload(
            webhook.body,
            channel=self.channel,
            expected_object=self.expected_object,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
        )
