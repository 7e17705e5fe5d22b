"""Viber REST Bot API callbacks.

Verification: `X-Viber-Content-Signature` is the hex HMAC-SHA256 of the raw body keyed with the
bot's auth token (constant-time compare, before parsing).

Body: one callback `{"event": ..., "timestamp": <ms>, "message_token": <int>, ...}`:

* message (sender.id/name; message.type text, picture, video, file, sticker, contact, location,
  url) -> MessageReceived (provider_message_id = message_token).
* subscribed -> ContactSubscriptionChanged(subscribed=true, reason "subscribed");
  unsubscribed -> (false, "unsubscribed").
* conversation_started (the user opened the chat; Viber lets the bot send one welcome message)
  is NOT a subscription change: it is mapped to ContactSubscriptionChanged with reason
  "conversation_started" and `subscribed` = the callback's own `subscribed` flag, i.e. an
  observation of the current state. Consumers must treat only "subscribed"/"unsubscribed" as
  consent changes (see docs/channels.md).
* delivered / seen / failed (user_id, message_token of a message the bot sent) ->
  MessageStatusUpdated DELIVERED / READ / FAILED (failed: `desc` as error_title).
* webhook (sent by set_webhook), client_status, action -> nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import common as c
from parlay_gateway.channels.base import ChannelAdapter, InboundRequest, WebhookRejected
from parlay_kit.envelope import NewEvent

CHANNEL = "viber"
SIGNATURE_HEADER = "x-viber-content-signature"
STATUSES = {
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "seen": pb.DELIVERY_STATUS_READ,
    "failed": pb.DELIVERY_STATUS_FAILED,
}


def signature_for(auth_token: str, body: bytes) -> str:
    return hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(headers: Any, body: bytes, auth_token: str) -> None:
    provided = c.require_header(headers, SIGNATURE_HEADER)
    c.require_secret(auth_token, "auth_token")
    if not c.same(signature_for(auth_token, body), provided.lower()):
        raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the body")


def _content(message: dict[str, Any], path: str) -> pb.MessageContent:
    kind = c.string(message, "type", path, required=True)
    body = c.string(message, "text", path)
    if kind == "text":
        return c.text(body)
    if kind in ("picture", "video", "file"):
        return c.media(
            {"picture": "image", "video": "video", "file": "document"}[kind],
            url=c.string(message, "media", path),
            caption=body,
            filename=c.string(message, "file_name", path),
        )
    if kind == "sticker":
        return c.media(
            "sticker",
            provider_media_id=c.string(message, "sticker_id", path),
            url=c.string(message, "media", path),
        )
    if kind == "location":
        loc = c.obj(message.get("location"), f"{path}.location")
        return c.location(
            c.number(loc, "lat", f"{path}.location"), c.number(loc, "lon", f"{path}.location")
        )
    if kind == "contact":
        contact = c.obj(message.get("contact"), f"{path}.contact")
        phone = c.string(contact, "phone_number", f"{path}.contact")
        return pb.MessageContent(
            contacts=pb.ContactsContent(
                contacts=[
                    pb.SharedContact(
                        name=c.string(contact, "name", f"{path}.contact"),
                        phones=[phone] if phone else [],
                    )
                ]
            )
        )
    if kind == "url":
        return c.text(c.string(message, "media", path))
    return c.unsupported(kind)


def normalize_callback(
    body: bytes, *, account_id: str, tenant_id: str, webhook_event_id: str
) -> list[NewEvent]:
    payload = c.parse_json_object(body)
    event = c.string(payload, "event", "body", required=True)
    if event not in ("message", "subscribed", "unsubscribed", "conversation_started", *STATUSES):
        return []
    at = c.epoch_millis(payload, "timestamp", "body")
    token = c.string(payload, "message_token", "body", required=True)
    common = {"channel": CHANNEL, "account_id": account_id, "tenant_id": tenant_id}
    if event == "message":
        sender = c.obj(payload.get("sender"), "body.sender")
        user = c.string(sender, "id", "body.sender", required=True)
        message = c.obj(payload.get("message"), "body.message")
        return [
            c.message_received(
                **common,
                webhook_event_id=webhook_event_id,
                event_id=c.event_id(CHANNEL, account_id, token, "received"),
                provider_message_id=token,
                sender=user,
                sent_at=at,
                content=_content(message, "body.message"),
                display_name=c.string(sender, "name", "body.sender"),
            )
        ]
    if event in STATUSES:
        user = c.string(payload, "user_id", "body", required=True)
        status = STATUSES[event]
        return [
            c.status_updated(
                **common,
                webhook_event_id=webhook_event_id,
                provider_message_id=token,
                recipient=user,
                status=status,
                status_at=at,
                provider_status=event,
                error_title=c.string(payload, "desc", "body") if event == "failed" else "",
            )
        ]
    if event == "unsubscribed":
        user = c.string(payload, "user_id", "body", required=True)
        subscribed = False
    else:
        user = c.string(c.obj(payload.get("user"), "body.user"), "id", "body.user", required=True)
        subscribed = event == "subscribed" or (
            event == "conversation_started" and payload.get("subscribed") is True
        )
    return [
        c.subscription_changed(
            **common,
            webhook_event_id=webhook_event_id,
            event_id=c.event_id(CHANNEL, account_id, token, event),
            subject=user,
            subscribed=subscribed,
            reason=event,
            changed_at=at,
        )
    ]


class ViberAdapter(ChannelAdapter):
    channel = CHANNEL
    retained_headers = ("content-type", "user-agent", SIGNATURE_HEADER)

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_signature(request.headers, request.body, account.credential("auth_token"))

    def check_body(self, request: InboundRequest) -> None:
        c.check_json_object(request.body)

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_callback(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
        )
