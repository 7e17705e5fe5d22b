"""LINE Messaging API sender: POST {base}/v2/bot/message/push, Bearer channel access token.

LINE is the one provider here with a real idempotency key: `X-Line-Retry-Key` (a UUID). A
request repeated with the same key after LINE accepted the first answers 409 with the original
`sentMessages` (and `x-line-accepted-request-id`); we treat that as sent. So a re-send after a
crash mid-request is safe. -> 200 {"sentMessages": [{"id", "quoteToken"}]}; errors
{"message", "details": [{"message", "property"}]}.

Push, not reply: a reply token is single-use and expires within about a minute, which a
queued, retried, crash-recovered delivery cannot promise to meet.
"""

from __future__ import annotations

from typing import Any, ClassVar

from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.senders.base import (
    ChannelSender,
    Delivery,
    Outcome,
    ProviderRequest,
    ProviderResponse,
    SendContext,
    Unsendable,
    http_outcome,
    parse_retry_after,
)

RETRY_KEY_HEADER = "X-Line-Retry-Key"


class LineSender(ChannelSender):
    channel: ClassVar[str] = "line"
    native_idempotency: ClassVar[bool] = True
    default_base_url: ClassVar[str] = "https://api.line.me"

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        token = self.credential(account, "access_token")
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/v2/bot/message/push",
            headers={
                "Authorization": f"Bearer {token}",
                RETRY_KEY_HEADER: delivery.idempotency_uuid,
            },
            json={"to": delivery.recipient, "messages": [self.message(delivery)]},
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
                "quickReply": {
                    "items": [
                        {
                            "type": "action",
                            "action": {
                                "type": "postback",
                                "label": title[:20],
                                "data": option_id,
                                "displayText": title,
                            },
                        }
                        for option_id, title in options[:13]
                    ]
                },
            }
        if kind == "media":
            m = content.media
            if not m.url:
                raise Unsendable("invalid_content", "media needs a url")
            if m.kind == "image":
                return {"type": "image", "originalContentUrl": m.url, "previewImageUrl": m.url}
            # LINE needs a preview image for video and a duration for audio, which a media link
            # does not carry; other files cannot be pushed at all: send the link as text.
            return {"type": "text", "text": "\n".join(p for p in (m.caption, m.url) if p)}
        if kind == "template":
            raise Unsendable("unsupported_content", "message templates are a WhatsApp feature")
        raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")

    def parse(self, response: ProviderResponse) -> Outcome:
        data = response.json()
        sent = data.get("sentMessages") if isinstance(data, dict) else None
        # 409 + sentMessages: this retry key was already accepted: the message went out once.
        if (200 <= response.status < 300 or response.status == 409) and sent:
            return Outcome.sent(str(sent[0].get("id", "")))
        if 200 <= response.status < 300:
            return Outcome.sent(response.header("x-line-request-id"))
        if response.status == 409 and response.header("x-line-accepted-request-id"):
            return Outcome.sent(response.header("x-line-accepted-request-id"))
        if not isinstance(data, dict) or "message" not in data:
            return http_outcome(response, "", "")
        message = str(data.get("message", ""))
        details = data.get("details") or []
        if details:
            message += ": " + "; ".join(
                f"{d.get('property', '')} {d.get('message', '')}".strip() for d in details
            )
        code = f"http_{response.status}"
        if response.status == 429 or response.status >= 500:
            return Outcome.retry(code, message, parse_retry_after(response.header("retry-after")))
        return Outcome.failed(code, message)
