"""WeChat Official Account message push (plaintext mode).

Verification: WeChat adds `signature`, `timestamp` and `nonce` to the query string of every
request; `signature` is the hex SHA1 of the three strings token, timestamp and nonce sorted and
joined (token = the account's `token` credential, as entered in the Official Account console).
GET (server verification) echoes `echostr` when the signature matches; POST is checked the same
way before the body is looked at. The signature does not cover the body (WeChat's plaintext mode
has no body signature), so a timestamp more than `max_clock_skew_seconds` (account setting,
default 300) away from now is refused: a captured query string cannot be replayed later.

Body: XML `<xml><ToUserName/><FromUserName/><CreateTime/><MsgType/>...</xml>`, parsed with
defusedxml (no DTDs, no entity expansion). WeChat retries a push three times when it gets no
answer within 5 s; as its docs recommend, the raw webhook is deduplicated by MsgId, or by
FromUserName + CreateTime (+ Event) for events.

* text, image (PicUrl, MediaId), voice, video/shortvideo (MediaId), location (Location_X = lat,
  Location_Y = lng, Label) -> MessageReceived; link and other types -> unsupported content.
* event subscribe / unsubscribe -> ContactSubscriptionChanged (subscribed true/false, reason =
  the event name); event CLICK (custom menu) -> MessageReceived interactive_reply (EventKey).
  Other events (SCAN, LOCATION, VIEW, ...) -> nothing (the raw log keeps them).
Safe mode (encrypted `<Encrypt>` bodies) is refused with 400: configure plaintext or compatible
mode (see docs/channels.md).

WeChat expects the plain text "success" as the answer when no reply message is sent (`ack`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

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
from parlay_kit.envelope import NewEvent

CHANNEL = "wechat"
DEFAULT_MAX_SKEW_SECONDS = 300


def signature_for(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def verify_query(query: Mapping[str, str], account: ChannelAccount, now: float) -> None:
    provided = query.get("signature", "")
    if not provided:
        raise WebhookRejected(401, "missing signature query parameter")
    token = account.credential("token")
    c.require_secret(token, "token")
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    if not c.same(signature_for(token, timestamp, nonce), provided):
        raise WebhookRejected(403, "signature does not match token, timestamp and nonce")
    try:
        skew = float(account.settings.get("max_clock_skew_seconds", DEFAULT_MAX_SKEW_SECONDS))
        sent = int(timestamp)
    except ValueError:
        raise WebhookRejected(403, "timestamp is not a unix time") from None
    if abs(now - sent) > skew:
        raise WebhookRejected(403, "stale timestamp (replayed or clock skew)")


def parse_xml(body: bytes) -> dict[str, str]:
    """The children of the <xml> root as a flat {tag: text} map."""
    try:
        root: Element = fromstring(body)
    except (ParseError, DefusedXmlException, ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not XML: {type(exc).__name__}: {exc}") from exc
    if root.tag != "xml":
        raise MalformedPayload(f"body: root element is <{root.tag}>, expected <xml>")
    return {child.tag: (child.text or "").strip() for child in root if isinstance(child.tag, str)}


def dedupe_key_of(fields: Mapping[str, str]) -> str | None:
    if fields.get("MsgId"):
        return f"msg:{fields['MsgId']}"
    if fields.get("FromUserName") and fields.get("CreateTime"):
        return f"event:{fields['FromUserName']}:{fields['CreateTime']}:{fields.get('Event', '')}"
    return None


def _content(fields: dict[str, Any], kind: str) -> pb.MessageContent:
    if kind == "text":
        return c.text(fields.get("Content", ""))
    if kind == "image":
        return c.media(
            "image", url=fields.get("PicUrl", ""), provider_media_id=fields.get("MediaId", "")
        )
    if kind == "voice":
        return c.media(
            "audio",
            provider_media_id=c.string(fields, "MediaId", "xml", required=True),
            mime_type=f"audio/{fields['Format'].lower()}" if fields.get("Format") else "",
            caption=fields.get("Recognition", ""),
        )
    if kind in ("video", "shortvideo"):
        return c.media("video", provider_media_id=c.string(fields, "MediaId", "xml", required=True))
    if kind == "location":
        return c.location(
            c.number(fields, "Location_X", "xml"),
            c.number(fields, "Location_Y", "xml"),
            name=fields.get("Label", ""),
        )
    return c.unsupported(kind)


def normalize_xml(
    body: bytes, *, account_id: str, tenant_id: str, webhook_event_id: str
) -> list[NewEvent]:
    fields = parse_xml(body)
    if "Encrypt" in fields and "MsgType" not in fields:
        raise MalformedPayload("xml: encrypted (safe mode) message; plaintext mode expected")
    user = c.string(fields, "FromUserName", "xml", required=True)
    business = fields.get("ToUserName", "")
    kind = c.string(fields, "MsgType", "xml", required=True)
    at = c.epoch_seconds(fields, "CreateTime", "xml")
    common = {"channel": CHANNEL, "account_id": account_id, "tenant_id": tenant_id}
    if kind == "event":
        event = c.string(fields, "Event", "xml", required=True)
        name = event.lower()
        eid = c.event_id(CHANNEL, account_id, user, str(int(at.timestamp())), name)
        if name in ("subscribe", "unsubscribe"):
            return [
                c.subscription_changed(
                    **common,
                    webhook_event_id=webhook_event_id,
                    event_id=eid,
                    subject=user,
                    subscribed=name == "subscribe",
                    reason=name,
                    changed_at=at,
                )
            ]
        if name == "click":
            key = fields.get("EventKey", "")
            return [
                c.message_received(
                    **common,
                    webhook_event_id=webhook_event_id,
                    event_id=eid,
                    provider_message_id=f"click:{user}:{int(at.timestamp())}",
                    sender=user,
                    sent_at=at,
                    content=c.interactive(key, payload=key),
                    business_address=business,
                )
            ]
        return []
    msg_id = c.string(fields, "MsgId", "xml", required=True)
    return [
        c.message_received(
            **common,
            webhook_event_id=webhook_event_id,
            event_id=c.event_id(CHANNEL, account_id, msg_id, "received"),
            provider_message_id=msg_id,
            sender=user,
            sent_at=at,
            content=_content(fields, kind),
            business_address=business,
        )
    ]


class WeChatAdapter(ChannelAdapter):
    channel = CHANNEL
    retained_headers = ("content-type", "user-agent")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_query(request.query, account, self._clock())

    def check_body(self, request: InboundRequest) -> None:
        try:
            fields = parse_xml(request.body)
        except MalformedPayload as exc:
            raise WebhookRejected(400, "body is not a WeChat XML message") from exc
        if "MsgType" not in fields:
            if "Encrypt" in fields:
                raise WebhookRejected(400, "encrypted (safe mode) messages are not supported")
            raise WebhookRejected(400, "body has no MsgType")

    def handshake(self, query: Mapping[str, str], account: ChannelAccount) -> Reply:
        verify_query(query, account, self._clock())
        echostr = query.get("echostr", "")
        if not echostr:
            raise WebhookRejected(400, "echostr is missing")
        return Reply(200, echostr.encode(), "text/plain")

    def dedupe_key(self, request: InboundRequest) -> str:
        key = dedupe_key_of(parse_xml(request.body))
        return key or super().dedupe_key(request)

    def ack(self) -> Reply:
        return Reply(200, b"success", "text/plain")

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_xml(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
        )
