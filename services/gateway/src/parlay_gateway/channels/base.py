"""The channel adapter interface: what every channel (WhatsApp, Messenger, Telegram, ...) provides.

The HTTP layer is channel-agnostic. For `/webhooks/<channel>/<channel_account_id>` it looks the
adapter up in the registry and calls, in this order, all pure functions of their inputs:

    POST: verify(request, account)   signature/token check on the RAW bytes -> WebhookRejected
          check_body(request)        syntax only (JSON, form, XML)          -> WebhookRejected(400)
          dedupe_key(request)        what makes a provider retry the same webhook
          ...raw webhook stored...   ack()                                  the 2xx the provider expects
    GET:  handshake(query, account)  subscription handshakes (Meta hub.challenge, WeChat echostr)

Later, the normalizer (a projector on the raw-webhook topic) calls
`normalize(webhook, tenant_id, webhook_event_id)`: a pure function from the stored raw webhook to
the normalized events. It raises on a payload it cannot understand, so the event is retried and
then dead-lettered with the reason instead of being dropped; fix the parser, replay the topic.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from parlay.gateway.v1.gateway_events_pb2 import WebhookReceived
from parlay_gateway.accounts import ChannelAccount
from parlay_kit.envelope import NewEvent


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """An HTTP request to a webhook route, as plain data (no framework types)."""

    method: str
    #: Path and query string as received, e.g. "/webhooks/whatsapp/acc1?x=1".
    path: str
    #: Lower-case header names.
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
    #: The gateway's public base URL (for channels that sign the URL, e.g. Twilio).
    public_url: str = ""


class WebhookRejected(Exception):
    """Refuse the request with an HTTP status. `reason` is logged and returned; it must never
    contain a secret."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class MalformedPayload(ValueError):
    """A stored webhook is not in the shape its channel documents (raised by normalize)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A response the adapter wants sent (handshake answer, webhook acknowledgement)."""

    status: int = 200
    body: bytes = b""
    media_type: str = "text/plain"


class ChannelAdapter(ABC):
    channel: ClassVar[str]
    #: Request headers kept with the raw webhook (for parsing and audit). Lower-case.
    retained_headers: ClassVar[tuple[str, ...]] = ("content-type", "user-agent")

    @abstractmethod
    def verify(self, request: InboundRequest, account: ChannelAccount) -> None:
        """Authenticate the request against the account's secrets, before any parsing.
        Raise WebhookRejected (401 missing credentials, 403 wrong ones)."""

    def check_body(self, request: InboundRequest) -> None:  # noqa: B027 - optional hook
        """Refuse a body that is not even syntactically valid (400) so it is never stored."""

    def handshake(self, query: Mapping[str, str], account: ChannelAccount) -> Reply:
        """Answer a GET on the webhook route (subscription handshake)."""
        raise WebhookRejected(405, f"{self.channel} webhooks have no GET handshake")

    def dedupe_key(self, request: InboundRequest) -> str:
        """Same key -> same raw-webhook event id -> a provider retry is stored once."""
        return hashlib.sha256(request.body).hexdigest()

    def ack(self) -> Reply:
        """What the provider expects once the webhook is stored."""
        return Reply()

    @abstractmethod
    def normalize(
        self, webhook: WebhookReceived, tenant_id: str, webhook_event_id: str
    ) -> list[NewEvent]:
        """Pure: the normalized events (one per message, status, ...) of one raw webhook.
        Deterministic event ids; raise MalformedPayload on an unexpected shape."""
