"""Telegram Bot API sender: POST {base}/bot{token}/sendMessage (sendPhoto, sendDocument, ...).

-> {"ok": true, "result": {"message_id": n, ...}}; errors {"ok": false, "error_code",
"description", "parameters": {"retry_after"}}. The Bot API has no idempotency key.
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
    parse_retry_after,
)

#: MediaContent.kind -> (method, parameter)
MEDIA_METHODS = {
    "image": ("sendPhoto", "photo"),
    "video": ("sendVideo", "video"),
    "audio": ("sendAudio", "audio"),
    "sticker": ("sendSticker", "sticker"),
    "document": ("sendDocument", "document"),
}


class TelegramSender(ChannelSender):
    channel: ClassVar[str] = "telegram"
    default_base_url: ClassVar[str] = "https://api.telegram.org"

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        token = self.credential(account, "bot_token")
        method, body = self.message(delivery)
        body = {"chat_id": delivery.recipient, **body}
        if delivery.reply_to_provider_message_id.isdigit():
            body["reply_parameters"] = {
                "message_id": int(delivery.reply_to_provider_message_id),
                "allow_sending_without_reply": True,
            }
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/bot{token}/{method}",
            headers={IDEMPOTENCY_HEADER: delivery.message_id},
            json=body,
        )

    @staticmethod
    def message(delivery: Delivery) -> tuple[str, dict[str, Any]]:
        content = delivery.content
        kind = delivery.kind
        if kind == "text":
            return "sendMessage", {"text": content.text.body}
        if kind == "interactive":
            i = content.interactive
            if i.buttons:
                rows = [[{"text": b.title, "callback_data": b.id}] for b in i.buttons]
            else:
                rows = [
                    [{"text": r.title, "callback_data": r.id}] for s in i.sections for r in s.rows
                ]
            text = "\n\n".join(part for part in (i.header, i.body, i.footer) if part)
            return "sendMessage", {"text": text, "reply_markup": {"inline_keyboard": rows}}
        if kind == "media":
            m = content.media
            if not m.url and not m.provider_media_id:
                raise Unsendable("invalid_content", "media needs a url")
            method, field = MEDIA_METHODS.get(m.kind, MEDIA_METHODS["document"])
            body: dict[str, Any] = {field: m.url or m.provider_media_id}
            if m.caption and field != "sticker":
                body["caption"] = m.caption
            return method, body
        if kind == "template":
            raise Unsendable("unsupported_content", "message templates are a WhatsApp feature")
        raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")

    def parse(self, response: ProviderResponse) -> Outcome:
        data = response.json()
        if not isinstance(data, dict):
            return http_outcome(response, "", "")
        if data.get("ok") and 200 <= response.status < 300:
            try:
                return Outcome.sent(str(data["result"]["message_id"]))
            except (KeyError, TypeError):
                return Outcome.failed("bad_response", f"no result.message_id in {response.text()}")
        code = str(data.get("error_code") or response.status)
        description = str(data.get("description", ""))
        parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        retry_after = parameters.get("retry_after") if parameters else None
        if retry_after is None:
            retry_after = parse_retry_after(response.header("retry-after"))
        if response.status == 429 or response.status >= 500:
            return Outcome.retry(
                code, description, float(retry_after) if retry_after is not None else None
            )
        return Outcome.failed(code, description)
