"""Viber REST bot API sender: POST {base}/pa/send_message with X-Viber-Auth-Token.

Answers HTTP 200 with {"status": 0, "message_token": n} on success and a non-zero `status`
(2 invalidAuthToken, 3 badData, 5 receiverNotRegistered, 6 receiverNotSubscribed, 12
tooManyRequests, ...) otherwise. No idempotency key; our message id travels in `tracking_data`.
The sender name is the account setting `sender_name` (Viber requires one, max 28 chars).
"""

from __future__ import annotations

from typing import Any, ClassVar

from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.senders.base import (
    IDEMPOTENCY_HEADER,
    ChannelSender,
    Delivery,
    Outcome,
    ProviderRequest,
    ProviderResponse,
    SendContext,
    Unsendable,
    http_outcome,
)

RETRY_STATUSES = frozenset({12})


class ViberSender(ChannelSender):
    channel: ClassVar[str] = "viber"
    default_base_url: ClassVar[str] = "https://chatapi.viber.com"

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        token = self.credential(account, "auth_token")
        sender: dict[str, str] = {"name": (account.settings.get("sender_name") or "Parlay")[:28]}
        if account.settings.get("sender_avatar"):
            sender["avatar"] = account.settings["sender_avatar"]
        body: dict[str, Any] = {
            "receiver": delivery.recipient,
            "min_api_version": 1,
            "sender": sender,
            "tracking_data": delivery.message_id,
            **self.message(delivery),
        }
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/pa/send_message",
            headers={"X-Viber-Auth-Token": token, IDEMPOTENCY_HEADER: delivery.message_id},
            json=body,
        )

    @staticmethod
    def message(delivery: Delivery) -> dict[str, Any]:
        content = delivery.content
        kind = delivery.kind
        if kind == "text":
            return {"type": "text", "text": content.text.body}
        if kind == "interactive":
            i = content.interactive
            options = [(b.id, b.title) for b in i.buttons] or [
                (r.id, r.title) for s in i.sections for r in s.rows
            ]
            return {
                "type": "text",
                "text": "\n\n".join(p for p in (i.header, i.body, i.footer) if p),
                "keyboard": {
                    "Type": "keyboard",
                    "DefaultHeight": False,
                    "Buttons": [
                        {
                            "ActionType": "reply",
                            "ActionBody": option_id,
                            "Text": title,
                            "Columns": 6,
                            "Rows": 1,
                        }
                        for option_id, title in options
                    ],
                },
            }
        if kind == "media":
            m = content.media
            if not m.url:
                raise Unsendable("invalid_content", "media needs a url")
            if m.kind == "image":
                return {"type": "picture", "text": m.caption[:768], "media": m.url}
            # video and file messages need the size in bytes, which a link does not carry.
            return {"type": "url", "media": m.url}
        if kind == "template":
            raise Unsendable("unsupported_content", "message templates are a WhatsApp feature")
        raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")

    def parse(self, response: ProviderResponse) -> Outcome:
        data = response.json()
        if not isinstance(data, dict) or "status" not in data:
            return http_outcome(response, "", "")
        status = int(data.get("status", -1))
        message = str(data.get("status_message", ""))
        if status == 0 and 200 <= response.status < 300:
            token = data.get("message_token")
            if token is None:
                return Outcome.failed("bad_response", f"no message_token in {response.text()}")
            return Outcome.sent(str(token))
        if status in RETRY_STATUSES or response.status == 429 or response.status >= 500:
            return Outcome.retry(str(status), message)
        return Outcome.failed(str(status), message)
