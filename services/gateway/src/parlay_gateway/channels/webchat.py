"""First-party web chat: the visitor's frames over the gateway's WebSocket (pure parts).

There is no provider and no webhook: the browser widget (`/webchat/widget.js`) opens
`/webchat/<channel_account_id>/socket` and speaks JSON frames (see docs/channels.md). The socket
handler (`parlay_gateway.webchat.socket`) uses the functions here:

* `verify_hello(frame, account)` -> `Visitor`. An anonymous visitor names itself with a random
  `visitor_id` (kept in the browser's localStorage) -> address `visitor:<visitor_id>`. A visitor
  the business knows comes with `user_id`, optional `email` and
  `signature = hex HMAC-SHA256(identity_secret, user_id + ":" + email)` computed by the
  business's server -> address `user:<user_id>`, `verified=True`. A missing/wrong signature, or
  a `user_id` on an account without `identity_secret`, is refused (`FrameRejected(4401)`) before
  anything is stored.
* `parse_frame(raw)` -> a validated client frame (`message`, `delivered`, `typing`, `ping`);
  anything else -> `FrameRejected(4400)` (answered with an error frame, nothing stored).
* `frame_request(visitor, frame, ...)` -> the `InboundRequest` whose body is stored as a
  `WebhookReceived` like any webhook: `{"v": 1, "visitor": {...as verified...}, "frame": {...}}`.
  The body is written by the gateway after verification, so `normalize` trusts `visitor`.

`WebchatAdapter.normalize` (the normalizer projector) turns the stored frames into:

* `message` -> `MessageReceived` (text), provider message id `<address>/<client id>`, event id
  `uuid5("webchat", account, address, client id, "received")`: a client retry is stored once.
* `delivered` (the widget rendered an agent message) -> `MessageStatusUpdated(DELIVERED)` for
  the outbound message id (through the normalizer's monotone status ledger).
* every stored frame of a visitor with a signed email (and the `hello` frame, stored only for
  those) -> `IdentityEvidenceObserved(verified_email)`, one per (address, email).
Times are ingest times (`WebhookReceived.received_at`): a browser's clock is not trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay.gateway.v1.gateway_events_pb2 import WebhookReceived
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import common as c
from parlay_gateway.channels.base import (
    ChannelAdapter,
    InboundRequest,
    MalformedPayload,
    WebhookRejected,
)
from parlay_kit.envelope import NewEvent

CHANNEL = "webchat"
IDENTITY_SECRET = "identity_secret"
#: Largest frame accepted (bytes of the JSON text).
MAX_FRAME_BYTES = 16_384
MAX_TEXT_CHARS = 4_096

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_EMAIL = re.compile(r"^[^\s@]{1,64}@[^\s@]{1,190}$")

# WebSocket close codes (4000-4999 are the application's).
CLOSE_BAD_FRAME = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_UNKNOWN_ACCOUNT = 4404
CLOSE_TIMEOUT = 4408


class FrameRejected(ValueError):
    """A client frame refused before anything is stored. `code` is a close code / error code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Visitor:
    address: str
    visitor_id: str
    user_id: str = ""
    email: str = ""
    verified: bool = False
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "visitor_id": self.visitor_id,
            "user_id": self.user_id,
            "email": self.email,
            "verified": self.verified,
            "name": self.name,
        }


def identity_signature(secret: str, user_id: str, email: str = "") -> str:
    """What the business's server computes for a visitor it knows (see docs/channels.md)."""
    return hmac.new(secret.encode(), f"{user_id}:{email}".encode(), hashlib.sha256).hexdigest()


def _text_field(frame: Mapping[str, Any], key: str, *, limit: int, required: bool = False) -> str:
    value = frame.get(key)
    if value is None or value == "":
        if required:
            raise FrameRejected(CLOSE_BAD_FRAME, f"{key}: missing")
        return ""
    if not isinstance(value, str):
        raise FrameRejected(CLOSE_BAD_FRAME, f"{key}: expected a string")
    if len(value) > limit:
        raise FrameRejected(CLOSE_BAD_FRAME, f"{key}: longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameRejected(CLOSE_BAD_FRAME, f"{key}: not valid Unicode") from None
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise FrameRejected(CLOSE_BAD_FRAME, f"{key}: control characters")
    return value


def _load(raw: str | bytes) -> dict[str, Any]:
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > MAX_FRAME_BYTES:
        raise FrameRejected(CLOSE_BAD_FRAME, f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FrameRejected(CLOSE_BAD_FRAME, "frame is not JSON") from None
    if not isinstance(data, dict):
        raise FrameRejected(CLOSE_BAD_FRAME, "frame is not a JSON object")
    if not isinstance(data.get("type"), str):
        raise FrameRejected(CLOSE_BAD_FRAME, "type: missing")
    return data


def verify_hello(raw: str | bytes, account: ChannelAccount) -> Visitor:
    """The first frame of a socket: who the visitor is. Raises FrameRejected (4400 malformed,
    4401 identity claimed but not proven)."""
    frame = _load(raw)
    if frame["type"] != "hello":
        raise FrameRejected(CLOSE_BAD_FRAME, "the first frame must be hello")
    visitor_id = _text_field(frame, "visitor_id", limit=64, required=True)
    if not _VISITOR_ID.match(visitor_id):
        raise FrameRejected(CLOSE_BAD_FRAME, "visitor_id: 8-64 characters A-Za-z0-9_-")
    name = _text_field(frame, "name", limit=128).strip()
    user_id = _text_field(frame, "user_id", limit=256)
    email = _text_field(frame, "email", limit=254)
    signature = _text_field(frame, "signature", limit=128)
    if not user_id:
        if email or signature:
            raise FrameRejected(CLOSE_UNAUTHENTICATED, "email/signature without user_id")
        return Visitor(address=f"visitor:{visitor_id}", visitor_id=visitor_id, name=name)
    if email and not _EMAIL.match(email):
        raise FrameRejected(CLOSE_BAD_FRAME, "email: not an email address")
    secret = account.credential(IDENTITY_SECRET)
    if not secret:
        raise FrameRejected(CLOSE_UNAUTHENTICATED, "this account accepts anonymous visitors only")
    if not signature:
        raise FrameRejected(CLOSE_UNAUTHENTICATED, "signature: missing")
    expected = identity_signature(secret, user_id, email)
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8")):
        raise FrameRejected(CLOSE_UNAUTHENTICATED, "signature does not match user_id and email")
    return Visitor(
        address=f"user:{user_id}",
        visitor_id=visitor_id,
        user_id=user_id,
        email=email,
        verified=True,
        name=name,
    )


def parse_frame(raw: str | bytes) -> dict[str, Any]:
    """A client frame after hello, validated and reduced to its known fields."""
    frame = _load(raw)
    kind = frame["type"]
    if kind == "message":
        client_id = _text_field(frame, "id", limit=64, required=True)
        if not _ID.match(client_id):
            raise FrameRejected(CLOSE_BAD_FRAME, "id: 1-64 characters A-Za-z0-9_-")
        text = _text_field(frame, "text", limit=MAX_TEXT_CHARS, required=True)
        if not text.strip():
            raise FrameRejected(CLOSE_BAD_FRAME, "text: empty")
        return {"type": "message", "id": client_id, "text": text}
    if kind == "delivered":
        message_id = _text_field(frame, "id", limit=128, required=True)
        return {"type": "delivered", "id": message_id}
    if kind == "typing":
        state = frame.get("state", True)
        if not isinstance(state, bool):
            raise FrameRejected(CLOSE_BAD_FRAME, "state: expected a boolean")
        return {"type": "typing", "state": state}
    if kind == "ping":
        return {"type": "ping"}
    raise FrameRejected(CLOSE_BAD_FRAME, f"unknown frame type {kind[:32]!r}")


def stored_body(visitor: Visitor, frame: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {"v": 1, "visitor": visitor.to_json(), "frame": dict(frame)},
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    ).encode()


def frame_request(
    visitor: Visitor,
    frame: Mapping[str, Any],
    *,
    channel_account_id: str,
    headers: Mapping[str, str],
) -> InboundRequest:
    """The stored form of a frame: what `ingest.build_webhook_event` turns into WebhookReceived."""
    return InboundRequest(
        method="WS",
        path=f"/webchat/{channel_account_id}/socket",
        headers=headers,
        body=stored_body(visitor, frame),
    )


def _parse_stored(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    data = c.parse_json_object(body)
    if data.get("v") != 1:
        raise MalformedPayload(f"body.v: unsupported version {data.get('v')!r}")
    return c.obj(data.get("visitor"), "body.visitor"), c.obj(data.get("frame"), "body.frame")


class WebchatAdapter(ChannelAdapter):
    channel: ClassVar[str] = CHANNEL
    retained_headers: ClassVar[tuple[str, ...]] = ("origin", "user-agent")

    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        # Web chat has no webhooks: frames arrive over the socket (verified there).
        raise WebhookRejected(405, "webchat frames arrive over /webchat/<account>/socket")

    def dedupe_key(self, request: InboundRequest) -> str:
        """Visitor + frame identity: a frame the widget re-sends (same client id) is stored once;
        a visitor's hello is stored once per identity."""
        try:
            visitor, frame = _parse_stored(request.body)
        except MalformedPayload:
            return super().dedupe_key(request)
        address = str(visitor.get("address", ""))
        kind = str(frame.get("type", ""))
        if kind == "hello":
            return f"{address}:hello:{visitor.get('email', '')}"
        return f"{address}:{kind}:{frame.get('id', '')}"

    def normalize(
        self, webhook: WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        account = webhook.channel_account_id
        visitor, frame = _parse_stored(webhook.body)
        address = c.string(visitor, "address", "body.visitor", required=True)
        if not address.startswith(("visitor:", "user:")):
            raise MalformedPayload("body.visitor.address: not a webchat address")
        kind = c.string(frame, "type", "body.frame", required=True)
        at = c.received_at(webhook)
        out: list[NewEvent] = []
        if kind == "message":
            client_id = c.string(frame, "id", "body.frame", required=True)
            out.append(
                c.message_received(
                    channel=CHANNEL,
                    account_id=account,
                    tenant_id=tenant_id,
                    webhook_event_id=webhook_event_id,
                    event_id=c.event_id(CHANNEL, account, address, client_id, "received"),
                    provider_message_id=f"{address}/{client_id}",
                    sender=address,
                    sent_at=at,
                    content=c.text(c.string(frame, "text", "body.frame", required=True)),
                    display_name=c.string(visitor, "name", "body.visitor"),
                )
            )
        elif kind == "delivered":
            out.append(
                c.status_updated(
                    channel=CHANNEL,
                    account_id=account,
                    tenant_id=tenant_id,
                    webhook_event_id=webhook_event_id,
                    provider_message_id=c.string(frame, "id", "body.frame", required=True),
                    recipient=address,
                    status=pb.DELIVERY_STATUS_DELIVERED,
                    status_at=at,
                    provider_status="delivered",
                )
            )
        elif kind != "hello":
            raise MalformedPayload(f"body.frame.type: {kind[:32]!r} is not stored")
        email = c.string(visitor, "email", "body.visitor")
        if visitor.get("verified") is True and email:
            out.append(
                c.identity_evidence(
                    channel=CHANNEL,
                    account_id=account,
                    tenant_id=tenant_id,
                    webhook_event_id=webhook_event_id,
                    event_id=c.event_id(CHANNEL, account, address, "verified_email", email),
                    subject=address,
                    kind="verified_email",
                    observed_at=at,
                    provider_event_id=f"{address}:{email}",
                    email=email,
                )
            )
        return out


def inbound_history_row(webhook: WebhookReceived) -> tuple[str, str, dict[str, Any]] | None:
    """(address, client message id, body) of a stored visitor message, for the history table;
    None for other frames."""
    try:
        visitor, frame = _parse_stored(webhook.body)
    except MalformedPayload:
        return None
    if frame.get("type") != "message":
        return None
    return (
        str(visitor.get("address", "")),
        str(frame.get("id", "")),
        {"text": str(frame.get("text", ""))},
    )


def received_at(webhook: WebhookReceived) -> datetime:
    return c.received_at(webhook)
