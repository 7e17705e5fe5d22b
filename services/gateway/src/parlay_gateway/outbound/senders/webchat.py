"""Web chat sender: an agent message is "sent" once it is in the visitor's history table.

Runs in the dispatcher (projectors tier) like every sender, but locally (`local = True`): no
HTTP. `deliver` returns "sent" with a `commit` step that the dispatcher runs in the transaction
recording the outcome: it inserts the message into `<schema>.webchat_messages` (idempotent on
the message id, so a re-send after a crash is safe: `native_idempotency`) and notifies the HTTP
tier at commit, which pushes it to the visitor's open sockets in whichever gateway process
holds them, now or when the visitor next connects (history). The same transaction stores
`OutboundMessageSent` (provider message id = the message id), so the widget's `delivered`
answer — `MessageStatusUpdated(DELIVERED)` through the normalizer — is always after it on the
contact's stream.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import asyncpg

from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.senders.base import ChannelSender, Delivery, Outcome, Unsendable
from parlay_gateway.webchat.store import WebchatHistory


def message_body(delivery: Delivery) -> dict[str, Any]:
    """What the widget renders: text, plus a link for media and the button titles."""
    content = delivery.content
    kind = delivery.kind
    if kind == "text":
        if not content.text.body:
            raise Unsendable("invalid_content", "empty text")
        return {"text": content.text.body}
    if kind == "media":
        m = content.media
        if not m.url:
            raise Unsendable("invalid_content", "media needs a url")
        return {"text": m.caption or m.filename or m.url, "media_url": m.url, "media_kind": m.kind}
    if kind == "interactive":
        i = content.interactive
        options = [b.title for b in i.buttons] or [r.title for s in i.sections for r in s.rows]
        text = "\n\n".join(part for part in (i.header, i.body, i.footer) if part)
        return {"text": text or delivery.text, "options": options}
    if kind == "template":
        raise Unsendable("unsupported_content", "message templates are a WhatsApp feature")
    raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")


class WebchatSender(ChannelSender):
    channel: ClassVar[str] = "webchat"
    local: ClassVar[bool] = True
    native_idempotency: ClassVar[bool] = True

    def __init__(self, pool: asyncpg.Pool, history: WebchatHistory) -> None:
        self.pool = pool
        self.history = history

    async def deliver(self, delivery: Delivery, account: ChannelAccount) -> Outcome:
        body = message_body(delivery)
        if not delivery.recipient.startswith(("visitor:", "user:")):
            raise Unsendable("invalid_recipient", "not a web chat visitor address")

        async def store(conn: asyncpg.Connection) -> None:
            # In the dispatcher's outcome transaction: the NOTIFY (and so the push to the
            # socket, and the widget's "delivered") comes after OutboundMessageSent is stored.
            await self.history.record(
                conn,
                channel_account_id=delivery.channel_account_id,
                visitor=delivery.recipient,
                direction="out",
                message_id=delivery.message_id,
                body=body,
            )

        return replace(Outcome.sent(delivery.message_id), commit=store)
