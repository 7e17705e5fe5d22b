"""Telegram Bot API webhooks.

Verification: Telegram sends the `secret_token` given to setWebhook in the header
`X-Telegram-Bot-Api-Secret-Token`; it must equal the account's `secret_token` credential
(constant-time). Telegram does not sign the body: the token authenticates the sender, TLS
protects the bytes.

One request carries one `Update` (`update_id` + at most one of message, edited_message,
callback_query, pre_checkout_query, ...). `update_id` is unique per bot and increases, so it is
the raw webhook's dedupe key (a retried update is stored once whatever its bytes) and part of
every event id: `deterministic_event_id("telegram", account, "update", update_id, kind)`.
Order: the raw webhooks of one account are normalized in arrival order; Telegram delivers one
update at a time in update_id order when the webhook is set with `max_connections=1` (what
docs/channels.md prescribes). Every event also carries the provider's own time.

* message: text, photo (largest size), document/video/audio/voice/sticker (media), location,
  venue, contact -> MessageReceived; a contact whose `user_id` is the sender's own id (the
  "share my phone number" button) also -> IdentityEvidenceObserved(shared_phone).
  successful_payment -> ChannelPaymentEventReceived(successful_payment) (no MessageReceived).
* edited_message -> MessageEdited (edited_at = edit_date).
* callback_query (inline keyboard tap) -> MessageReceived interactive_reply (reply_id = data);
  it carries no time, so occurred_at is the ingest time.
* pre_checkout_query -> ChannelPaymentEventReceived(pre_checkout_query); must be answered with
  answerPreCheckoutQuery within 10 s (the payments side's job). occurred_at = ingest time.
* other updates (channel posts, inline queries, chat member changes, ...) -> nothing.

provider_message_id of a message is "<chat_id>:<message_id>" (message_id is unique per chat only).
"""

from __future__ import annotations

from datetime import datetime
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
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, to_timestamp

CHANNEL = "telegram"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
_MEDIA = (
    ("document", "document"),
    ("video", "video"),
    ("video_note", "video"),
    ("animation", "video"),
    ("audio", "audio"),
    ("voice", "audio"),
    ("sticker", "sticker"),
)


def verify_secret_token(headers: Any, secret_token: str) -> None:
    provided = c.require_header(headers, SECRET_HEADER)
    c.require_secret(secret_token, "secret_token")
    if not c.same(secret_token, provided):
        raise WebhookRejected(403, f"{SECRET_HEADER} does not match")


def update_id_of(body: bytes) -> int:
    """The update_id of a Telegram update body; MalformedPayload if there is none."""
    update = c.parse_json_object(body)
    value = c.integer(update, "update_id", "body")
    assert value is not None
    return value


def _name(user: dict[str, Any], path: str) -> str:
    return " ".join(
        part
        for part in (c.string(user, "first_name", path), c.string(user, "last_name", path))
        if part
    )


def _content(message: dict[str, Any], path: str) -> pb.MessageContent:
    caption = c.string(message, "caption", path)
    if "text" in message:
        return c.text(c.string(message, "text", path))
    if "photo" in message:
        sizes = c.lst(message, "photo", path, required=True)
        if not sizes:
            raise MalformedPayload(f"{path}.photo: empty")
        largest = c.obj(sizes[-1], f"{path}.photo[{len(sizes) - 1}]")
        return c.media(
            "image",
            provider_media_id=c.string(largest, "file_id", f"{path}.photo[-1]", required=True),
            caption=caption,
        )
    for key, kind in _MEDIA:
        if key in message:
            p = f"{path}.{key}"
            item = c.obj(message.get(key), p)
            return c.media(
                kind,
                provider_media_id=c.string(item, "file_id", p, required=True),
                mime_type=c.string(item, "mime_type", p),
                filename=c.string(item, "file_name", p),
                caption=caption,
            )
    if "venue" in message:
        p = f"{path}.venue"
        venue = c.obj(message.get("venue"), p)
        loc = c.obj(venue.get("location"), f"{p}.location")
        return c.location(
            c.number(loc, "latitude", f"{p}.location"),
            c.number(loc, "longitude", f"{p}.location"),
            name=c.string(venue, "title", p),
            address=c.string(venue, "address", p),
        )
    if "location" in message:
        p = f"{path}.location"
        loc = c.obj(message.get("location"), p)
        return c.location(c.number(loc, "latitude", p), c.number(loc, "longitude", p))
    if "contact" in message:
        p = f"{path}.contact"
        contact = c.obj(message.get("contact"), p)
        return pb.MessageContent(
            contacts=pb.ContactsContent(
                contacts=[
                    pb.SharedContact(
                        name=_name(contact, p),
                        phones=[c.string(contact, "phone_number", p, required=True)],
                    )
                ]
            )
        )
    kind = next((k for k in message if k not in _ENVELOPE_KEYS), "unknown")
    return c.unsupported(kind)


_ENVELOPE_KEYS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "chat",
        "date",
        "edit_date",
        "reply_to_message",
        "entities",
        "caption_entities",
        "caption",
        "forward_origin",
        "forward_from",
        "forward_date",
        "is_topic_message",
        "has_protected_content",
        "via_bot",
        "author_signature",
        "media_group_id",
        "link_preview_options",
        "reply_markup",
        "business_connection_id",
    }
)


def _ids(message: dict[str, Any], path: str) -> tuple[str, str, str, str]:
    """(provider message id, sender address, display name, chat id)."""
    message_id = c.string(message, "message_id", path, required=True)
    chat = c.obj(message.get("chat"), f"{path}.chat")
    chat_id = c.string(chat, "id", f"{path}.chat", required=True)
    sender = message.get("from")
    if sender is None:
        return f"{chat_id}:{message_id}", chat_id, c.string(chat, "title", f"{path}.chat"), chat_id
    user = c.obj(sender, f"{path}.from")
    address = c.string(user, "id", f"{path}.from", required=True)
    return f"{chat_id}:{message_id}", address, _name(user, f"{path}.from"), chat_id


def _payment_event(
    *,
    kind: str,
    data: dict[str, Any],
    path: str,
    provider_event_id: str,
    payer: str,
    at: datetime,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
    update_id: int,
) -> NewEvent:
    return NewEvent(
        event_id=c.event_id(CHANNEL, account_id, "update", str(update_id), kind),
        tenant_id=tenant_id,
        aggregate_type=c.CONTACT_AGGREGATE,
        aggregate_id=c.contact_id(account_id, payer),
        payload=pb.ChannelPaymentEventReceived(
            channel=CHANNEL,
            channel_account_id=account_id,
            kind=kind,
            provider_event_id=provider_event_id,
            payer=pb.ChannelAddress(channel=CHANNEL, address=payer),
            currency=c.string(data, "currency", path, required=True),
            total_minor=c.integer(data, "total_amount", path) or 0,
            invoice_payload=c.string(data, "invoice_payload", path),
            provider_charge_id=c.string(data, "telegram_payment_charge_id", path),
            occurred_at=to_timestamp(at),
            webhook_event_id=webhook_event_id,
        ),
        occurred_at=at,
        topic=topics.INBOUND,
    )


def normalize_update(
    body: bytes,
    *,
    account_id: str,
    tenant_id: str,
    webhook_event_id: str,
    received_at: datetime,
) -> list[NewEvent]:
    update = c.parse_json_object(body)
    update_id = c.integer(update, "update_id", "body")
    assert update_id is not None
    uid = str(update_id)

    def eid(kind: str) -> str:
        return c.event_id(CHANNEL, account_id, "update", uid, kind)

    common = {"channel": CHANNEL, "account_id": account_id, "tenant_id": tenant_id}
    if "message" in update:
        path = "message"
        message = c.obj(update.get("message"), path)
        provider_id, sender, name, _chat = _ids(message, path)
        sent_at = c.epoch_seconds(message, "date", path)
        if "successful_payment" in message:
            sp = c.obj(message.get("successful_payment"), f"{path}.successful_payment")
            return [
                _payment_event(
                    kind="successful_payment",
                    data=sp,
                    path=f"{path}.successful_payment",
                    provider_event_id=c.string(
                        sp, "provider_payment_charge_id", f"{path}.successful_payment"
                    )
                    or provider_id,
                    payer=sender,
                    at=sent_at,
                    account_id=account_id,
                    tenant_id=tenant_id,
                    webhook_event_id=webhook_event_id,
                    update_id=update_id,
                )
            ]
        reply = message.get("reply_to_message")
        context_id = ""
        if reply is not None:
            context_id, _, _, _ = _ids(
                c.obj(reply, f"{path}.reply_to_message"), f"{path}.reply_to_message"
            )
        events = [
            c.message_received(
                **common,
                webhook_event_id=webhook_event_id,
                event_id=eid("received"),
                provider_message_id=provider_id,
                sender=sender,
                sent_at=sent_at,
                content=_content(message, path),
                display_name=name,
                context_id=context_id,
            )
        ]
        if "contact" in message:
            contact = c.obj(message.get("contact"), f"{path}.contact")
            owner = c.string(contact, "user_id", f"{path}.contact")
            if owner and owner == sender:  # the sender shared their own number
                events.append(
                    c.identity_evidence(
                        **common,
                        webhook_event_id=webhook_event_id,
                        event_id=eid("shared_phone"),
                        subject=sender,
                        kind="shared_phone",
                        observed_at=sent_at,
                        provider_event_id=provider_id,
                        phone=c.string(contact, "phone_number", f"{path}.contact", required=True),
                    )
                )
        return events
    if "edited_message" in update:
        path = "edited_message"
        message = c.obj(update.get("edited_message"), path)
        provider_id, sender, _name_, _chat = _ids(message, path)
        edited_at = (
            c.epoch_seconds(message, "edit_date", path)
            if message.get("edit_date") is not None
            else c.epoch_seconds(message, "date", path)
        )
        return [
            NewEvent(
                event_id=eid("edited"),
                tenant_id=tenant_id,
                aggregate_type=c.CONTACT_AGGREGATE,
                aggregate_id=c.contact_id(account_id, sender),
                payload=pb.MessageEdited(
                    channel=CHANNEL,
                    channel_account_id=account_id,
                    provider_message_id=provider_id,
                    sender=pb.ChannelAddress(channel=CHANNEL, address=sender),
                    content=_content(message, path),
                    edited_at=to_timestamp(edited_at),
                    webhook_event_id=webhook_event_id,
                ),
                occurred_at=edited_at,
                topic=topics.INBOUND,
            )
        ]
    if "callback_query" in update:
        path = "callback_query"
        query = c.obj(update.get("callback_query"), path)
        query_id = c.string(query, "id", path, required=True)
        user = c.obj(query.get("from"), f"{path}.from")
        sender = c.string(user, "id", f"{path}.from", required=True)
        context_id = ""
        if query.get("message") is not None:
            context_id, _, _, _ = _ids(
                c.obj(query.get("message"), f"{path}.message"), f"{path}.message"
            )
        data = c.string(query, "data", path)
        return [
            c.message_received(
                **common,
                webhook_event_id=webhook_event_id,
                event_id=eid("received"),
                provider_message_id=f"callback:{query_id}",
                sender=sender,
                sent_at=received_at,
                content=c.interactive(data, payload=data),
                display_name=_name(user, f"{path}.from"),
                context_id=context_id,
            )
        ]
    if "pre_checkout_query" in update:
        path = "pre_checkout_query"
        query = c.obj(update.get("pre_checkout_query"), path)
        user = c.obj(query.get("from"), f"{path}.from")
        return [
            _payment_event(
                kind="pre_checkout_query",
                data=query,
                path=path,
                provider_event_id=c.string(query, "id", path, required=True),
                payer=c.string(user, "id", f"{path}.from", required=True),
                at=received_at,
                account_id=account_id,
                tenant_id=tenant_id,
                webhook_event_id=webhook_event_id,
                update_id=update_id,
            )
        ]
    return []


class TelegramAdapter(ChannelAdapter):
    channel = CHANNEL
    # The secret token itself is not kept with the raw webhook.
    retained_headers = ("content-type", "user-agent")

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_secret_token(request.headers, account.credential("secret_token"))

    def check_body(self, request: InboundRequest) -> None:
        try:
            update_id_of(request.body)
        except MalformedPayload as exc:
            raise WebhookRejected(
                400, "body is not a Telegram update (JSON with update_id)"
            ) from exc

    def dedupe_key(self, request: InboundRequest) -> str:
        return f"update:{update_id_of(request.body)}"

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_update(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
            received_at=c.received_at(webhook),
        )
