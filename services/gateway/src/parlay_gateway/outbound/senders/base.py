"""The sender interface: pure request builders and response classifiers, one per channel.

A sender never does I/O. `build` turns a delivery into the provider's HTTP request; `parse` turns
the provider's HTTP response into an `Outcome` (sent with the provider's message id, retry —
rate limits and server errors, honouring Retry-After — or failed with the provider's error).
The dispatcher owns the one HTTP client, the ledger and the events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay_gateway.accounts import ChannelAccount

#: The header every request carries with the message id. The stand-ins honour it (a repeated
#: key returns the original response); real providers other than LINE ignore it.
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbound message as the ledger holds it."""

    message_id: str
    request_event_id: str
    tenant_id: str
    conversation_id: str
    channel: str
    channel_account_id: str
    recipient: str
    content: gw.OutboundContent
    text: str = ""
    purpose: str = ""
    reply_to_provider_message_id: str = ""
    attempts: int = 0

    @property
    def kind(self) -> str:
        return self.content.WhichOneof("kind") or ""

    @property
    def idempotency_uuid(self) -> str:
        """The message id as a UUID (LINE requires one): itself when it is one, else uuid5."""
        try:
            return str(uuid.UUID(self.message_id))
        except ValueError:
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"parlay:outbound:{self.message_id}"))


@dataclass(frozen=True, slots=True)
class SendContext:
    #: The provider API root for this account (setting api_base_url, else the gateway's
    #: PARLAY_<CHANNEL>_API_BASE_URL), without a trailing slash.
    base_url: str
    #: Graph API version for Meta channels (e.g. v21.0).
    api_version: str = "v21.0"
    #: The gateway's public URL (Twilio StatusCallback), "" if unknown.
    public_url: str = ""
    #: A short-lived token the dispatcher obtained first (WeChat access_token).
    access_token: str = ""


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    #: Form fields (repeated keys allowed, e.g. Twilio MediaUrl).
    form: list[tuple[str, str]] | None = None
    params: Mapping[str, str] | None = None
    #: HTTP basic auth (user, password).
    auth: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""

    def text(self, limit: int = 500) -> str:
        return self.body[:limit].decode("utf-8", "replace")


OutcomeKind = Literal["sent", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    provider_message_id: str = ""
    error_code: str = ""
    error_message: str = ""
    #: Seconds the provider asked us to wait (Retry-After, Telegram retry_after), if any.
    retry_after: float | None = None
    #: The short-lived access token was refused: fetch a new one before the retry (WeChat).
    refresh_token: bool = False
    #: Local senders: work to do in the transaction that records a "sent" outcome (with the
    #: ledger row and OutboundMessageSent), e.g. web chat's history row + NOTIFY — so nothing
    #: can observe the message before its OutboundMessageSent is in the store.
    commit: Callable[[Any], Awaitable[None]] | None = field(default=None, compare=False)

    @staticmethod
    def sent(provider_message_id: str) -> Outcome:
        return Outcome("sent", provider_message_id=provider_message_id)

    @staticmethod
    def retry(code: str, message: str, retry_after: float | None = None) -> Outcome:
        return Outcome("retry", error_code=code, error_message=message, retry_after=retry_after)

    @staticmethod
    def failed(code: str, message: str) -> Outcome:
        return Outcome("failed", error_code=code, error_message=message)


class Unsendable(Exception):
    """The content cannot be carried by this channel (or the account lacks a setting): the
    delivery fails at once with `code`, nothing is sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChannelSender:
    """Base class of the per-channel senders."""

    channel: ClassVar[str] = ""
    #: The real provider de-duplicates a repeated request by a key we send (LINE's
    #: X-Line-Retry-Key), so re-sending after a crash mid-request is safe against it.
    native_idempotency: ClassVar[bool] = False
    #: Where the real provider lives (PARLAY_<CHANNEL>_API_BASE_URL overrides it).
    default_base_url: ClassVar[str] = ""

    #: Delivered by the gateway itself (web chat), not over a provider HTTP API: the dispatcher
    #: calls `deliver` instead of `build`/HTTP/`parse` (claim, ledger, outcome event unchanged).
    local: ClassVar[bool] = False

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        raise NotImplementedError

    async def deliver(self, delivery: Delivery, account: ChannelAccount) -> Outcome:
        """Local senders only: deliver and return the outcome (raise Unsendable to fail)."""
        raise NotImplementedError

    def parse(self, response: ProviderResponse) -> Outcome:
        raise NotImplementedError

    # Optional: channels whose API needs a short-lived token fetched with the credentials first.
    def token_request(self, account: ChannelAccount, ctx: SendContext) -> ProviderRequest | None:
        return None

    def parse_token(self, response: ProviderResponse) -> tuple[str, float]:
        raise NotImplementedError

    # helpers -------------------------------------------------------------------------------

    @staticmethod
    def credential(account: ChannelAccount, name: str) -> str:
        value = account.credential(name)
        if not value:
            raise Unsendable("missing_credential", f"channel account has no {name}")
        return value


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def http_outcome(response: ProviderResponse, code: str, message: str) -> Outcome:
    """The generic classification by HTTP status: 429 and 5xx retry (honouring Retry-After),
    408 too; any other non-2xx fails with the provider's error."""
    retry_after = parse_retry_after(response.header("retry-after"))
    if response.status == 429:
        return Outcome.retry(code or "rate_limited", message or "rate limited", retry_after)
    if response.status >= 500 or response.status == 408:
        return Outcome.retry(
            code or f"http_{response.status}", message or response.text(), retry_after
        )
    return Outcome.failed(code or f"http_{response.status}", message or response.text())


def content_text(delivery: Delivery) -> str:
    """The plain text of a text message (or the timeline rendering as a fallback)."""
    if delivery.kind == "text":
        return delivery.content.text.body
    return delivery.text
