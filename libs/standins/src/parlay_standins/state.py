"""What a stand-in remembers: every request it was sent, the failures it was told to inject,
idempotency keys it has seen, registered accounts and media. In memory, one process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

#: channel -> the API family (path prefix) that serves it.
FAMILY_OF_CHANNEL: dict[str, str] = {
    "whatsapp": "meta",
    "messenger": "meta",
    "instagram": "meta",
    "telegram": "telegram",
    "twilio": "twilio",
    "wechat": "wechat",
    "line": "line",
    "viber": "viber",
    "stripe": "stripe",
}
FAMILIES: tuple[str, ...] = ("meta", "telegram", "twilio", "wechat", "line", "viber")
#: Payment providers, served like the messaging families (under /stripe) but listed apart.
PAYMENT_FAMILIES: tuple[str, ...] = ("stripe",)
ALL_FAMILIES: tuple[str, ...] = FAMILIES + PAYMENT_FAMILIES

#: Request headers that carry an idempotency key, in the order they are looked at. LINE's
#: X-Line-Retry-Key is the real provider's; the other two are honoured by every stand-in family
#: (the real Meta/Telegram/Twilio/WeChat/Viber APIs have no such header).
IDEMPOTENCY_HEADERS: tuple[str, ...] = ("x-line-retry-key", "idempotency-key", "x-idempotency-key")


@dataclass
class Reply:
    status: int
    body: Any  # dict/list -> JSON, bytes -> raw, str -> text
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None


@dataclass
class RequestRecord:
    seq: int
    family: str
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: Any
    raw_body: str
    received_at: float
    idempotency_key: str = ""
    #: The channel the request was for (whatsapp, messenger, ...), set by the family's handler.
    channel: str = ""
    #: True when the provider would have sent a message (a 2xx send, not a replay).
    accepted: bool = False
    #: True when an idempotency key was seen before and the original response was replayed.
    replayed: bool = False
    #: The failure rule that answered (its id), if any.
    injected: str = ""
    provider_message_id: str = ""
    #: The credential the request authenticated with (to find the account for status webhooks).
    credential: str = ""
    recipient: str = ""
    status: int | None = None
    response: Any = None
    responded_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "family": self.family,
            "channel": self.channel,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at,
            "idempotency_key": self.idempotency_key,
            "accepted": self.accepted,
            "replayed": self.replayed,
            "injected": self.injected,
            "provider_message_id": self.provider_message_id,
            "recipient": self.recipient,
            "status": self.status,
            "response": self.response,
            "responded_at": self.responded_at,
        }


@dataclass
class FailureRule:
    """Answer matching requests with an error and/or a delay, `times` times (0 = until reset).

    `error` is a kind the family renders the way its provider does (rate_limited, server_error,
    bad_request, unauthorized); `status` + `body` give an exact response instead. `delay` (s)
    delays the response *after* the request was processed, so a client killed meanwhile leaves
    a message the provider did send."""

    id: str
    family: str = ""
    match: str = ""
    error: str = ""
    status: int = 0
    body: Any = None
    retry_after: float | None = None
    delay: float = 0.0
    times: int = 1
    used: int = 0

    def matches(self, record: RequestRecord) -> bool:
        if self.family and self.family != record.family:
            return False
        if self.match:
            seen = f"{record.path}?{record.query} {record.raw_body}"
            # form bodies (Stripe, Twilio) are matched decoded too: "metadata[order_id]=o-1"
            if self.match not in seen and self.match not in unquote_plus(record.raw_body):
                return False
        return self.times == 0 or self.used < self.times


@dataclass
class Account:
    channel: str
    credentials: dict[str, str]
    settings: dict[str, str]
    webhook_url: str = ""


@dataclass
class Media:
    media_id: str
    channel: str
    data: bytes
    mime_type: str
    filename: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(text, keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    if "json" in content_type or text[:1] in "{[":
        import json

        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class StandinState:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.rules: list[FailureRule] = []
        self.accounts: list[Account] = []
        self.media: dict[str, Media] = {}
        #: (family, key) -> the future of the original response.
        self.idempotency: dict[tuple[str, str], asyncio.Future[Reply]] = {}
        #: WeChat access tokens issued -> app id.
        self.wechat_tokens: dict[str, str] = {}
        #: Richer per-family state (the Stripe stand-in's sessions, payments, events), by family.
        #: A store may define close() (e.g. to cancel webhook deliveries); reset() calls it.
        self.stores: dict[str, Any] = {}
        self._seq = 0
        self._changed: asyncio.Condition | None = None
        self._counters: dict[str, int] = {}

    # ---------------------------------------------------------------- helpers

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def counter(self, name: str, start: int = 1) -> int:
        value = self._counters.get(name, start - 1) + 1
        self._counters[name] = value
        return value

    def reset(self) -> None:
        self.records.clear()
        self.rules.clear()
        self.accounts.clear()
        self.media.clear()
        self.idempotency.clear()
        self.wechat_tokens.clear()
        for store in self.stores.values():
            close = getattr(store, "close", None)
            if close is not None:
                close()
        self.stores.clear()

    # ---------------------------------------------------------------- accounts

    def has_accounts(self, family: str) -> bool:
        return any(FAMILY_OF_CHANNEL.get(a.channel) == family for a in self.accounts)

    def account_by(self, family: str, **credentials: str) -> Account | None:
        for account in self.accounts:
            if FAMILY_OF_CHANNEL.get(account.channel) != family:
                continue
            if all(account.credentials.get(k) == v for k, v in credentials.items()):
                return account
        return None

    def credential_ok(self, family: str, **credentials: str) -> bool:
        """Strict once accounts of the family are registered; otherwise any non-empty value."""
        if not all(credentials.values()):
            return False
        if not self.has_accounts(family):
            return True
        return self.account_by(family, **credentials) is not None

    # ---------------------------------------------------------------- media

    def add_media(
        self,
        channel: str,
        data: bytes,
        mime_type: str,
        filename: str = "",
        media_id: str = "",
    ) -> Media:
        media = Media(media_id or new_media_id(channel), channel, data, mime_type, filename)
        self.media[media.media_id] = media
        return media

    # ---------------------------------------------------------------- exchanges

    async def exchange(
        self,
        *,
        family: str,
        method: str,
        path: str,
        query: Mapping[str, Any],
        headers: Mapping[str, str],
        raw: bytes,
        handler: Callable[[RequestRecord], Awaitable[Reply]],
        error_reply: Callable[[FailureRule], Reply],
        replay: Callable[[RequestRecord, Reply], Reply] | None = None,
        idempotency: bool = True,
    ) -> Reply:
        """Record the request, honour its idempotency key, apply failure rules, run the handler.

        `idempotency=False` leaves keys to the handler (Stripe scopes them per API key and
        compares parameters); the key is still recorded."""
        lowered = {k.lower(): v for k, v in headers.items()}
        self._seq += 1
        record = RequestRecord(
            seq=self._seq,
            family=family,
            method=method,
            path=path,
            query=dict(query),
            headers=lowered,
            body=parse_body(raw, lowered.get("content-type", "")),
            raw_body=raw.decode("utf-8", "replace"),
            received_at=time.time(),
        )
        self.records.append(record)
        key = next((lowered[h] for h in IDEMPOTENCY_HEADERS if lowered.get(h)), "")
        record.idempotency_key = key
        await self.notify()

        if not idempotency:
            key = ""
        if key and (family, key) in self.idempotency:
            original = await asyncio.shield(self.idempotency[(family, key)])
            record.replayed = True
            return await self._finish(record, replay(record, original) if replay else original)

        future: asyncio.Future[Reply] | None = None
        if key:
            future = asyncio.get_running_loop().create_future()
            self.idempotency[(family, key)] = future
        reply: Reply | None = None
        try:
            rule = next((r for r in self.rules if r.matches(record)), None)
            if rule is not None:
                rule.used += 1
                record.injected = rule.id
            if rule is not None and (rule.error or rule.status):
                reply = error_reply(rule)
            else:
                reply = await handler(record)
            if rule is not None and rule.delay > 0:
                await self.notify()
                await asyncio.sleep(rule.delay)
            return await self._finish(record, reply)
        except BaseException:
            if reply is None:
                reply = Reply(500, {"error": "stand-in handler failed"})
            raise
        finally:
            if future is not None:
                assert reply is not None
                if not future.done():
                    future.set_result(reply)
                # Like Stripe: only outcomes of a request that ran are kept for the key; a
                # rate-limit or server error leaves the key free for the retry.
                if reply.status == 429 or reply.status >= 500:
                    self.idempotency.pop((family, key), None)

    async def _finish(self, record: RequestRecord, reply: Reply) -> Reply:
        record.status = reply.status
        record.response = reply.body if not isinstance(reply.body, bytes) else "<bytes>"
        record.responded_at = time.time()
        if record.replayed or reply.status >= 300:
            record.accepted = False
        await self.notify()
        return reply

    # ---------------------------------------------------------------- queries

    def query(
        self,
        *,
        family: str = "",
        channel: str = "",
        contains: str = "",
        accepted: bool | None = None,
        path_contains: str = "",
        after_seq: int = 0,
    ) -> list[RequestRecord]:
        out = []
        for r in self.records:
            if r.seq <= after_seq:
                continue
            if family and r.family != family:
                continue
            if channel and r.channel != channel:
                continue
            if path_contains and path_contains not in r.path:
                continue
            if contains and contains not in f"{r.path}?{r.query} {r.raw_body}":
                continue
            if accepted is not None and r.accepted != accepted:
                continue
            out.append(r)
        return out

    async def wait_for(
        self, predicate: Callable[[], list[RequestRecord]], count: int, timeout: float
    ) -> list[RequestRecord]:
        """Wait (no polling) until `predicate()` returns at least `count` records, or timeout."""
        deadline = time.monotonic() + timeout
        async with self.changed:
            while True:
                found = predicate()
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return found
                try:
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except TimeoutError:
                    return predicate()


def new_media_id(channel: str) -> str:
    if channel in ("whatsapp", "line"):
        return str(10**15 + secrets.randbelow(9 * 10**15))
    if channel == "telegram":
        return "AgACAgIAAxkBAAI" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()
    if channel == "wechat":
        return base64.urlsafe_b64encode(secrets.token_bytes(36)).decode().rstrip("=")
    if channel == "twilio":
        return "ME" + secrets.token_hex(16)
    return secrets.token_hex(12)
