"""LINE Messaging API webhooks.

Verification: `X-Line-Signature` is the base64 HMAC-SHA256 of the raw body keyed with the
channel secret (constant-time compare, before parsing).

Body: `{"destination": <bot user id>, "events": [...]}`; an empty `events` list is what the LINE
console's "Verify" button sends (answered 200, nothing normalized). Each event has `type`,
`timestamp` (ms), `source` (`userId`, or `groupId`/`roomId`), `webhookEventId` (unique, stable
across redeliveries) and `deliveryContext.isRedelivery`:

* message: text, image/video/audio/file (media by message id, resolved through the content API),
  location, sticker -> MessageReceived (event id from the message id; quotedMessageId -> context).
* follow / unfollow -> ContactSubscriptionChanged (subscribed true/false, reason follow/unfollow;
  an unfollow is LINE's "blocked").
* postback -> MessageReceived interactive_reply (reply_id = postback.data).
* others (join, leave, memberJoined, beacon, accountLink, ...) -> nothing (kept in the raw log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import common as c
from parlay_gateway.channels.base import (
    ChannelAdapter,
    InboundRequest,
    MalformedPayload,
    WebhookRejected,
)
from parlay_kit.envelope import NewEvent

CHANNEL = "line"
SIGNATURE_HEADER = "x-line-signature"


def signature_for(channel_secret: str, body: bytes) -> str:
    return base64.b64encode(
        hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    ).decode()


def verify_signature(headers: Any, body: bytes, channel_secret: str) -> None:
    provided = c.require_header(headers, SIGNATURE_HEADER)
    c.require_secret(channel_secret, "channel_secret")
    if not c.same(signature_for(channel_secret, body), provided):
        raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the body")


def _content(message: dict[str, Any], path: str) -> pb.MessageContent:
    kind = c.string(message, "type", path, required=True)
    message_id = c.string(message, "id", path, required=True)
    if kind == "text":
        return c.text(c.string(message, "text", path))
    if kind in ("image", "video", "audio", "file"):
        provider = c.obj(message.get("contentProvider") or {}, f"{path}.contentProvider")
        return c.media(
            "document" if kind == "file" else kind,
            provider_media_id=message_id,
            url=c.string(provider, "originalContentUrl", f"{path}.contentProvider"),
            filename=c.string(message, "fileName", path),
        )
    if kind == "location":
        return c.location(
            c.number(message, "latitude", path),
            c.number(message, "longitude", path),
            name=c.string(message, "title", path),
            address=c.string(message, "address", path),
        )
    if kind == "sticker":
        return c.media(
            "sticker",
            provider_media_id=f"{c.string(message, 'packageId', path)}/{c.string(message, 'stickerId', path, required=True)}",
        )
    return c.unsupported(kind)


def normalize_payload(
    body: bytes, *, account_id: str, tenant_id: str, webhook_event_id: str
) -> list[NewEvent]:
    payload = c.parse_json_object(body)
    destination = c.string(payload, "destination", "body")
    events: list[NewEvent] = []
    common = {"channel": CHANNEL, "account_id": account_id, "tenant_id": tenant_id}
    for i, raw in enumerate(c.lst(payload, "events", "body", required=True)):
        path = f"events[{i}]"
        event = c.obj(raw, path)
        kind = c.string(event, "type", path, required=True)
        if kind not in ("message", "follow", "unfollow", "postback"):
            continue
        at = c.epoch_millis(event, "timestamp", path)
        source = c.obj(event.get("source"), f"{path}.source")
        user = (
            c.string(source, "userId", f"{path}.source")
            or c.string(source, "groupId", f"{path}.source")
            or c.string(source, "roomId", f"{path}.source")
        )
        if not user:
            raise MalformedPayload(f"{path}.source.userId: missing")
        provider_event = (
            c.string(event, "webhookEventId", path) or f"{user}:{int(at.timestamp() * 1000)}"
        )
        if kind == "message":
            message = c.obj(event.get("message"), f"{path}.message")
            message_id = c.string(message, "id", f"{path}.message", required=True)
            events.append(
                c.message_received(
                    **common,
                    webhook_event_id=webhook_event_id,
                    event_id=c.event_id(CHANNEL, account_id, message_id, "received"),
                    provider_message_id=message_id,
                    sender=user,
                    sent_at=at,
                    content=_content(message, f"{path}.message"),
                    business_address=destination,
                    context_id=c.string(message, "quotedMessageId", f"{path}.message"),
                )
            )
        elif kind == "postback":
            postback = c.obj(event.get("postback"), f"{path}.postback")
            data = c.string(postback, "data", f"{path}.postback")
            events.append(
                c.message_received(
                    **common,
                    webhook_event_id=webhook_event_id,
                    event_id=c.event_id(CHANNEL, account_id, provider_event, "postback"),
                    provider_message_id=f"postback:{provider_event}",
                    sender=user,
                    sent_at=at,
                    content=c.interactive(data, payload=data),
                    business_address=destination,
                )
            )
        else:
            events.append(
                c.subscription_changed(
                    **common,
                    webhook_event_id=webhook_event_id,
                    event_id=c.event_id(CHANNEL, account_id, provider_event, kind),
                    subject=user,
                    subscribed=kind == "follow",
                    reason=kind,
                    changed_at=at,
                )
            )
    return events


class LineAdapter(ChannelAdapter):
    channel = CHANNEL
    retained_headers = ("content-type", "user-agent", SIGNATURE_HEADER)

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_signature(request.headers, request.body, account.credential("channel_secret"))

    def check_body(self, request: InboundRequest) -> None:
        c.check_json_object(request.body)

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_payload(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
        )
