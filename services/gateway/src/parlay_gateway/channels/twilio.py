"""Twilio Programmable Messaging webhooks: SMS/MMS and WhatsApp via Twilio.

Verification (Twilio's documented scheme): `X-Twilio-Signature` is the base64 HMAC-SHA1, keyed
with the account's Auth Token, of the full URL Twilio called followed by every POST parameter
sorted by name, each as name + value with no separator. The URL is the account setting
`webhook_url` if set (exactly what is configured in the Twilio console), else `public_url`
(account setting, else the gateway's PARLAY_PUBLIC_URL) + the request path and query. Like
Twilio's helper libraries, the URL is also tried with the default port added/removed. The body is
`application/x-www-form-urlencoded`; the signature covers the parameters, not their encoding, so
the raw webhook's dedupe key is the hash of the sorted parameters.

Normalization (one webhook = one message or one status):
* inbound (no MessageStatus, or "received"): From/To are E.164 numbers (SMS) or
  `whatsapp:+<number>` (WhatsApp via Twilio), kept as Twilio gives them as the address. Body,
  NumMedia + MediaUrlN/MediaContentTypeN (MMS / WhatsApp media: one MessageReceived per media
  item, the text as the first one's caption), Latitude/Longitude (WhatsApp location),
  ButtonPayload/ButtonText (WhatsApp quick reply) -> MessageReceived; ProfileName is the display
  name, WaId (or the SMS number) the vouched phone.
* status callbacks: MessageStatus sent/delivered/read -> MessageStatusUpdated; failed and
  undelivered -> FAILED with ErrorCode; queued/accepted/scheduled/sending/canceled/... are
  skipped (logged; the raw webhook keeps them).
Twilio sends no provider time: occurred_at (and sent_at / status_at) is the ingest time.

Twilio expects a TwiML answer: `ack` is an empty `<Response/>` with text/xml (no auto-reply).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

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

log = logging.getLogger(__name__)

CHANNEL = "twilio"
SIGNATURE_HEADER = "x-twilio-signature"
TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
STATUSES = {
    "sent": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_READ,
    "failed": pb.DELIVERY_STATUS_FAILED,
    "undelivered": pb.DELIVERY_STATUS_FAILED,
}
_MAX_PARAMS = 1000


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The POST parameters, in order; MalformedPayload if the body is not a UTF-8 form."""
    try:
        return parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=_MAX_PARAMS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"body is not a form: {type(exc).__name__}: {exc}") from exc


def signed_string(url: str, params: list[tuple[str, str]]) -> str:
    """URL + every parameter sorted by name (values of a repeated name sorted too)."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    return url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )


def compute_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    digest = hmac.new(
        auth_token.encode(), signed_string(url, params).encode("utf-8"), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (Twilio's helpers do the same)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is None or not parts.hostname:
        return variants
    host = parts.hostname
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants


def signed_url(request: InboundRequest, account: ChannelAccount) -> str:
    explicit = account.settings.get("webhook_url", "")
    if explicit:
        return explicit
    base = account.settings.get("public_url", "") or request.public_url
    if not base:
        raise WebhookRejected(
            403, "no public_url (account setting or PARLAY_PUBLIC_URL): cannot check the signature"
        )
    return base.rstrip("/") + request.path


def verify_request(request: InboundRequest, account: ChannelAccount) -> None:
    provided = c.require_header(request.headers, SIGNATURE_HEADER)
    token = account.credential("auth_token")
    c.require_secret(token, "auth_token")
    url = signed_url(request, account)
    try:
        params = parse_form(request.body)
    except MalformedPayload as exc:
        raise WebhookRejected(400, "body is not a form") from exc
    if not any(
        c.same(compute_signature(token, variant, params), provided)
        for variant in _port_variants(url)
    ):
        raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the URL and parameters")


def _media_kind(content_type: str) -> str:
    major = content_type.split("/", 1)[0].lower()
    return major if major in ("image", "video", "audio") else "document"


def normalize_form(
    body: bytes, *, account_id: str, tenant_id: str, webhook_event_id: str, received_at: datetime
) -> list[NewEvent]:
    params: dict[str, str] = {}
    for name, value in parse_form(body):
        params.setdefault(name, value)
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not sid:
        raise MalformedPayload("MessageSid: missing")
    status_name = (params.get("MessageStatus") or "").lower()
    common = {
        "channel": CHANNEL,
        "account_id": account_id,
        "tenant_id": tenant_id,
        "webhook_event_id": webhook_event_id,
    }
    if status_name and status_name not in ("received", "receiving"):
        recipient = params.get("To", "")
        if not recipient:
            raise MalformedPayload("To: missing")
        if status_name not in STATUSES:
            log.info("twilio status %r of %s not normalized; skipped", status_name, sid)
            return []
        return [
            c.status_updated(
                **common,
                provider_message_id=sid,
                recipient=recipient,
                status=STATUSES[status_name],
                status_at=received_at,
                provider_status=status_name,
                error_code=params.get("ErrorCode", "")
                if STATUSES[status_name] == pb.DELIVERY_STATUS_FAILED
                else "",
                error_title=params.get("ErrorMessage", ""),
            )
        ]
    sender = params.get("From", "")
    if not sender:
        raise MalformedPayload("From: missing")
    body_text = params.get("Body", "")
    contents: list[pb.MessageContent] = []
    if params.get("Latitude") and params.get("Longitude"):
        loc = c.number(params, "Latitude", "form"), c.number(params, "Longitude", "form")
        contents.append(
            c.location(*loc, name=params.get("Label", ""), address=params.get("Address", ""))
        )
    elif params.get("ButtonPayload") or params.get("ButtonText"):
        contents.append(
            c.interactive(
                params.get("ButtonPayload") or params.get("ButtonText", ""),
                title=params.get("ButtonText", ""),
                payload=params.get("ButtonPayload", ""),
            )
        )
    else:
        count = c.integer(params, "NumMedia", "form", required=False) or 0
        if not 0 <= count <= 50:
            raise MalformedPayload(f"NumMedia: out of range: {count}")
        for i in range(count):
            url = params.get(f"MediaUrl{i}", "")
            if not url:
                raise MalformedPayload(f"MediaUrl{i}: missing")
            content_type = params.get(f"MediaContentType{i}", "")
            contents.append(
                c.media(
                    _media_kind(content_type),
                    url=url,
                    provider_media_id=url.rstrip("/").rsplit("/", 1)[-1],
                    mime_type=content_type,
                    caption=body_text if i == 0 else "",
                )
            )
        if not contents:
            contents.append(c.text(body_text))
    return [
        c.message_received(
            **common,
            event_id=c.event_id(CHANNEL, account_id, sid, "received", *([str(i)] if i else [])),
            provider_message_id=sid,
            sender=sender,
            sent_at=received_at,
            content=content,
            business_address=params.get("To", ""),
            display_name=params.get("ProfileName", ""),
            context_id=params.get("OriginalRepliedMessageSid", ""),
            sender_phone=c.phone_digits(params.get("WaId", "") or sender),
        )
        for i, content in enumerate(contents)
    ]


class TwilioAdapter(ChannelAdapter):
    channel = CHANNEL
    retained_headers = (
        "content-type",
        "user-agent",
        SIGNATURE_HEADER,
        "i-twilio-idempotency-token",
    )

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        verify_request(request, account)

    def check_body(self, request: InboundRequest) -> None:
        params = dict(parse_form(request.body))  # verify already parsed it
        if not (params.get("MessageSid") or params.get("SmsSid")):
            raise WebhookRejected(400, "not a Twilio messaging webhook (no MessageSid)")

    def dedupe_key(self, request: InboundRequest) -> str:
        return hashlib.sha256(signed_string("", parse_form(request.body)).encode()).hexdigest()

    def ack(self) -> Reply:
        return Reply(200, TWIML_EMPTY, "text/xml")

    def normalize(
        self, webhook: pb.WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        return normalize_form(
            webhook.body,
            account_id=webhook.channel_account_id,
            tenant_id=tenant_id,
            webhook_event_id=webhook_event_id,
            received_at=c.received_at(webhook),
        )
